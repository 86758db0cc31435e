// `npm run soak`: a chaos soak. Self-hosts the Worker and the local cloud (as `npm run load --
// --self-host` does), drives simulated users through the whole product while a seeded schedule
// switches vendor faults on and off, then runs the Worker's sweep past every reply deadline and
// audits the books (scripts/soak/audit.ts). Prints each invariant with its violation count and
// exits 1 on any.
//
//   npm run soak                                   # 10,000 prompts
//   npm run soak -- --prompts 300 --seed 19        # the CI run
//   npm run soak -- --prompts 2000 --users 40 --fault-rate 0.3 --json soak.json
//   npm run soak -- --prompts 300 --faults gemini_stream_cut,neon_down   # bisecting a finding
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { type Stack, startStack } from "../local/stack.ts";
import { audit, collectGeminiCalls } from "./soak/audit.ts";
import { type Chaos, clearAll, FAULT_KINDS, type FaultKind, startChaos } from "./soak/chaos.ts";
import { newHttpRecord } from "./soak/client.ts";
import { newStats, type SoakRun, simulateUser } from "./soak/users.ts";
import { assertLoopback, table } from "./support/http.ts";

const { values: args } = parseArgs({
  options: {
    prompts: { type: "string", default: "10000" },
    users: { type: "string", default: "30" },
    seed: { type: "string", default: String(Date.now() % 1_000_000) },
    "fault-rate": { type: "string", default: "0.3" },
    "timeout-seconds": { type: "string", default: "1800" },
    faults: { type: "string", default: "all" },
    json: { type: "string" },
  },
});

function bounded(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new Error(`--${name} must be in ${min}..${max} (got ${raw})`);
  }
  return n;
}

const PROMPTS = Math.floor(bounded("prompts", args.prompts, 1, 100_000));
const USERS = Math.floor(bounded("users", args.users, 1, 500));
const SEED = Math.floor(bounded("seed", args.seed, 0, 2 ** 31 - 1));
const FAULT_RATE = bounded("fault-rate", args["fault-rate"], 0, 1);
/** `--faults gemini_429,neon_down`: only these kinds (to bisect a finding); QStash chaos stays on. */
const KINDS: FaultKind[] =
  args.faults === "all"
    ? [...FAULT_KINDS]
    : (args.faults.split(",").filter(Boolean) as FaultKind[]);
for (const k of KINDS) {
  if (!FAULT_KINDS.includes(k))
    throw new Error(`--faults: unknown kind ${k} (${FAULT_KINDS.join(", ")})`);
}
const TIMEOUT_MS = bounded("timeout-seconds", args["timeout-seconds"], 30, 7200) * 1000;
/** One QStash retry (the retry budget), so the reply deadline can be short enough to pass. */
const QSTASH_RETRIES = 1;
const REPLY_DEADLINE_SECONDS = 15;
/** Streamed replies have their own deadline (STREAM_REPLY_DEADLINE_MS, 5 min) in the sweep. */
const SETTLE_MS = 6 * 60_000;
const TAG = `soak-${SEED.toString(36)}-${crypto.randomUUID().slice(0, 6)}`;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function control(cloudUrl: string, path: string, body?: unknown, method?: string) {
  const res = await fetch(`${cloudUrl}/_control/${path}`, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`control ${path} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

/** How long the audit waits for the local Stripe's webhook deliveries and retries. */
const STRIPE_FLUSH_MS = 45_000;

/**
 * Stripe's own retries of a webhook the Worker failed span three days; the local Stripe runs
 * them at the test time scale (milliseconds), so all of an event's attempts can fall inside one
 * fault window and it is given up. Each such event is sent once more after the faults are off,
 * as Stripe's later retries (or "Resend" in the Dashboard) would. Answers how many.
 */
async function redeliverFailedWebhooks(cloudUrl: string): Promise<number> {
  const flush = () =>
    control(cloudUrl, "stripe/flush", { timeout_ms: STRIPE_FLUSH_MS }).catch(() => undefined);
  await flush();
  const { data } = (await control(cloudUrl, "stripe/events")) as {
    data: { id: string; delivery: string }[];
  };
  const failed = data.filter((e) => e.delivery === "failed");
  for (const e of failed) await control(cloudUrl, "stripe/resend", { event: e.id });
  await flush();
  return failed.length;
}

/** Runs the cron sweep until no soak reply is pending (or SETTLE_MS passes). */
async function settle(stack: Stack): Promise<number> {
  const until = Date.now() + SETTLE_MS;
  for (;;) {
    await control(stack.cloudUrl, "qstash/flush", { match: TAG, timeout_ms: 20_000 }).catch(
      () => undefined,
    );
    const res = await fetch(`${stack.workerUrl}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`);
    await res.body?.cancel();
    const { rows } = (await control(stack.cloudUrl, "neon/query", {
      sql: `select count(*)::int as n from messages m join users u on u.id = m.user_id
             where u.name like $1 and m.status = 'pending'`,
      params: [`${TAG} %`],
    })) as { rows: { n: number }[] };
    const pending = rows[0]?.n ?? 0;
    if (pending === 0 || Date.now() > until) return pending;
    await sleep(2000);
  }
}

let stack: Stack | undefined;
let chaos: Chaos | undefined;
let exitCode = 0;
try {
  stack = await startStack({
    vars: {
      ENVIRONMENT: "development",
      JWT_SECRET: "soak-jwt-secret-0123456789abcdef0123456789abcdef",
      OTP_SECRET: "soak-otp-secret-0123456789abcdef0123456789abcdef",
      QSTASH_RETRIES: String(QSTASH_RETRIES),
      REPLY_DEADLINE_SECONDS: String(REPLY_DEADLINE_SECONDS),
      // Enough quota that most prompts are accepted; the limits still refuse some (429/409).
      BASIC_DAILY_LIMIT: "60",
      PRO_DAILY_LIMIT: "400",
      MAX_PENDING_REPLIES_BASIC: "3",
      MAX_PENDING_REPLIES_PRO: "6",
    },
    dev: {
      testScheduled: true,
      // The injected faults make the Worker log an error line per failed dependency call;
      // WORKER_LOG_LEVEL=error shows them.
      logLevel: (process.env.WORKER_LOG_LEVEL ?? "none") as "none",
    },
  } as Parameters<typeof startStack>[0]);
  const { workerUrl, cloudUrl } = stack;
  assertLoopback(workerUrl);
  assertLoopback(cloudUrl);
  console.log(
    `soak ${TAG}: ${PROMPTS} prompts, ${USERS} users, seed ${SEED}, fault rate ${FAULT_RATE}`,
  );
  const started = performance.now();
  const deadline = Date.now() + TIMEOUT_MS;
  let budget = PROMPTS;
  const ctl = (path: string, body?: unknown, method?: string) =>
    control(cloudUrl, path, body, method);
  const run: SoakRun = {
    baseUrl: workerUrl,
    tag: TAG,
    seed: SEED,
    record: newHttpRecord(),
    control: ctl,
    stats: newStats(),
    deadline,
    takePrompt: () => budget-- > 0,
  };
  chaos = await startChaos({
    control: ctl,
    faultRate: FAULT_RATE,
    kinds: KINDS,
    tag: TAG,
    seed: SEED,
  });
  const geminiCalls = collectGeminiCalls(cloudUrl, TAG);
  const progress = setInterval(() => {
    console.log(`  … ${PROMPTS - Math.max(0, budget)} prompts sent`);
  }, 15_000).unref();
  await Promise.all(Array.from({ length: USERS }, (_, i) => simulateUser(run, i)));
  clearInterval(progress);
  await chaos.stop();
  const driveSeconds = (performance.now() - started) / 1000;
  await clearAll(ctl, TAG);
  const stillPending = await settle(stack);
  // After the sweep: a reply's settlement does not touch Stripe, and the tiers are read last.
  const webhooksRedelivered = await redeliverFailedWebhooks(cloudUrl);
  const qstashChaos = (await ctl("qstash/chaos")) as { duplicated: number; held: number };
  const result = await audit({
    geminiCalls: await geminiCalls.stop(),
    cloudUrl,
    vars: stack.vars,
    tag: TAG,
    retryBudget: QSTASH_RETRIES,
    stats: run.stats,
    record: run.record,
  });
  const faults = {
    ...chaos.injected,
    qstash_duplicated_deliveries: qstashChaos.duplicated,
    qstash_held_back_deliveries: qstashChaos.held,
    clients_left_mid_stream: run.stats.streams_abandoned,
    stripe_webhooks_given_up_then_resent: webhooksRedelivered,
  };
  const { reply_ids, unexpected, ...counts } = run.stats;
  const violations = Object.values(result.invariants).reduce((n, v) => n + v.length, 0);
  console.log(`\n${table(["fault", "n"], Object.entries(faults))}`);
  console.log(`\n${table(["replies", "n"], Object.entries(result.replies))}`);
  const replyActions = {
    ...result.reply_actions,
    regenerates_refused: run.stats.regenerates_refused,
    cancels_answered_409: run.stats.reply_cancels_finished,
  };
  console.log(`\n${table(["cancel / regenerate", "n"], Object.entries(replyActions))}`);
  console.log(`\n${table(["client", "n"], Object.entries(counts))}`);
  const resends = {
    resent_after_409_in_progress: run.record.resentInProgress,
    ...result.prompt_copies,
    ...result.chatroom_copies,
  };
  console.log(`\n${table(["resends", "n"], Object.entries(resends))}`);
  console.log(`\n${table(["responses", "n"], Object.entries(run.record.statuses))}`);
  console.log(
    `\n${table(
      ["invariant", "violations"],
      Object.entries(result.invariants).map(([k, v]) => [k, v.length]),
    )}`,
  );
  for (const [name, list] of Object.entries(result.invariants)) {
    for (const v of list.slice(0, 5)) console.error(`  ✗ ${name}: ${v}`);
  }
  if (unexpected.length > 0) {
    console.log(`\n${unexpected.length} unexpected answers (not invariants), first ones:`);
    for (const u of unexpected.slice(0, 10)) console.log(`  - ${u}`);
  }
  const summary = {
    tag: TAG,
    seed: SEED,
    prompts: PROMPTS,
    users: USERS,
    fault_rate: FAULT_RATE,
    drive_seconds: Number(driveSeconds.toFixed(1)),
    total_seconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    pending_after_settle: stillPending,
    requests: run.record.requests,
    gemini_calls: result.gemini_calls,
    faults,
    client: counts,
    replies: result.replies,
    reply_actions: replyActions,
    resends,
    responses: run.record.statuses,
    unexpected: unexpected.length,
    violations,
    invariants: Object.fromEntries(
      Object.entries(result.invariants).map(([k, v]) => [
        k,
        { count: v.length, first: v.slice(0, 10) },
      ]),
    ),
  };
  console.log(`\n${JSON.stringify({ ...summary, invariants: undefined })}`);
  if (args.json) writeFileSync(args.json, JSON.stringify(summary, null, 2));
  if (violations > 0) {
    console.error(`\nFAIL: ${violations} violation(s); replay with --seed ${SEED}`);
    exitCode = 1;
  } else console.log(`\nOK: the books balance (seed ${SEED}).`);
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  exitCode = 1;
} finally {
  await chaos?.stop().catch(() => undefined);
  await stack?.close();
}
process.exit(exitCode);
