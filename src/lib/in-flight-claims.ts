import type { RedisClient } from "./redis";

/**
 * Short-lived markers in Redis that a request is being processed, so a second request for the
 * same thing can tell "in flight" from "never sent" (`SET NX PX`). A claim expires by itself;
 * the holder releases it early only when it fails, so a retry is not kept waiting.
 */
export interface InFlightClaims {
  /** True when the caller now holds the claim; false when another request holds it. */
  claim(scope: string): Promise<boolean>;
  release(scope: string): Promise<void>;
}

export function createInFlightClaims(
  redis: RedisClient,
  options: { namespace: string; ttlMs: number },
): InFlightClaims {
  const key = (scope: string) => `${options.namespace}:${scope}`;
  return {
    async claim(scope) {
      return (await redis.set(key(scope), "1", { nx: true, px: options.ttlMs })) === "OK";
    },
    async release(scope) {
      await redis.del(key(scope));
    },
  };
}
