// The fault schedule: on a seeded random timetable, switches the local cloud's faults on for a
// short window and off again. Every fault is scoped so the harness itself keeps working: Gemini
// and QStash faults match the run's prompt tag; Redis and Neon faults hit the Worker's data
// paths only (the audit reads through /_control, which bypasses them); Stripe faults hit the
// Worker's API calls and webhook deliveries, never the soak's own reads.
import { createRng, type Rng } from "./rng.ts";

/** Fault windows that may be open at the same time. */
const LANES = 3;

export const FAULT_KINDS = [
  "gemini_429",
  "gemini_500",
  "gemini_503",
  "gemini_slow",
  "gemini_stream_error",
  "gemini_stream_cut",
  "qstash_publish_error",
  "redis_down",
  "redis_error",
  "redis_slow",
  "neon_down",
  "neon_slow",
  "stripe_api_error",
  "stripe_webhooks_duplicate",
  "stripe_webhooks_reverse",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

type Control = (path: string, body?: unknown, method?: string) => Promise<unknown>;

export interface ChaosOptions {
  control: Control;
  /** Share of the run's time some fault window is open (0..1). */
  faultRate: number;
  /** The kinds the lanes draw from (all of FAULT_KINDS unless narrowed, to bisect a finding). */
  kinds: readonly FaultKind[];
  /** Text every soak prompt contains, so Gemini/QStash faults never touch anything else. */
  tag: string;
  seed: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Switches a fault on; returns how to switch it off. */
async function switchOn(
  kind: FaultKind,
  o: ChaosOptions,
  rng: Rng,
): Promise<() => Promise<unknown>> {
  const { control, tag } = o;
  const gemini = async (body: Record<string, unknown>) => {
    await control("gemini/faults", { match: tag, times: rng.int(1, 20), ...body });
    return () => control(`gemini/faults?match=${encodeURIComponent(tag)}`, undefined, "DELETE");
  };
  switch (kind) {
    // The real 429 shape (RetryInfo.retryDelay, no Retry-After header); a short wait here.
    case "gemini_429":
      return gemini({ kind: "rate_limit", retry_after: 0.5 });
    case "gemini_500":
      return gemini({ kind: "server_error" });
    case "gemini_503":
      return gemini({ kind: "unavailable" });
    case "gemini_slow":
      return gemini({ kind: "slow", ms: rng.int(200, 1500) });
    case "gemini_stream_error":
      return gemini({ kind: "stream_error" });
    case "gemini_stream_cut":
      return gemini({ kind: "stream_cut" });
    case "qstash_publish_error":
      await control("qstash/publish-fault", { mode: "error", match: tag });
      return () => control("qstash/publish-fault", { mode: "none" });
    case "redis_down":
    case "redis_error":
    case "redis_slow":
      await control("redis/fault", {
        mode: kind.slice("redis_".length),
        ms: rng.int(100, 1500),
      });
      return () => control("redis/fault", { mode: "none" });
    case "neon_down":
      await control("neon/fault", { mode: "down" });
      return () => control("neon/fault", { mode: "none" });
    case "neon_slow":
      await control("neon/fault", { mode: "slow", ms: rng.int(100, 1200) });
      return () => control("neon/fault", { mode: "none" });
    case "stripe_api_error":
      await control("stripe/fault", {
        mode: "error",
        count: rng.int(1, 5),
        when: rng.pick(["before", "after"]),
      });
      return () => control("stripe/fault", { mode: "none" });
    case "stripe_webhooks_duplicate":
    case "stripe_webhooks_reverse":
      await control("stripe/delivery", { mode: kind.slice("stripe_webhooks_".length) });
      return () => control("stripe/delivery", { mode: "normal" });
  }
}

export interface Chaos {
  /** Windows opened per fault kind. */
  injected: Record<FaultKind, number>;
  /** Stops the schedule and switches every fault off. */
  stop(): Promise<void>;
}

/**
 * Starts the schedule: QStash's at-least-once chaos (duplicated and held-back deliveries and
 * callbacks) is on for the whole run at a rate set by `faultRate`; the other faults open in three
 * overlapping lanes, 0.2–1.5 s each, each lane quiet between windows so that it is open
 * `faultRate` of the time.
 */
export async function startChaos(o: ChaosOptions): Promise<Chaos> {
  const injected = Object.fromEntries(FAULT_KINDS.map((k) => [k, 0])) as Record<FaultKind, number>;
  const rate = o.kinds.length === 0 ? 0 : Math.min(1, Math.max(0, o.faultRate));
  if (rate > 0) {
    await o.control("qstash/chaos", {
      duplicate: Math.min(1, rate / 2),
      hold: Math.min(1, rate / 2),
      hold_ms: 1500,
      match: o.tag,
      seed: o.seed,
    });
  }
  let stopped = false;
  const open = new Set<() => Promise<unknown>>();
  // Several lanes, so faults of different vendors overlap ("every fault at once"); each lane
  // draws from its own seeded stream so the timetable does not depend on the others' timing.
  const lane = async (rng: Rng) => {
    while (!stopped && rate > 0) {
      const windowMs = rng.int(200, 1500);
      const gapMs = Math.round((windowMs * (1 - rate)) / rate);
      await sleep(rng.int(Math.round(gapMs / 2), Math.round(gapMs * 1.5)));
      if (stopped) break;
      const kind = rng.pick(o.kinds);
      const off = await switchOn(kind, o, rng);
      open.add(off);
      injected[kind]++;
      await sleep(windowMs);
      open.delete(off);
      await off();
    }
  };
  const lanes = Promise.all(
    Array.from({ length: LANES }, (_, i) => lane(createRng(o.seed * 31 + i + 1))),
  );
  return {
    injected,
    async stop() {
      stopped = true;
      await lanes;
      for (const off of open) await off();
      await clearAll(o.control, o.tag);
    },
  };
}

/** Every switch back to normal (also run before the audit, whatever happened). */
export async function clearAll(control: Control, tag: string): Promise<void> {
  await control(`gemini/faults?match=${encodeURIComponent(tag)}`, undefined, "DELETE");
  await control("qstash/publish-fault", { mode: "none" });
  await control("qstash/chaos", {});
  await control("redis/fault", { mode: "none" });
  await control("neon/fault", { mode: "none" });
  await control("stripe/fault", { mode: "none" });
  await control("stripe/delivery", { mode: "normal" });
}
