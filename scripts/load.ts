// `npm run load`: simulated users sign up, log in by OTP, create chatrooms and send prompts
// through the whole queued path (Worker → QStash → Gemini → QStash callback → Worker), then the
// run checks that every accepted prompt got exactly one completed reply, that the daily quota
// counted exactly the accepted prompts and that each user has exactly the chatrooms it created.
// Prints throughput and latency percentiles; exits 1 on any violation.
//
//   npm run load                                  # against `npm run dev` (http://127.0.0.1:8787)
//   npm run load -- --self-host --users 8         # starts its own local cloud + Worker (CI)
//   npm run load -- --users 50 --prompts 6 --chatrooms 2 --base-url http://127.0.0.1:8787
//
// With --self-host the stack runs in a child process (scripts/support/stack-process.ts), and the
// report gives each process's CPU (the load generator, the local cloud, each workerd, postgres
// when LOCAL_DATABASE_URL is set): which one saturates first.
//
// A 503 (dependency_unavailable: a vendor too slow or down, "try again shortly") is resent after
// its Retry-After, up to --retries times (default 8), as the API asks a client to; prompts and
// chatroom creates carry an Idempotency-Key, so a resent prompt counts once and a resent create
// makes one room (GET /chatroom must then list exactly the rooms created). A 409
// idempotency_in_progress ("still being processed": the same prompt or create is being written,
// or its write's outcome is not known yet) is resent too, after its Retry-After, for up to
// IN_PROGRESS_RESEND_MS (45 s; the policy is scripts/support/in-progress.ts, shared with the
// soak). The report counts the resends; an answer that outlasts them is a violation.
// --ramp-seconds spreads the users' start (default 0: all at once).
//
// The Worker's sweep (its cron, which republishes a committed reply whose publish was lost, e.g. a
// write that committed after the Worker's deadline) runs every minute during the drive, as in
// production (`wrangler dev` fires no cron by itself). Judged only once settled: after the drive
// (every user's prompts sent, replies polled until --timeout-seconds), the run triggers the sweep
// every 2 s and waits up to SETTLE_MS, a bound derived from the product's own deadlines, for every
// accepted reply to leave `pending`. Then it checks each user's history and quota. Each problem is
// reported once. The report ends with which process saturates first, and why.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { createSession, FlowError } from "./support/fixtures.ts";
import {
  assertLoopback,
  ms1,
  type Reply,
  type RequestOptions,
  randomClientIp,
  randomMobileNumber,
  Samples,
  summarize,
  table,
  timedRequest,
} from "./support/http.ts";
import { InProgressResends, isIdempotencyInProgress } from "./support/in-progress.ts";
import {
  type CpuReport,
  type CpuTarget,
  descendantsOf,
  listenersOf,
  sampleCpu,
} from "./support/proc-cpu.ts";

const { values: args } = parseArgs({
  options: {
    users: { type: "string", default: "50" },
    prompts: { type: "string", default: "6" },
    chatrooms: { type: "string", default: "2" },
    "base-url": { type: "string", default: "http://127.0.0.1:8787" },
    "cloud-url": { type: "string", default: "http://127.0.0.1:8788" },
    "self-host": { type: "boolean", default: false },
    "timeout-seconds": { type: "string", default: "300" },
    retries: { type: "string", default: "8" },
    "ramp-seconds": { type: "string", default: "0" },
    json: { type: "string" },
  },
});

function bounded(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`--${name} must be an integer in ${min}..${max} (got ${raw})`);
  }
  return n;
}

const USERS = bounded("users", args.users, 1, 500);
const PROMPTS = bounded("prompts", args.prompts, 1, 50);
const CHATROOMS = bounded("chatrooms", args.chatrooms, 1, 20);
const TIMEOUT_MS = bounded("timeout-seconds", args["timeout-seconds"], 10, 3600) * 1000;
/**
 * How long a user refused below its limit waits before sending once more when earlier attempts
 * answered 503: the settle of an unknown write (src/services/chat/send.ts UNKNOWN_WRITE_SETTLE_MS,
 * 20 s after the write was sent) plus its first recheck.
 */
const HELD_TOKEN_SETTLE_MS = 25_000;
/** Resends of a 503 (the API's "try again shortly": a dependency too slow or down), as a client would. */
const RETRIES = bounded("retries", args.retries, 0, 10);
/** Users start spread over this many seconds (0: all at once). */
const RAMP_MS = bounded("ramp-seconds", args["ramp-seconds"], 0, 600) * 1000;
const RUN_ID = crypto.randomUUID().slice(0, 8);

/**
 * How long after the drive every accepted reply must have settled, from the product's deadlines:
 * a round-2 write commits within WRITE_COMMIT_WINDOW_MS (15 s, src/services/chat/send.ts) of being
 * sent or not at all; the sweep republishes a committed reply without a QStash job once it is
 * REPUBLISH_GRACE_MS (10 s, src/services/chat/sweep.ts) old, and this run triggers the sweep every
 * SWEEP_EVERY_MS; QStash's first retry of a failed delivery comes e^2.5 ≈ 12 s later (src/env.ts
 * qstashRetryChainSeconds). 15 + 10 + 2 + 12 s, plus 30 s for the queue to drain on a busy box.
 */
const SETTLE_MS = (15 + 10 + 2 + 12 + 30) * 1000;
const SWEEP_EVERY_MS = 2000;

const samples = new Samples();
const violations: string[] = [];
/** Keys of problems already reported (a reply still pending is one problem, however seen). */
const reported = new Set<string>();
const replyLatency: number[] = [];
const serverReplyLatency: number[] = [];
let requests = 0;
/** Answers resent (503s, and 429s that answered a resent 503), by endpoint label. */
const retried = new Map<string, number>();
/** Prompts and creates resent after 409 idempotency_in_progress. */
let resentInProgress = 0;
/** Chatroom creates answered with the first create's 201 (a resend after a 503 that had committed). */
let createsReplayed = 0;

/** How long to wait before a resend: its Retry-After (capped at 60 s), with jitter. */
function retryDelayMs(headers: Headers, attempt: number): number {
  const after = Number(headers.get("retry-after"));
  const base =
    Number.isFinite(after) && after > 0 ? Math.min(after, 60) * 1000 : 500 * 2 ** attempt;
  return base * (0.5 + Math.random());
}

/**
 * A 503 is resent; so is a 429 that answers a resent 503 (a limit whose give-back met the same
 * outage, e.g. send-otp's cool-down: its Retry-After says when), as a client following the
 * contract would.
 */
function resendable(status: number, attempt: number, lastStatus: number): boolean {
  if (attempt >= RETRIES) return false;
  return status === 503 || (status === 429 && lastStatus === 503);
}

function noteRetry(label: string): void {
  retried.set(label, (retried.get(label) ?? 0) + 1);
}
let baseUrl = args["base-url"];
let cloudUrl = args["cloud-url"];
const deadline = Date.now() + TIMEOUT_MS;

/** Records a problem; one with a `key` (a reply id) only the first time it is seen. */
function violation(message: string, key?: string): void {
  if (key !== undefined) {
    if (reported.has(key)) return;
    reported.add(key);
  }
  violations.push(message);
}

/** A reply, and how many 503s before it were resent (each may have left a held quota token). */
type Sent = Reply & { resent503: number };

async function api(
  label: string,
  method: string,
  path: string,
  opts?: RequestOptions,
): Promise<Sent> {
  let lastStatus = 0;
  const inProgress = new InProgressResends();
  for (let attempt = 0; ; ) {
    const res = await timedRequest(baseUrl, method, path, opts);
    requests++;
    samples.add(label, res.ms);
    if (isIdempotencyInProgress(res.status, res.body)) {
      // Not a failure: bounded by time, not by --retries.
      const wait = inProgress.next(res.headers.get("retry-after"));
      if (wait === null) return { ...res, resent503: attempt };
      resentInProgress++;
      await sleep(wait);
      continue;
    }
    if (!resendable(res.status, attempt, lastStatus)) return { ...res, resent503: attempt };
    lastStatus = res.status;
    noteRetry(label);
    await sleep(retryDelayMs(res.headers, attempt));
    attempt++;
  }
}

/**
 * The fixtures' fetch: counts and times each login-flow request under "METHOD /path", like `api`
 * (until the whole body has arrived).
 */
const timedFetch: typeof fetch = async (input, init) => {
  const request = new Request(input, init);
  const label = `${request.method} ${new URL(request.url).pathname}`;
  let lastStatus = 0;
  for (let attempt = 0; ; attempt++) {
    const started = performance.now();
    const res = await fetch(request.clone());
    const body = await res.arrayBuffer();
    requests++;
    samples.add(label, performance.now() - started);
    if (!resendable(res.status, attempt, lastStatus)) {
      return new Response([204, 205, 304].includes(res.status) ? null : body, res);
    }
    lastStatus = res.status;
    noteRetry(label);
    await sleep(retryDelayMs(res.headers, attempt));
  }
};

function expectStatus(res: Reply, status: number, step: string): boolean {
  if (res.status === status) return true;
  violation(`${step}: ${res.status} (expected ${status}) ${res.text.slice(0, 200)}`);
  return false;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Accepted {
  chatroomId: string;
  messageId: string;
  replyId: string;
  content: string;
  sentAt: number;
  createdAt: string;
}

/** What the local QStash knows about a stuck prompt (its control API; diagnostics only). */
async function describeQStash(content: string): Promise<void> {
  try {
    const res = await fetch(
      `${cloudUrl}/_control/qstash/messages?match=${encodeURIComponent(content)}`,
    );
    const body = (await res.json()) as { messages?: Record<string, unknown>[] };
    for (const m of body.messages ?? []) {
      console.error(
        `  qstash ${m.kind} ${m.message_id} state=${m.state} deliveries=${m.deliveries} attempts=${JSON.stringify(m.attempts)} url=${m.url}`,
      );
    }
    if ((body.messages ?? []).length === 0)
      console.error(`  qstash holds no message for "${content}"`);
  } catch (err) {
    console.error(`  (local cloud not reachable for diagnostics: ${String(err)})`);
  }
}

interface UserResult {
  accepted: number;
  limited: number;
  /** The replies still pending when the drive ended (settled, or not, by `settle`). */
  unsettled: Unsettled[];
  /** The user's checks, run once every reply has settled. */
  judge(): Promise<void>;
}

interface Unsettled {
  who: string;
  token: string;
  reply: Accepted;
}

async function simulateUser(index: number): Promise<UserResult> {
  const who = `user ${index}`;
  const mobile = randomMobileNumber();
  const ip = randomClientIp();
  const none: UserResult = { accepted: 0, limited: 0, unsettled: [], judge: async () => {} };

  let token: string;
  try {
    ({ token } = await createSession(
      { baseUrl, fetch: timedFetch },
      { mobile_number: mobile, name: `load ${RUN_ID} ${index}` },
      ip,
    ));
  } catch (err) {
    violation(`${who} ${err instanceof FlowError ? err.message : String(err)}`);
    return none;
  }

  const before = await api("GET /subscription/status", "GET", "/subscription/status", { token });
  if (!expectStatus(before, 200, `${who} status`)) return none;
  const limit = before.body.usage.daily_limit as number;
  if (before.body.usage.used_today !== 0) {
    violation(`${who}: a new user starts with used_today ${before.body.usage.used_today}`);
  }

  const rooms: string[] = [];
  for (let r = 0; r < CHATROOMS; r++) {
    // Keyed, so a create answered 503 whose write committed all the same is answered with that
    // room when resent (the same key: `api` resends the same request), not a second one.
    const created = await api("POST /chatroom", "POST", "/chatroom", {
      token,
      body: { title: `load ${RUN_ID} u${index} r${r}` },
      headers: { "idempotency-key": crypto.randomUUID() },
    });
    if (!expectStatus(created, 201, `${who} create chatroom`)) return none;
    if (created.headers.get("idempotent-replayed") === "true") createsReplayed++;
    rooms.push(created.body.chatroom.id);
  }
  const listed = await api("GET /chatroom", "GET", "/chatroom?limit=100", { token });
  if (expectStatus(listed, 200, `${who} list chatrooms`)) {
    // Exactly the rooms created: each create was keyed, so none of its resends made another.
    const ids = new Set((listed.body.chatrooms as { id: string }[]).map((c) => c.id));
    const missing = rooms.filter((id) => !ids.has(id)).length;
    if (ids.size !== rooms.length || missing > 0) {
      violation(
        `${who}: GET /chatroom lists ${ids.size} rooms, created ${rooms.length} (${missing} of them not listed)`,
      );
    }
  }

  const polls: Promise<void>[] = [];
  const unsettled: Unsettled[] = [];
  const pollReply = async (a: Accepted) => {
    // 200 ms steps for the first 5 s (the latency figure's resolution), then backing off.
    const firstPoll = Date.now();
    for (
      let wait = 200;
      ;
      wait = Date.now() - firstPoll < 5000 ? 200 : Math.min(1000, wait * 1.5)
    ) {
      await sleep(wait);
      const res = await api(
        "GET /chatroom/:id/messages/:message_id",
        "GET",
        `/chatroom/${a.chatroomId}/messages/${a.replyId}`,
        { token },
      );
      if (!expectStatus(res, 200, `${who} poll reply`)) return;
      if (settled(who, a, res.body.message)) return;
      if (Date.now() > deadline) {
        // Left to the settle phase (the sweep may still have to publish it).
        unsettled.push({ who, token, reply: a });
        return;
      }
    }
  };

  // Prompts go one after another, so the 429s must start exactly at the daily limit.
  const accepted: Accepted[] = [];
  let limited = 0;
  // Attempts answered 503 so far: each may hold a quota token until its write's outcome is known
  // (ADR 3: settled 20 s after the write was sent, or by the sweep), so meanwhile the user's count
  // may read up to that many higher.
  let mayBeHeld = 0;
  for (let p = 0; p < PROMPTS; p++) {
    const chatroomId = rooms[p % rooms.length] as string;
    const content = `load ${RUN_ID} u${index} p${p}: name a colour`;
    const sentAt = performance.now();
    // Keyed, so a prompt resent after a 503 is answered once (a replay if the first committed).
    const send = () =>
      api("POST /chatroom/:id/message", "POST", `/chatroom/${chatroomId}/message`, {
        token,
        body: { content },
        headers: { "idempotency-key": crypto.randomUUID() },
      });
    let res = await send();
    mayBeHeld += res.resent503;
    if (res.status === 429 && accepted.length < limit && mayBeHeld > 0) {
      // Refused below the limit while earlier attempts' tokens may be held: a client that knows
      // the contract waits for them to settle and sends once more.
      await sleep(HELD_TOKEN_SETTLE_MS);
      res = await send();
      mayBeHeld += res.resent503;
    }
    if (res.status === 202) {
      if (accepted.length >= limit) violation(`${who} prompt ${p}: accepted beyond the limit`);
      const a: Accepted = {
        chatroomId,
        messageId: res.body.message.id,
        replyId: res.body.reply.id,
        content,
        sentAt,
        createdAt: res.body.reply.created_at,
      };
      accepted.push(a);
      polls.push(pollReply(a));
      const remaining = Number(res.headers.get("ratelimit-remaining"));
      const most = limit - accepted.length;
      if (!(remaining <= most && remaining >= Math.max(0, most - mayBeHeld))) {
        violation(
          `${who} prompt ${p}: RateLimit-Remaining ${remaining}, expected ${most}${mayBeHeld ? ` down to ${Math.max(0, most - mayBeHeld)} (${mayBeHeld} attempts answered 503)` : ""}`,
        );
      }
    } else if (res.status === 429) {
      limited++;
      if (accepted.length < limit) {
        violation(`${who} prompt ${p}: 429 after ${accepted.length} of ${limit} prompts`);
      }
    } else {
      violation(`${who} prompt ${p}: ${res.status} ${res.text.slice(0, 200)}`);
    }
  }
  const expectedAccepted = Math.min(PROMPTS, limit);
  if (accepted.length !== expectedAccepted) {
    violation(`${who}: ${accepted.length} prompts accepted, expected ${expectedAccepted}`);
  }

  // Every reply must leave `pending`, as `complete`; each is polled from the moment it is accepted.
  await Promise.all(polls);
  return { accepted: accepted.length, limited, unsettled, judge };

  /** Exactly one prompt and one reply per accepted prompt, and the quota, once settled. */
  async function judge(): Promise<void> {
    for (const chatroomId of rooms) {
      const mine = accepted.filter((a) => a.chatroomId === chatroomId);
      const res = await api(
        "GET /chatroom/:id/messages",
        "GET",
        `/chatroom/${chatroomId}/messages?limit=100`,
        {
          token,
        },
      );
      if (!expectStatus(res, 200, `${who} list messages`)) continue;
      const messages = res.body.messages as {
        id: string;
        role: string;
        status: string;
        content: string;
      }[];
      const prompts = messages.filter((m) => m.role === "user");
      const replies = messages.filter((m) => m.role === "model");
      if (prompts.length !== mine.length || replies.length !== mine.length) {
        violation(
          `${who} room ${chatroomId}: ${prompts.length} prompts and ${replies.length} replies stored, ${mine.length} accepted`,
        );
      }
      for (const a of mine) {
        const copies = prompts.filter((m) => m.content === a.content).length;
        if (copies !== 1) violation(`${who}: prompt "${a.content}" stored ${copies} times`);
        const reply = replies.filter((m) => m.id === a.replyId);
        if (reply.length !== 1 || reply[0]?.status !== "complete") {
          violation(
            `${who}: reply ${a.replyId} stored ${reply.length} times (${reply[0]?.status})`,
            a.replyId,
          );
        }
      }
      const strays = replies.filter((m) => !mine.some((a) => a.replyId === m.id));
      if (strays.length > 0)
        violation(`${who} room ${chatroomId}: ${strays.length} unexpected replies`);
    }

    const after = await api("GET /subscription/status", "GET", "/subscription/status", { token });
    if (
      expectStatus(after, 200, `${who} status`) &&
      after.body.usage.used_today !== accepted.length
    ) {
      violation(`${who}: used_today ${after.body.usage.used_today}, accepted ${accepted.length}`);
    }
  }
}

/** Records a reply that has left `pending`; false while it is still pending. */
// biome-ignore lint/suspicious/noExplicitAny: the message as the API answers it.
function settled(who: string, a: Accepted, m: any): boolean {
  if (m.status === "pending") return false;
  replyLatency.push(performance.now() - a.sentAt);
  if (m.completed_at) {
    serverReplyLatency.push(Date.parse(m.completed_at) - Date.parse(a.createdAt));
  }
  if (m.status !== "complete") {
    violation(`${who} reply ${a.replyId}: ${m.status} ${m.error}`, a.replyId);
  }
  return true;
}

/**
 * Runs the Worker's cron sweep once (`/cdn-cgi/handler/scheduled`: `wrangler dev` with
 * `testScheduled`, as the self-hosted stack and `npm run dev` run it); false if it did not run.
 */
async function runSweep(): Promise<boolean> {
  const res = await fetch(`${baseUrl}/cdn-cgi/handler/scheduled?cron=*+*+*+*+*`).catch(
    () => undefined,
  );
  await res?.body?.cancel();
  return res?.ok === true;
}

/** The cron trigger (`* * * * *`), which `wrangler dev` does not fire by itself: every minute. */
function startCron(): { runs: number; stop(): void } {
  const cron = {
    runs: 0,
    stop: () => clearInterval(timer),
  };
  const timer = setInterval(() => {
    void runSweep().then((ran) => {
      if (ran) cron.runs++;
    });
  }, 60_000);
  return cron;
}

/**
 * After the drive: runs the Worker's sweep every SWEEP_EVERY_MS (as its cron would) and polls the
 * replies still pending until each has settled or SETTLE_MS has passed; those left are violations.
 */
async function settle(left: Unsettled[]): Promise<{ ms: number; sweeps: number }> {
  const started = Date.now();
  let sweeps = 0;
  let pending = left;
  while (pending.length > 0) {
    if (await runSweep()) sweeps++;
    const still: Unsettled[] = [];
    for (const u of pending) {
      const res = await api(
        "GET /chatroom/:id/messages/:message_id",
        "GET",
        `/chatroom/${u.reply.chatroomId}/messages/${u.reply.replyId}`,
        { token: u.token },
      );
      if (
        !expectStatus(res, 200, `${u.who} poll reply`) ||
        !settled(u.who, u.reply, res.body.message)
      ) {
        if (res.status === 200) still.push(u);
      }
    }
    pending = still;
    if (pending.length === 0 || Date.now() - started > SETTLE_MS) break;
    await sleep(SWEEP_EVERY_MS);
  }
  for (const u of pending) {
    violation(
      `${u.who} reply ${u.reply.replyId}: still pending ${Math.round((Date.now() - started) / 1000)} s after the drive (sweep run ${sweeps} times)`,
      u.reply.replyId,
    );
    await describeQStash(u.reply.content);
  }
  return { ms: Date.now() - started, sweeps };
}

interface HostedStack {
  workerUrl: string;
  cloudUrl: string;
  pid: number;
  close(): Promise<void>;
}

/** The local cloud + Worker in a child process, so its CPU is told apart from the load's. */
async function hostStack(vars: Record<string, string>): Promise<HostedStack> {
  const child = spawn(
    process.execPath,
    [new URL("./support/stack-process.ts", import.meta.url).pathname, JSON.stringify(vars)],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const exited = new Promise<number | null>((done) => child.once("exit", done));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise<string>((done) => lines.once("line", done)),
    exited.then((code) => {
      throw new Error(`the stack process exited (${code}) before it was ready`);
    }),
  ]);
  const ready = JSON.parse(first) as { workerUrl: string; cloudUrl: string };
  return {
    ...ready,
    pid: child.pid as number,
    close: async () => {
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** The processes worth watching: this one, the stack's, each workerd, postgres if used. */
function cpuTargets(stack: HostedStack): CpuTarget[] {
  const workerd = descendantsOf(stack.pid).filter((p) => p.comm === "workerd");
  const port = Number(new URL(stack.workerUrl).port);
  const front = new Set(
    listenersOf(
      port,
      workerd.map((p) => p.pid),
    ),
  );
  const targets: CpuTarget[] = [
    { label: "load generator (this process)", pids: [process.pid] },
    { label: "local cloud (Node: PGlite, Redis, QStash, Gemini, Stripe)", pids: [stack.pid] },
    ...workerd.map((p) => ({
      label: front.has(p.pid)
        ? `workerd ${p.pid} (listens on the Worker's port)`
        : `workerd ${p.pid} (the Worker behind wrangler's proxy)`,
      pids: [p.pid],
    })),
  ];
  if (process.env.LOCAL_DATABASE_URL) {
    // Every postgres process on the machine: other jobs using the same server are included.
    const postgres = descendantsOf(1).filter((p) => p.comm === "postgres");
    if (postgres.length > 0) {
      targets.push({
        label: "postgres (all backends on this host)",
        pids: postgres.map((p) => p.pid),
      });
    }
  }
  return targets;
}

function printCpu(report: CpuReport): void {
  const rows = report.rows.map((r) => [
    r.label,
    r.cpu_seconds,
    r.mean_core_pct,
    `${r.busiest_thread_pct} (${r.busiest_thread})`,
    r.busiest_thread_p95_pct,
  ]);
  console.log(
    `\n${table(
      [
        "process CPU (/proc)",
        "cpu s",
        "% of a core",
        "busiest thread % of a core",
        "its p95 (1 s samples)",
      ],
      rows,
    )}`,
  );
  console.log(
    `machine: ${report.cores} cores, ${report.machine_busy_pct}% busy over ${report.seconds} s; other jobs ${report.others_core_pct}% of a core`,
  );
}

/**
 * Which process saturates first, and why: an event loop near a whole core is saturated; else the
 * machine, when its CPU ran out (other jobs included); else no CPU at all, and the run spent its
 * time waiting: on a dependency past the Worker's deadlines when it answered 503s.
 */
function saturation(report: CpuReport, resent503: number): string {
  const top = [...report.rows].sort((a, b) => b.busiest_thread_pct - a.busiest_thread_pct)[0];
  if (!top) return "unknown (no CPU samples)";
  const busiest = `${top.label} (its ${top.busiest_thread} thread at ${top.busiest_thread_pct}% of a core on average, p95 ${top.busiest_thread_p95_pct}%)`;
  if (top.busiest_thread_pct >= 80) return `${busiest}: its event loop is near a whole core`;
  if (report.machine_busy_pct >= 90) {
    return `the machine (${report.machine_busy_pct}% busy, other jobs ${report.others_core_pct}% of a core); no thread of ours is near a core, the busiest is ${busiest}`;
  }
  const waited =
    resent503 === 0
      ? "nothing answered 503, so the load itself was too small to saturate anything"
      : `${resent503} answers were 503 (a dependency past the Worker's deadline: Neon 10 s, Redis 2 s)${
          process.env.LOCAL_DATABASE_URL
            ? ""
            : "; with the embedded PGlite the local cloud answers every SQL request in turn on one connection, so its queue, not a CPU, is the likely first wall (LOCAL_DATABASE_URL takes it out)"
        }`;
  return `no process on CPU: the busiest is ${busiest} and the machine was ${report.machine_busy_pct}% busy; the run waited instead: ${waited}`;
}

let hosted: HostedStack | undefined;
let cpu: ReturnType<typeof sampleCpu> | undefined;
let cpuReport: CpuReport | undefined;
let exitCode = 0;
try {
  if (args["self-host"]) {
    // Prompts go back to back without waiting for replies: lift MAX_PENDING_REPLIES (tested on
    // its own in test/api/chat-pending-limit.test.ts) so the daily-limit invariants stay exact.
    hosted = await hostStack({
      MAX_PENDING_REPLIES_BASIC: "1000",
      MAX_PENDING_REPLIES_PRO: "1000",
    });
    baseUrl = hosted.workerUrl;
    cloudUrl = hosted.cloudUrl;
    console.log(`self-hosted Worker at ${baseUrl}, local cloud at ${hosted.cloudUrl}`);
  }
  assertLoopback(baseUrl);
  assertLoopback(cloudUrl);
  const health = await timedRequest(baseUrl, "GET", "/health");
  if (health.status !== 200) throw new Error(`${baseUrl}/health answered ${health.status}`);

  console.log(`load ${RUN_ID}: ${USERS} users × ${PROMPTS} prompts over ${CHATROOMS} chatrooms`);
  const started = performance.now();
  if (hosted) cpu = sampleCpu(cpuTargets(hosted));
  const cron = startCron();
  const timer = new Promise<never>((_, fail) =>
    setTimeout(
      () => fail(new Error(`the run exceeded ${TIMEOUT_MS / 1000} s`)),
      TIMEOUT_MS + 5000,
    ).unref(),
  );
  const results = await Promise.race([
    Promise.all(
      Array.from({ length: USERS }, async (_, i) => {
        if (RAMP_MS > 0) await sleep((RAMP_MS * i) / USERS);
        return simulateUser(i);
      }),
    ),
    timer,
  ]);
  const seconds = (performance.now() - started) / 1000;
  cpuReport = cpu?.stop();
  cron.stop();
  const unsettled = results.flatMap((r) => r.unsettled);
  if (unsettled.length > 0) {
    console.log(
      `settling: ${unsettled.length} replies pending after the drive; running the sweep (up to ${SETTLE_MS / 1000} s)`,
    );
  }
  const settling = await settle(unsettled);
  for (const r of results) await r.judge();

  const accepted = results.reduce((n, r) => n + r.accepted, 0);
  const limited = results.reduce((n, r) => n + r.limited, 0);
  const rows = samples
    .summaries()
    .map(([label, s]) => [label, s.count, ms1(s.p50), ms1(s.p95), ms1(s.p99), ms1(s.max)]);
  console.log(`\n${table(["endpoint", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows)}`);
  const e2e = summarize(replyLatency);
  const server = summarize(serverReplyLatency);
  console.log(
    `\n${table(
      ["reply latency", "n", "p50 ms", "p95 ms", "p99 ms", "max ms"],
      [
        [
          "client: send → seen complete",
          e2e.count,
          ms1(e2e.p50),
          ms1(e2e.p95),
          ms1(e2e.p99),
          ms1(e2e.max),
        ],
        [
          "server: created_at → completed_at",
          server.count,
          ms1(server.p50),
          ms1(server.p95),
          ms1(server.p99),
          ms1(server.max),
        ],
      ],
    )}`,
  );
  if (cpuReport) printCpu(cpuReport);
  const resent503 = [...retried.values()].reduce((a, b) => a + b, 0);
  const saturatesFirst = cpuReport ? saturation(cpuReport, resent503) : undefined;
  const summary = {
    run_id: RUN_ID,
    base_url: baseUrl,
    users: USERS,
    prompts_per_user: PROMPTS,
    chatrooms_per_user: CHATROOMS,
    seconds: Number(seconds.toFixed(2)),
    requests,
    requests_per_second: Number((requests / seconds).toFixed(1)),
    prompts_accepted: accepted,
    prompts_limited: limited,
    replies_completed: replyLatency.length,
    replies_per_second: Number((replyLatency.length / seconds).toFixed(1)),
    retried_503: resent503,
    retried_503_by_endpoint: Object.fromEntries(retried),
    resent_in_progress_409: resentInProgress,
    chatroom_creates_replayed: createsReplayed,
    pending_after_drive: unsettled.length,
    settle_seconds: Number((settling.ms / 1000).toFixed(1)),
    sweeps_run: settling.sweeps + cron.runs,
    ...(saturatesFirst ? { saturates_first: saturatesFirst } : {}),
    violations: violations.length,
  };
  console.log(`\n${JSON.stringify(summary, null, 2)}`);
  if (saturatesFirst) console.log(`\nsaturates first: ${saturatesFirst}`);
  if (args.json) {
    const { writeFileSync } = await import("node:fs");
    writeFileSync(
      args.json,
      JSON.stringify(
        {
          ...summary,
          endpoints: Object.fromEntries(samples.summaries()),
          reply_latency_client: e2e,
          reply_latency_server: server,
          ...(cpuReport ? { cpu: cpuReport } : {}),
          violation_list: violations,
        },
        null,
        2,
      ),
    );
  }
  if (violations.length > 0) {
    console.error(`\n${violations.length} violation(s):`);
    for (const v of violations.slice(0, 30)) console.error(`  - ${v}`);
    exitCode = 1;
  } else {
    console.log(
      "\nOK: every accepted prompt has exactly one completed reply; quota exact; chatrooms exactly those created.",
    );
  }
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  exitCode = 1;
} finally {
  await hosted?.close();
}
process.exit(exitCode);
