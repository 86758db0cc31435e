import type { ServiceConfig } from "../config";
import type { Tier } from "../db/schema/users";
import { DependencyUnavailableError, LimitExceededError, type QuotaState } from "../errors";
import type { Clock } from "../lib/clock";
import { createRateLimiter, type RateLimiter } from "../lib/rate-limit";
import type { RedisClient } from "../lib/redis";

const DAY_MS = 86_400_000;
/** Key prefix of the shared daily counter (both tiers; see ADR 0003). */
const QUOTA_PREFIX = "quota:prompts";

/**
 * One refund per id: the marker is set and the counter decremented in one script, so a refund
 * retried after a lost answer is a no-op. A counter that expired (the day is over) is left alone.
 */
const REFUND_ONCE = `
if redis.call("SET", KEYS[2], "1", "NX", "EX", ARGV[1]) then
  if redis.call("EXISTS", KEYS[1]) == 1 then redis.call("DECR", KEYS[1]) end
  return 1
end
return 0`;
/** A refund marker outlives the day it belongs to. */
const REFUND_MARKER_SECONDS = 2 * 86_400;
/** Waits between refund attempts while Redis fails (a short outage should not cost a prompt). */
const REFUND_RETRY_MS = [250, 750, 2_000];

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
  /** Takes one token. Throws DependencyUnavailableError when Redis cannot be reached. */
  take(userId: string): Promise<QuotaTicket>;
  /**
   * Gives one token back, only if `day` is still today (a past day's counter no longer matters).
   * `refundId` (the reply or request the token was taken for) makes it happen at most once, so a
   * retried refund, ours or the Redis client's after a lost answer, never gives back two. Retries
   * a failing Redis a few times over ~3 s before it throws.
   */
  refund(userId: string, day: string, refundId: string): Promise<void>;
  limits: { basic: number; pro: number };
}

export function createDailyQuota(o: {
  redis: RedisClient;
  basicLimit: number;
  proLimit: number;
  now?: () => number;
}): DailyQuota {
  const now = o.now ?? Date.now;
  const limiter: RateLimiter = createRateLimiter({
    redis: o.redis,
    prefix: QUOTA_PREFIX,
    algorithm: "fixed",
    tokens: o.proLimit,
    window: "1 d",
  });
  return {
    limits: { basic: o.basicLimit, pro: o.proLimit },
    async take(userId) {
      let r: Awaited<ReturnType<RateLimiter["limit"]>>;
      try {
        r = await limiter.limit(userId);
      } catch (err) {
        throw new DependencyUnavailableError("rate limiter", err);
      }
      const count = r.success ? o.proLimit - r.remaining : o.proLimit + 1;
      return { count, resetAt: r.reset, day: utcDay(r.reset - DAY_MS) };
    },
    async refund(userId, day, refundId) {
      if (day !== utcDay(now())) return;
      // The limiter's own key for that day: `<prefix>:<identifier>:<floor(ms / window)>`
      // (@upstash/ratelimit's fixed window); decremented only if it still exists.
      const counterKey = `${QUOTA_PREFIX}:${userId}:${Date.parse(`${day}T00:00:00Z`) / DAY_MS}`;
      const markerKey = `${QUOTA_PREFIX}:refunded:${refundId}`;
      for (let attempt = 0; ; attempt++) {
        try {
          await o.redis.eval(REFUND_ONCE, [counterKey, markerKey], [String(REFUND_MARKER_SECONDS)]);
          return;
        } catch (err) {
          const wait = REFUND_RETRY_MS[attempt];
          if (wait === undefined) throw err;
          await new Promise((resolve) => setTimeout(resolve, wait));
        }
      }
    },
  };
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
