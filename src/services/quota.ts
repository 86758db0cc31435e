import type { ServiceConfig } from "../config";
import type { Tier } from "../db/schema/users";
import { DependencyUnavailableError, LimitExceededError, type QuotaState } from "../errors";
import type { CacheInvalidation } from "../lib/cache";
import type { Clock } from "../lib/clock";
import type { GateEntry } from "../lib/pending-gate";
import { createRateLimiter } from "../lib/rate-limit";
import type { RedisClient } from "../lib/redis";
import { type Logger, rootLogger } from "../log";

const DAY_MS = 86_400_000;
/** Key prefix of the shared daily counter (both tiers; see ADR 0003). */
const QUOTA_PREFIX = "quota:prompts";

/**
 * One take per request id (ADR 0003's fixed window, the counter key and expiry of
 * @upstash/ratelimit's, plus a marker per id): a take that Redis ran twice (the client retrying
 * after a lost answer) counts once, and a take that runs after its id was refunded (its answer
 * was lost, so the request gave it back without knowing) counts nothing. Answers the count, or
 * -1 for a take already given back.
 */
const TAKE_ONCE = `
local m = redis.call("GET", KEYS[2])
if m == "refunded" then return -1 end
if m then return tonumber(m) end
local n = redis.call("INCR", KEYS[1])
if n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end
redis.call("SET", KEYS[2], tostring(n), "EX", ARGV[2])
return n`;

/**
 * TAKE_ONCE for a prompt, with the prompt's other Redis work of its first round in the same
 * command (issue 18 item 3: 3 billed commands → 1): the pending-replies gate's `enter`
 * (src/lib/pending-gate.ts) and the chatroom-list cache's version bump (src/lib/cache.ts).
 * KEYS[3] = gate set, KEYS[4] = cache version; ARGV[3..5] = now ms, gate ttl ms, member;
 * ARGV[6..7] = new version, its ttl s. Answers {count, ...live gate members}; {-1} for a take
 * already given back (nothing else done). A re-run (the client retrying a lost answer) re-adds
 * the same member and bumps the version again: both harmless.
 */
const TAKE_ONCE_FOR_PROMPT = `
local m = redis.call("GET", KEYS[2])
if m == "refunded" then return {-1} end
local n
if m then n = tonumber(m) else
  n = redis.call("INCR", KEYS[1])
  if n == 1 then redis.call("PEXPIRE", KEYS[1], ARGV[1]) end
  redis.call("SET", KEYS[2], tostring(n), "EX", ARGV[2])
end
redis.call("ZREMRANGEBYSCORE", KEYS[3], "-inf", ARGV[3])
redis.call("ZADD", KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[5])
redis.call("PEXPIRE", KEYS[3], ARGV[4])
redis.call("SET", KEYS[4], ARGV[6], "EX", ARGV[7])
local out = redis.call("ZRANGE", KEYS[3], 0, -1)
table.insert(out, 1, n)
return out`;

/**
 * One refund per id: the marker is set and the counter decremented in one script, so a refund
 * retried after a lost answer is a no-op. ARGV[2] "1": the take surely ran (the caller holds its
 * ticket or the reply it paid for); "0": unknown (its answer was lost), so only a take the marker
 * shows is given back, and the marker stops a late one. A counter that expired is left alone.
 */
const REFUND_ONCE = `
local m = redis.call("GET", KEYS[2])
if m == "refunded" then return 0 end
redis.call("SET", KEYS[2], "refunded", "EX", ARGV[1])
if m or ARGV[2] == "1" then
  if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("DECR", KEYS[1]) end
  return 1
end
return 0`;
/** A take/refund marker outlives the day it belongs to. */
const REFUND_MARKER_SECONDS = 2 * 86_400;
/** Waits between refund attempts while Redis fails (a short outage should not cost a prompt). */
const REFUND_RETRY_MS = [250, 750, 2_000];
/**
 * Then, after the response (waitUntil keeps work ~30 s past it), waits before each further
 * attempt: a Redis outage of up to ~25 s no longer loses the refund and leaves the prompt counted.
 */
const REFUND_LATER_RETRY_MS = [2_000, 4_000, 8_000, 10_000];
/** How long a refund keeps trying, in the request and after it, before it is lost. */
export const REFUND_RETRY_SPAN_MS = [...REFUND_RETRY_MS, ...REFUND_LATER_RETRY_MS].reduce(
  (sum, ms) => sum + ms,
  0,
);

/** A token taken from the shared daily counter, before the tier is known. */
export interface QuotaTicket {
  /** Prompts counted today including this one (exact up to the Pro limit). */
  count: number;
  /** Unix ms of the next 00:00 UTC, when the counter resets. */
  resetAt: number;
  /** The UTC day (YYYY-MM-DD) the token was counted in; a refund must target the same day. */
  day: string;
}

/** The verdict for one prompt once the tier is known. */
export interface QuotaDecision {
  accepted: boolean;
  limit: number;
  /** Prompts accepted today, this one included when accepted. */
  used: number;
  remaining: number;
  resetAt: number;
}

/**
 * The daily prompt quota (ADR 0003): one fixed-window "1 d" counter per user, shared by both
 * tiers and configured with the Pro limit, so a token can be taken before the tier is read.
 */
export interface DailyQuota {
  /**
   * Takes one token for the request `requestId` (the reply id; a random one when omitted), once
   * however often Redis runs it. Throws DependencyUnavailableError when Redis cannot be reached;
   * the take may still have run, so the caller gives it back with `cancelTake`.
   */
  take(userId: string, requestId?: string): Promise<QuotaTicket>;
  /**
   * `take` for a prompt, in the same Redis command as entering the pending-replies gate and
   * bumping the chatroom-list cache's version: one billed command instead of three, all or
   * nothing. Answers the ticket and the gate's live members (this entry included); throws like
   * `take`, and then neither the gate nor the cache may have been touched.
   */
  takeForPrompt(
    userId: string,
    requestId: string,
    also: { gate: GateEntry; invalidate: CacheInvalidation },
  ): Promise<{ ticket: QuotaTicket; members: string[] }>;
  /**
   * Gives back the take of `requestId` whose answer was lost: only if it ran, whether before or
   * (delayed in Redis) after this. Retries like `refund`.
   */
  cancelTake(userId: string, requestId: string): Promise<void>;
  /**
   * Gives one token back, only if `day` is still today (a past day's counter no longer matters).
   * `refundId` (the reply or request the token was taken for) makes it happen at most once, so a
   * retried refund, ours or the Redis client's after a lost answer, never gives back two. Retries
   * a failing Redis a few times over ~3 s; then, given `waitUntil`, keeps trying after the
   * response for ~25 s more (logging `quota_refund_failed` if that fails too) and resolves;
   * without it, or with `{ retryLater: false }` (the sweep, which forgets what it owes only once
   * the refund answered), throws. A refund a reply owes is also marked on the reply
   * (`refund_owed_at`), so one lost even so is paid by the sweep once Redis answers.
   */
  refund(
    userId: string,
    day: string,
    refundId: string,
    options?: { retryLater?: boolean },
  ): Promise<void>;
  /**
   * Hands takes to the sweep, to be settled by what became of their replies (one HSET into
   * `quota:unsettled`, however many; throws if Redis fails). See `sweepOverdueWork`.
   */
  deferSettle(...takes: UnsettledTake[]): Promise<void>;
  /** The takes handed to the sweep, oldest first (one HGETALL; throws if Redis fails). */
  unsettled(): Promise<UnsettledTake[]>;
  /** Forgets takes the sweep settled (one HDEL; throws if Redis fails). */
  forgetUnsettled(replyIds: string[]): Promise<void>;
  limits: { basic: number; pro: number };
}

/** A prompt whose write had an unknown outcome: given back by the sweep if its reply row is absent. */
export interface UnsettledTake {
  replyId: string;
  userId: string;
  /** The UTC day the token was counted in. */
  day: string;
  /** Unix ms when it was handed over (entries past a bound are dropped). */
  atMs: number;
}

/** Hash of takes handed to the sweep: reply id → "<user id> <day> <ms>". */
export const UNSETTLED_KEY = "quota:unsettled";

export function createDailyQuota(options: {
  redis: RedisClient;
  basicLimit: number;
  proLimit: number;
  now?: () => number;
  /** Lets a refund that Redis refused for ~3 s keep trying after the response. */
  waitUntil?: (p: Promise<unknown>) => void;
  /** Where a refund lost even after the response is reported (`quota_refund_failed`). */
  log?: Pick<Logger, "failure">;
}): DailyQuota {
  const now = options.now ?? Date.now;
  // EVALSHA first, the script's text only when this Redis has not seen it yet (NOSCRIPT).
  const takeOnce = options.redis.createScript<number>(TAKE_ONCE);
  const refundOnce = options.redis.createScript<number>(REFUND_ONCE);
  const takeForPrompt = options.redis.createScript<unknown>(TAKE_ONCE_FOR_PROMPT);
  return {
    limits: { basic: options.basicLimit, pro: options.proLimit },
    async take(userId, requestId = crypto.randomUUID()) {
      const bucket = Math.floor(now() / DAY_MS);
      let count: number;
      try {
        count = Number(
          await takeOnce.exec(
            [counterKey(userId, bucket), markerKey(requestId)],
            [String(DAY_MS), String(REFUND_MARKER_SECONDS)],
          ),
        );
      } catch (err) {
        throw new DependencyUnavailableError("rate limiter", err);
      }
      return ticketOf(count, bucket);
    },
    async takeForPrompt(userId, requestId, { gate, invalidate }) {
      const bucket = Math.floor(now() / DAY_MS);
      let answer: unknown;
      try {
        answer = await takeForPrompt.exec(
          [counterKey(userId, bucket), markerKey(requestId), gate.key, invalidate.key],
          [
            String(DAY_MS),
            String(REFUND_MARKER_SECONDS),
            String(gate.nowMs),
            String(gate.ttlMs),
            gate.member,
            invalidate.value,
            String(invalidate.ttlSeconds),
          ],
        );
      } catch (err) {
        throw new DependencyUnavailableError("rate limiter", err);
      }
      const [count, ...members] = Array.isArray(answer) ? answer : [];
      return { ticket: ticketOf(Number(count), bucket), members: members.map(String) };
    },
    async cancelTake(userId, requestId) {
      await giveBack(userId, Math.floor(now() / DAY_MS), requestId, false);
    },
    async refund(userId, day, refundId, { retryLater = true } = {}) {
      if (day !== utcDay(now())) return;
      const bucket = Date.parse(`${day}T00:00:00Z`) / DAY_MS;
      await giveBack(userId, bucket, refundId, true, retryLater);
    },
    async deferSettle(...takes) {
      if (takes.length === 0) return;
      const fields: Record<string, string> = {};
      for (const { replyId, userId, day, atMs } of takes) {
        fields[replyId] = `${userId} ${day} ${atMs}`;
      }
      await options.redis.hset(UNSETTLED_KEY, fields);
    },
    async unsettled() {
      // Without the SDK's deserialization (src/lib/redis.ts) HGETALL answers Redis's flat list.
      const flat: unknown = await options.redis.hgetall(UNSETTLED_KEY);
      const pairs: [string, unknown][] = [];
      if (Array.isArray(flat)) {
        for (let i = 0; i + 1 < flat.length; i += 2) pairs.push([String(flat[i]), flat[i + 1]]);
      } else if (flat && typeof flat === "object") {
        pairs.push(...Object.entries(flat));
      }
      const takes: UnsettledTake[] = [];
      for (const [replyId, value] of pairs) {
        const [userId = "", day = "", at = "0"] = String(value).split(" ");
        takes.push({ replyId, userId, day, atMs: Number(at) || 0 });
      }
      return takes.sort((a, b) => a.atMs - b.atMs);
    },
    async forgetUnsettled(replyIds) {
      if (replyIds.length > 0) await options.redis.hdel(UNSETTLED_KEY, ...replyIds);
    },
  };

  async function giveBack(
    userId: string,
    bucket: number,
    id: string,
    taken: boolean,
    retryLater = true,
  ) {
    const attempt = () =>
      refundOnce.exec(
        [counterKey(userId, bucket), markerKey(id)],
        [String(REFUND_MARKER_SECONDS), taken ? "1" : "0"],
      );
    let failure: unknown;
    for (const wait of [0, ...REFUND_RETRY_MS]) {
      if (wait > 0) await sleep(wait);
      try {
        await attempt();
        return;
      } catch (err) {
        failure = err;
      }
    }
    const { waitUntil } = options;
    if (!waitUntil || !retryLater) throw failure;
    // The soak's finding 4: a refund lost to a Redis outage longer than the attempts above left
    // the prompt counted for the rest of the day. The marker makes the late attempts safe.
    waitUntil(
      (async () => {
        for (const wait of REFUND_LATER_RETRY_MS) {
          await sleep(wait);
          try {
            await attempt();
            return;
          } catch (err) {
            failure = err;
          }
        }
        (options.log ?? rootLogger).failure("quota_refund_failed", failure, { user_id: userId });
      })(),
    );
  }
}

function ticketOf(count: number, bucket: number): QuotaTicket {
  // -1: this request's take was already given back (its answer was lost); it counts nothing.
  if (!(count > 0)) throw new DependencyUnavailableError("rate limiter");
  const resetAt = (bucket + 1) * DAY_MS;
  return { count, resetAt, day: utcDay(resetAt - DAY_MS) };
}

/** The limiter's own key for a day: `<prefix>:<identifier>:<floor(ms / window)>` (ADR 0003). */
function counterKey(userId: string, bucket: number): string {
  return `${QUOTA_PREFIX}:${userId}:${bucket}`;
}

/** What became of one request's token: its count once taken, "refunded" once given back. */
function markerKey(requestId: string): string {
  return `${QUOTA_PREFIX}:token:${requestId}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Today's usage without taking a token (GET /subscription/status). */
export async function readDailyUsage(
  deps: {
    redis: RedisClient;
    clock: Clock;
    config: Pick<ServiceConfig, "dailyLimits">;
  },
  userId: string,
  tier: Tier,
): Promise<{ used_today: number; daily_limit: number; resets_at: string }> {
  const limiter = createRateLimiter({
    redis: deps.redis,
    prefix: QUOTA_PREFIX,
    algorithm: "fixed",
    tokens: deps.config.dailyLimits.pro,
    window: "1 d",
  });
  let r: { remaining: number; reset: number };
  try {
    r = await limiter.remaining(userId);
  } catch (err) {
    throw new DependencyUnavailableError("rate limiter", err);
  }
  const dailyLimit = tier === "pro" ? deps.config.dailyLimits.pro : deps.config.dailyLimits.basic;
  const used = Math.max(0, deps.config.dailyLimits.pro - r.remaining);
  const nextMidnight = (Math.floor(deps.clock.now().getTime() / DAY_MS) + 1) * DAY_MS;
  return {
    used_today: Math.min(used, dailyLimit),
    daily_limit: dailyLimit,
    resets_at: new Date(r.reset > 0 ? r.reset : nextMidnight).toISOString(),
  };
}

export function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

export function decideQuota(
  ticket: QuotaTicket,
  tier: Tier,
  limits: { basic: number; pro: number },
): QuotaDecision {
  const limit = tier === "pro" ? limits.pro : limits.basic;
  const accepted = ticket.count <= limit;
  const used = accepted ? ticket.count : Math.min(ticket.count - 1, limit);
  return { accepted, limit, used, remaining: Math.max(0, limit - used), resetAt: ticket.resetAt };
}

/** The counter's state for the edge to report (RateLimit-* fields, src/errors/http.ts). */
export function quotaState(d: QuotaDecision, nowMs: number): QuotaState {
  return { limit: d.limit, remaining: d.remaining, resetSeconds: secondsUntil(d.resetAt, nowMs) };
}

function secondsUntil(resetAt: number, nowMs: number): number {
  return Math.max(1, Math.ceil((resetAt - nowMs) / 1000));
}

export function dailyLimitError(d: QuotaDecision, nowMs: number): LimitExceededError {
  return new LimitExceededError(
    `You have used all ${d.limit} prompts for today; the limit resets at 00:00 UTC.`,
    secondsUntil(d.resetAt, nowMs),
    "daily_limit_reached",
    { limit: d.limit, used: d.used, resets_at: new Date(d.resetAt).toISOString() },
    quotaState(d, nowMs),
  );
}
