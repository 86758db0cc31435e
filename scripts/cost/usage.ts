// What the local cloud counted as billable vendor work (`GET /_control/usage`), flattened to the
// metrics `npm run cost` reports and docs/capacity.md prices.
import type { UsageReport } from "../../local/usage.ts";

/**
 * The flat metrics per operation. `worker_requests` is what Cloudflare bills: the client's own
 * requests plus the QStash callbacks and Stripe webhooks the vendors send the Worker.
 */
export const METRICS = [
  "worker_requests",
  "neon_requests",
  "neon_statements",
  "redis_requests",
  "redis_commands",
  "qstash_messages",
  "qstash_publishes",
  "qstash_deliveries",
  "qstash_callbacks",
  "qstash_retries",
  "gemini_calls",
  "gemini_input_tokens",
  "gemini_output_tokens",
  "stripe_calls",
  "stripe_webhooks",
] as const;
export type Metric = (typeof METRICS)[number];
export type Counts = Record<Metric, number>;

export function zeroCounts(): Counts {
  return Object.fromEntries(METRICS.map((m) => [m, 0])) as Counts;
}

export function addCounts(into: Counts, more: Counts): void {
  for (const m of METRICS) into[m] += more[m];
}

/** Vendor usage plus the two figures the usage endpoint does not hold. */
export interface Snapshot {
  usage: UsageReport;
  /** Stripe events the local Stripe has created (each one webhook delivery to the Worker). */
  stripeEvents: number;
}

/** The difference between two snapshots, with the client's own requests to the Worker. */
export function diff(before: Snapshot, after: Snapshot, clientRequests: number): Counts {
  const a = after.usage;
  const b = before.usage;
  const stripeWebhooks = after.stripeEvents - before.stripeEvents;
  return {
    worker_requests: clientRequests + (a.qstash.callbacks - b.qstash.callbacks) + stripeWebhooks,
    neon_requests: a.neon.requests - b.neon.requests,
    neon_statements: a.neon.statements - b.neon.statements,
    redis_requests: a.redis.requests - b.redis.requests,
    redis_commands: a.redis.commands - b.redis.commands,
    qstash_messages: a.qstash.messages - b.qstash.messages,
    qstash_publishes: a.qstash.publishes - b.qstash.publishes,
    qstash_deliveries: a.qstash.deliveries - b.qstash.deliveries,
    qstash_callbacks: a.qstash.callbacks - b.qstash.callbacks,
    qstash_retries: a.qstash.retries - b.qstash.retries,
    gemini_calls: a.gemini.calls - b.gemini.calls,
    gemini_input_tokens: a.gemini.input_tokens - b.gemini.input_tokens,
    gemini_output_tokens: a.gemini.output_tokens - b.gemini.output_tokens,
    stripe_calls: a.stripe.calls - b.stripe.calls,
    stripe_webhooks: stripeWebhooks,
  };
}

/** Redis commands by name, after minus before (only the names that moved). */
export function commandDiff(before: Snapshot, after: Snapshot): Record<string, number> {
  const out: Record<string, number> = {};
  const a = after.usage.redis.by_command;
  const b = before.usage.redis.by_command;
  for (const [name, n] of Object.entries(a)) {
    const d = n - (b[name] ?? 0);
    if (d !== 0) out[name] = d;
  }
  return out;
}

async function getJson(url: string): Promise<unknown> {
  const res = await fetch(url);
  if (res.status === 404) {
    await res.body?.cancel();
    throw new Error(
      `local cloud has no ${new URL(url).pathname} (404): this local cloud predates the usage counters`,
    );
  }
  if (!res.ok) throw new Error(`${url} answered ${res.status}: ${await res.text()}`);
  return res.json();
}

export async function readUsage(cloudUrl: string): Promise<UsageReport> {
  const body = (await getJson(`${cloudUrl}/_control/usage`)) as Partial<UsageReport>;
  for (const vendor of ["neon", "redis", "qstash", "gemini", "stripe"] as const) {
    if (typeof body[vendor] !== "object" || body[vendor] === null) {
      throw new Error(`local cloud's /_control/usage has no "${vendor}" section`);
    }
  }
  return body as UsageReport;
}

export async function snapshot(cloudUrl: string): Promise<Snapshot> {
  const [usage, events] = await Promise.all([
    readUsage(cloudUrl),
    getJson(`${cloudUrl}/_control/stripe/events`) as Promise<{ data: unknown[] }>,
  ]);
  return { usage, stripeEvents: events.data.length };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until the vendors' asynchronous work has finished: every QStash message settled (delivered
 * and called back), every Stripe webhook delivered, then the counters unchanged for `quietMs`
 * (the Worker's waitUntil work: rate-limit analytics, cache refreshes). Returns the settled
 * snapshot.
 */
export async function settle(
  cloudUrl: string,
  quietMs = 250,
  timeoutMs = 30_000,
): Promise<Snapshot> {
  const deadline = Date.now() + timeoutMs;
  const flush = async (vendor: "qstash" | "stripe") => {
    const res = await fetch(`${cloudUrl}/_control/${vendor}/flush`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ timeout_ms: Math.max(1000, deadline - Date.now()) }),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`${vendor} work still pending after ${timeoutMs} ms: ${text}`);
  };
  await Promise.all([flush("qstash"), flush("stripe")]);
  // Only the counters: any other field the endpoint may add (a timestamp) must not keep it waiting.
  const key = (s: Snapshot) => {
    const { neon, redis, qstash, gemini, stripe } = s.usage;
    return JSON.stringify([neon, redis, qstash, gemini, stripe, s.stripeEvents]);
  };
  let last = await snapshot(cloudUrl);
  for (;;) {
    await sleep(quietMs);
    const next = await snapshot(cloudUrl);
    if (key(next) === key(last)) return next;
    if (Date.now() > deadline)
      throw new Error(`vendor counters still moving after ${timeoutMs} ms`);
    last = next;
  }
}
