// `npm run cost`: what one prompt costs in vendor calls, measured rather than estimated. Starts the
// local cloud and the real Worker (like `npm run load -- --self-host`), drives a session mix
// through the typed client (src/client.ts) one operation at a time, and after each operation waits
// for the vendors' asynchronous work (QStash delivery and callback, Stripe webhooks, the Worker's
// waitUntil) before reading the local cloud's counters (`GET /_control/usage`). Prints a table per
// operation and per 1,000 prompts and writes the JSON that docs/capacity.md is checked against.
//
//   npm run cost                                   # 4 users, bench-results/cost.json
//   npm run cost -- --users 10 --json docs/capacity-cost.json
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseArgs } from "node:util";
import { type ApiClient, createClient } from "../src/client.ts";
import { type CapacityInputs, type CostRun, per1000Prompts } from "./cost/capacity-model.ts";
import {
  addCounts,
  type Counts,
  commandDiff,
  diff,
  METRICS,
  type Metric,
  settle,
  zeroCounts,
} from "./cost/usage.ts";
import { assertLoopback, randomClientIp, randomMobileNumber, table } from "./support/http.ts";
import { type SelfHosted, selfHost } from "./support/self-host.ts";

const { values: args } = parseArgs({
  options: {
    users: { type: "string", default: "4" },
    "queued-prompts": { type: "string", default: "3" },
    "streamed-prompts": { type: "string", default: "1" },
    "poll-ms": { type: "string", default: "1000" },
    json: { type: "string", default: "bench-results/cost.json" },
  },
});

function bounded(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`--${name} must be an integer in ${min}..${max} (got ${raw})`);
  }
  return n;
}

const USERS = bounded("users", args.users, 1, 100);
const QUEUED = bounded("queued-prompts", args["queued-prompts"], 0, 20);
const STREAMED = bounded("streamed-prompts", args["streamed-prompts"], 0, 20);
const POLL_MS = bounded("poll-ms", args["poll-ms"], 50, 10_000);
if (QUEUED + STREAMED === 0) throw new Error("the mix needs at least one prompt");
const PASSWORD = "cost run password 1";

/** The operations, in the order a user meets them; the names are the JSON's keys. */
const OPERATIONS = [
  "signup (signup + send-otp + verify-otp)",
  "login (password)",
  "create chatroom",
  "list chatrooms",
  "open chatroom (room + messages)",
  "queued prompt (202, polls until complete)",
  "streamed prompt (SSE until done)",
  "refresh token",
  "subscribe Pro (checkout + pay + webhook)",
] as const;
type Operation = (typeof OPERATIONS)[number];

interface Measured {
  runs: number;
  totals: Counts;
  /** Client requests that were polls (queued prompts only). */
  polls: number;
  redis_by_command: Record<string, number>;
}

const measured = new Map<Operation, Measured>(
  OPERATIONS.map((op) => [op, { runs: 0, totals: zeroCounts(), polls: 0, redis_by_command: {} }]),
);

let cloudUrl = "";
let clientRequests = 0;
/** fetch for the typed client: counts every request the simulated users send the Worker. */
const countingFetch: typeof fetch = (input, init) => {
  clientRequests++;
  return fetch(input as RequestInfo, init);
};

/**
 * Runs one operation alone, between two settled snapshots of the vendor counters, and adds what
 * it cost to that operation's totals.
 */
async function measure<T>(op: Operation, run: () => Promise<T>): Promise<T> {
  const before = await settle(cloudUrl);
  const requestsBefore = clientRequests;
  const result = await run();
  const after = await settle(cloudUrl);
  const m = measured.get(op) as Measured;
  m.runs++;
  addCounts(m.totals, diff(before, after, clientRequests - requestsBefore));
  for (const [name, n] of Object.entries(commandDiff(before, after))) {
    m.redis_by_command[name] = (m.redis_by_command[name] ?? 0) + n;
  }
  return result;
}

function expect(status: number, wanted: number, step: string, body?: unknown): void {
  if (status !== wanted) {
    throw new Error(`${step}: HTTP ${status} (expected ${wanted}) ${JSON.stringify(body ?? "")}`);
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface User {
  api: ApiClient;
  token: string;
  refreshToken: string;
}

function clientFor(baseUrl: string, ip: string, token?: string): ApiClient {
  return createClient(baseUrl, token, {
    fetch: countingFetch,
    headers: { "cf-connecting-ip": ip },
  });
}

async function signUp(baseUrl: string, ip: string, mobile_number: string, index: number) {
  const anonymous = clientFor(baseUrl, ip);
  const signup = await anonymous.auth.signup.$post({
    json: { mobile_number, name: `cost user ${index}`, password: PASSWORD },
  });
  const signed = await signup.json();
  expect(signup.status, 201, "signup", signed);
  const sent = await anonymous.auth["send-otp"].$post({ json: { mobile_number } });
  const code = await sent.json();
  expect(sent.status, 200, "send-otp", code);
  if (!("otp" in code) || typeof code.otp !== "string") {
    throw new Error("send-otp returned no code: the Worker needs OTP_DELIVERY=response");
  }
  const verified = await anonymous.auth["verify-otp"].$post({
    json: {
      mobile_number,
      otp: code.otp,
      challenge_id: code.challenge_id,
      ...("signup_token" in signed ? { signup_token: signed.signup_token as string } : {}),
    },
  });
  expect(verified.status, 200, "verify-otp", await verified.clone().json());
}

async function logIn(baseUrl: string, ip: string, mobile_number: string): Promise<User> {
  const res = await clientFor(baseUrl, ip).auth.login.$post({
    json: { mobile_number, password: PASSWORD },
  });
  const body = await res.json();
  expect(res.status, 200, "login", body);
  if (!("token" in body)) throw new Error("login answered without a token");
  return {
    api: clientFor(baseUrl, ip, body.token),
    token: body.token,
    refreshToken: body.refresh_token,
  };
}

async function queuedPrompt(u: User, chatroomId: string, content: string): Promise<number> {
  const res = await u.api.chatroom[":id"].message.$post({
    param: { id: chatroomId },
    header: {},
    json: { content },
  });
  const body = (await res.json()) as { reply?: { id: string } };
  expect(res.status, 202, "queued prompt", body);
  const replyId = body.reply?.id as string;
  // A client polls at a steady interval until the reply is no longer pending.
  for (let polls = 1; polls <= 120; polls++) {
    await sleep(POLL_MS);
    const poll = await u.api.chatroom[":id"].messages[":message_id"].$get({
      param: { id: chatroomId, message_id: replyId },
    });
    const { message } = (await poll.json()) as { message: { status: string } };
    expect(poll.status, 200, "poll", message);
    if (message.status === "complete") return polls;
    if (message.status !== "pending") throw new Error(`reply ${replyId} ended ${message.status}`);
  }
  throw new Error(`reply ${replyId} still pending after 120 polls`);
}

async function streamedPrompt(u: User, chatroomId: string, content: string): Promise<void> {
  const res = await u.api.chatroom[":id"].message.$post(
    { param: { id: chatroomId }, header: {}, json: { content } },
    { headers: { accept: "text/event-stream" } },
  );
  const status: number = res.status;
  if (status !== 200 || !res.body) {
    throw new Error(`streamed prompt: HTTP ${status} ${await res.text()}`);
  }
  const text = await res.text();
  if (!/^event: done$/m.test(text))
    throw new Error(`stream ended without done: ${text.slice(-300)}`);
}

async function subscribePro(u: User): Promise<void> {
  const res = await u.api.subscribe.pro.$post({ json: {} });
  const body = await res.json();
  if (res.status !== 200 && res.status !== 201) {
    throw new Error(`subscribe: HTTP ${res.status} ${JSON.stringify(body)}`);
  }
  const { checkout_url } = body as { checkout_url: string };
  // Pressing Pay on the local Checkout page, as the user's browser would; not a Worker request.
  const paid = await fetch(checkout_url, { method: "POST", redirect: "manual" });
  await paid.body?.cancel();
  if (paid.status !== 200 && paid.status !== 303) throw new Error(`checkout pay: ${paid.status}`);
}

let promptsSent = 0;

async function simulateUser(baseUrl: string, index: number): Promise<void> {
  const ip = randomClientIp();
  const mobile = randomMobileNumber();
  await measure("signup (signup + send-otp + verify-otp)", () =>
    signUp(baseUrl, ip, mobile, index),
  );
  const u = await measure("login (password)", () => logIn(baseUrl, ip, mobile));
  const chatroomId = await measure("create chatroom", async () => {
    const res = await u.api.chatroom.$post({ json: { title: `cost ${index}` } });
    const body = await res.json();
    expect(res.status, 201, "create chatroom", body);
    return (body as { chatroom: { id: string } }).chatroom.id;
  });
  await measure("list chatrooms", async () => {
    const res = await u.api.chatroom.$get({ query: {} });
    expect(res.status, 200, "list chatrooms", await res.json());
  });
  await measure("open chatroom (room + messages)", async () => {
    const [room, messages] = await Promise.all([
      u.api.chatroom[":id"].$get({ param: { id: chatroomId } }),
      u.api.chatroom[":id"].messages.$get({ param: { id: chatroomId }, query: {} }),
    ]);
    expect(room.status, 200, "open chatroom", await room.json());
    expect(messages.status, 200, "messages", await messages.json());
  });
  for (let p = 0; p < QUEUED; p++) {
    const polls = await measure("queued prompt (202, polls until complete)", () =>
      queuedPrompt(u, chatroomId, `cost ${index} q${p}: name a colour`),
    );
    (measured.get("queued prompt (202, polls until complete)") as Measured).polls += polls;
    promptsSent++;
  }
  for (let p = 0; p < STREAMED; p++) {
    await measure("streamed prompt (SSE until done)", () =>
      streamedPrompt(u, chatroomId, `cost ${index} s${p}: name a colour`),
    );
    promptsSent++;
  }
  await measure("refresh token", async () => {
    const res = await u.api.auth.refresh.$post({ json: { refresh_token: u.refreshToken } });
    expect(res.status, 200, "refresh", await res.json());
  });
  // After the prompts: a Basic user within the daily limit, as the mix's prompt counts assume.
  await measure("subscribe Pro (checkout + pay + webhook)", () => subscribePro(u));
}

const fmt = (n: number) => (Number.isInteger(n) ? String(n) : n.toFixed(2));
const SHOWN: Metric[] = [
  "worker_requests",
  "neon_requests",
  "neon_statements",
  "redis_commands",
  "redis_requests",
  "qstash_messages",
  "gemini_calls",
  "stripe_calls",
];
const SHORT: Record<string, string> = {
  worker_requests: "worker req",
  neon_requests: "neon req",
  neon_statements: "neon stmt",
  redis_commands: "redis cmd",
  redis_requests: "redis req",
  qstash_messages: "qstash msg",
  gemini_calls: "gemini",
  stripe_calls: "stripe",
};

function perOperation(m: Measured): Counts {
  const out = zeroCounts();
  for (const k of METRICS) out[k] = m.runs === 0 ? 0 : m.totals[k] / m.runs;
  return out;
}

let hosted: SelfHosted | undefined;
let exitCode = 0;
try {
  mkdirSync(dirname(args.json), { recursive: true });
  hosted = await selfHost({
    // Subscribing after the prompts keeps the Basic limit (5) above the mix's prompts per user.
    vars: { BASIC_DAILY_LIMIT: String(Math.max(5, QUEUED + STREAMED)) },
  });
  cloudUrl = hosted.cloudUrl;
  assertLoopback(hosted.workerUrl);
  assertLoopback(cloudUrl);
  console.log(`self-hosted Worker at ${hosted.workerUrl}, local cloud at ${cloudUrl}`);
  console.log(
    `mix per user: signup, login, create + list + open a chatroom, ${QUEUED} queued prompt(s) polled every ${POLL_MS} ms, ${STREAMED} streamed, refresh, Pro checkout; ${USERS} user(s)`,
  );
  for (let i = 0; i < USERS; i++) await simulateUser(hosted.workerUrl, i);

  const rows = OPERATIONS.map((op) => {
    const m = measured.get(op) as Measured;
    const per = perOperation(m);
    return [op, m.runs, ...SHOWN.map((k) => fmt(per[k]))];
  });
  console.log(
    `\nper operation (mean of runs)\n${table(["operation", "runs", ...SHOWN.map((k) => SHORT[k] ?? k)], rows)}`,
  );

  const total = zeroCounts();
  for (const m of measured.values()) addCounts(total, m.totals);
  const per1000 = zeroCounts();
  for (const k of METRICS) per1000[k] = (total[k] / promptsSent) * 1000;
  const queued = measured.get("queued prompt (202, polls until complete)") as Measured;
  const json = {
    generated_at: new Date().toISOString(),
    command: [
      "npm run cost",
      ...(process.argv.length > 2 ? ["--", ...process.argv.slice(2)] : []),
    ].join(" "),
    mix: {
      users: USERS,
      queued_prompts_per_user: QUEUED,
      streamed_prompts_per_user: STREAMED,
      poll_ms: POLL_MS,
      polls_per_queued_prompt: queued.runs === 0 ? 0 : queued.polls / queued.runs,
    },
    prompts: promptsSent,
    operations: Object.fromEntries(
      OPERATIONS.map((op) => {
        const m = measured.get(op) as Measured;
        return [
          op,
          {
            runs: m.runs,
            per_operation: perOperation(m),
            totals: m.totals,
            redis_by_command: m.redis_by_command,
          },
        ];
      }),
    ),
    totals: total,
    per_1000_prompts: per1000,
  };
  writeFileSync(args.json, `${JSON.stringify(json, null, 2)}\n`);

  // The run signs up and subscribes every user; docs/capacity.json's daily mix is the realistic
  // weighting (a day's logins, refreshes and prompts per user), so both are shown.
  const inputs = JSON.parse(
    readFileSync(resolve(import.meta.dirname, "../docs/capacity.json"), "utf8"),
  ) as CapacityInputs;
  const daily = per1000Prompts(inputs, json as unknown as CostRun);
  console.log(
    `\nper 1,000 prompts\n${table(
      ["vendor metric", `this run (${promptsSent} prompts)`, "daily mix (docs/capacity.json)"],
      METRICS.map((k) => [k, Math.round(per1000[k]), Math.round(daily[k])]),
    )}`,
  );
  console.log(`\nwrote ${args.json}`);
} catch (err) {
  console.error(err instanceof Error ? err.message : err);
  exitCode = 1;
} finally {
  await hosted?.close();
}
process.exit(exitCode);
