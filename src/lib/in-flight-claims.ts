import type { RedisClient } from "./redis";

/**
 * What `claim` found: `ours` (the caller now holds the claim), `in_flight` (another request is
 * being processed) or `held` (another request ended without knowing whether its work was done,
 * and holds the claim until it knows: see `hold`).
 */
export type ClaimState = "ours" | "in_flight" | "held";

/**
 * What `claim` found, and, when it is another request's claim or hold, how long that has left
 * before it expires by itself (its holder may release it sooner): what a caller told to wait can
 * be given as the longest wait that is still useful.
 */
export type Claim = { state: "ours" } | { state: "in_flight" | "held"; expiresInMs: number | null };

/**
 * Short-lived markers in Redis that a request is being processed, so a second request for the
 * same thing can tell "in flight" from "never sent". A claim expires by itself; the holder
 * releases it early when it fails, so a retry is not kept waiting, or holds it longer when it
 * cannot tell whether it failed. Each claim names its owner (any string unique to the request):
 * `release` deletes only the owner's own claim or hold, so a request whose claim expired cannot
 * delete the claim a later request took since.
 */
export interface InFlightClaims {
  claim(scope: string, owner: string): Promise<Claim>;
  /** Keeps the claim `held` for `ms` (until its owner releases it): an outcome is unknown. */
  hold(scope: string, owner: string, ms: number): Promise<void>;
  release(scope: string, owner: string): Promise<void>;
}

const HELD_PREFIX = "held:";

/**
 * Set if absent, else answer the holder's value: one command. `SET … NX GET` would do the same,
 * but NX with GET is Redis 7.0 and Upstash documents compatibility with Redis 6.2
 * (https://upstash.com/docs/redis/overall/rediscompatibility), where it is a syntax error; a
 * script runs on both. Answers nil (false) when the caller now holds the claim, else the holder's
 * value and its PTTL, read in the same script so the two describe one claim.
 */
const CLAIM = `
local held = redis.call('GET', KEYS[1])
if held then return {held, redis.call('PTTL', KEYS[1])} end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false`;

/** Deletes the key only while it still holds this owner's claim or hold. */
const RELEASE = `
local v = redis.call('GET', KEYS[1])
if v == ARGV[1] or v == ARGV[2] then return redis.call('DEL', KEYS[1]) end
return 0`;

export function createInFlightClaims(
  redis: RedisClient,
  options: { namespace: string; ttlMs: number },
): InFlightClaims {
  const key = (scope: string) => `${options.namespace}:${scope}`;
  // EVALSHA first, the script's text only when this Redis has not seen it yet (NOSCRIPT).
  const claimScript = redis.createScript<[string, number] | null>(CLAIM);
  const releaseScript = redis.createScript<number>(RELEASE);
  return {
    async claim(scope, owner) {
      const previous = await claimScript.exec([key(scope)], [owner, String(options.ttlMs)]);
      if (!Array.isArray(previous)) return { state: "ours" };
      const [holder, pttl] = previous;
      return {
        state: String(holder).startsWith(HELD_PREFIX) ? "held" : "in_flight",
        // PTTL is -1 for a key without an expiry (none is written so): unknown, not "now".
        expiresInMs: Number(pttl) >= 0 ? Number(pttl) : null,
      };
    },
    async hold(scope, owner, ms) {
      await redis.set(key(scope), `${HELD_PREFIX}${owner}`, { px: Math.max(1, Math.ceil(ms)) });
    },
    async release(scope, owner) {
      await releaseScript.exec([key(scope)], [owner, `${HELD_PREFIX}${owner}`]);
    },
  };
}
