import { Ratelimit } from "@upstash/ratelimit";
import type { RedisClient } from "./redis";

type Duration = Parameters<typeof Ratelimit.fixedWindow>[1];

export interface LimitResult {
  success: boolean;
  limit: number;
  remaining: number;
  /** Unix milliseconds at which the window resets. */
  reset: number;
  /**
   * Seconds until `reset`. Computed here because the window is on @upstash/ratelimit's own wall
   * clock (it reads Date.now itself), not on the app's injectable clock.
   */
  retryAfterSeconds: number;
}

/** A named limit over @upstash/ratelimit; `rate` > 1 takes several tokens, a negative rate refunds. */
export interface RateLimiter {
  limit(identifier: string, options?: { rate?: number }): Promise<LimitResult>;
  remaining(identifier: string): Promise<{ remaining: number; reset: number }>;
}

export interface RateLimiterOptions {
  redis: RedisClient;
  /** Key prefix; two limiters with the same prefix and window share their counters. */
  prefix: string;
  algorithm: "fixed" | "sliding";
  tokens: number;
  window: Duration;
  /** Called with work that may finish after the response (analytics); give it `waitUntil`. */
  waitUntil?: (p: Promise<unknown>) => void;
}

export function createRateLimiter(settings: RateLimiterOptions): RateLimiter {
  const limiter = new Ratelimit({
    redis: settings.redis,
    prefix: settings.prefix,
    limiter:
      settings.algorithm === "fixed"
        ? Ratelimit.fixedWindow(settings.tokens, settings.window)
        : Ratelimit.slidingWindow(settings.tokens, settings.window),
    // The ephemeral cache would answer from isolate memory; refunds then go unseen, so it is off.
    ephemeralCache: false,
    analytics: false,
    // Fail, don't silently allow: a Redis outage surfaces as an error the caller maps to 503.
    timeout: 0,
  });
  return {
    async limit(identifier, options) {
      const r = await limiter.limit(identifier, options?.rate ? { rate: options.rate } : undefined);
      settings.waitUntil?.(r.pending);
      return {
        success: r.success,
        limit: r.limit,
        remaining: r.remaining,
        reset: r.reset,
        retryAfterSeconds: (r.reset - Date.now()) / 1000,
      };
    },
    async remaining(identifier) {
      return limiter.getRemaining(identifier);
    },
  };
}
