import type { RedisClient } from "./redis";

/**
 * What `claim` found: `ours` (the caller now holds the claim), `in_flight` (another request is
 * being processed) or `held` (another request ended without knowing whether its work was done,
 * and holds the claim until it knows: see `hold`).
 */
export type ClaimState = "ours" | "in_flight" | "held";

/**
 * Short-lived markers in Redis that a request is being processed, so a second request for the
 * same thing can tell "in flight" from "never sent" (`SET NX PX`). A claim expires by itself;
 * the holder releases it early when it fails, so a retry is not kept waiting, or holds it longer
 * when it cannot tell whether it failed.
 */
export interface InFlightClaims {
  claim(scope: string): Promise<ClaimState>;
  /** Keeps the claim `held` for `ms` (until released), whoever held it: an outcome is unknown. */
  hold(scope: string, ms: number): Promise<void>;
  release(scope: string): Promise<void>;
}

const CLAIMED = "1";
const HELD = "held";

export function createInFlightClaims(
  redis: RedisClient,
  options: { namespace: string; ttlMs: number },
): InFlightClaims {
  const key = (scope: string) => `${options.namespace}:${scope}`;
  return {
    async claim(scope) {
      // One command: set if absent, else answer the holder's value (SET NX GET, Redis 7).
      const previous = await redis.set(key(scope), CLAIMED, {
        nx: true,
        px: options.ttlMs,
        get: true,
      });
      if (previous === null || previous === undefined) return "ours";
      return previous === HELD ? "held" : "in_flight";
    },
    async hold(scope, ms) {
      await redis.set(key(scope), HELD, { px: Math.max(1, Math.ceil(ms)) });
    },
    async release(scope) {
      await redis.del(key(scope));
    },
  };
}
