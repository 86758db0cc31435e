import type { RedisClient } from "./redis";

/**
 * Prompts of one user between "accepted" and "reply committed", in Redis, so concurrent prompts
 * see each other before either is in the database (MAX_PENDING_REPLIES). One sorted set per
 * user, members scored by their expiry: an entry lives `ttlMs` (longer than a prompt takes to be
 * written) unless released when its reply settles. Committed replies are counted from the
 * database, so an entry that expires early loses nothing and a lost release blocks no one for
 * longer than `ttlMs`.
 */
export interface PendingGate {
  /** Adds `member` and returns every live member (itself included). */
  enter(userId: string, member: string): Promise<string[]>;
  /** Replaces `from` by `to` (a keyed prompt's entry becomes its reply id once committed). */
  swap(userId: string, from: string, to: string): Promise<void>;
  release(userId: string, member: string): Promise<void>;
  /**
   * What `enter` would do, for a caller that runs it inside its own script (the prompt's quota
   * take, one Redis command for both): the set's key, the entry's score and the set's lifetime.
   */
  entry(userId: string, member: string): GateEntry;
}

/** One `enter`, described: ZREMRANGEBYSCORE -inf nowMs, ZADD nowMs+ttlMs member, PEXPIRE ttlMs. */
export interface GateEntry {
  key: string;
  member: string;
  nowMs: number;
  ttlMs: number;
}

// KEYS[1] = set; ARGV = now ms, ttl ms, member. Atomic: purge expired, add, list. (The quota
// take's script in src/services/quota.ts runs the same steps for a prompt.)
const ENTER = `
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
`;

// KEYS[1] = set; ARGV = now ms, ttl ms, from, to.
const SWAP = `
redis.call('ZREM', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

export function createPendingGate(
  redis: RedisClient,
  options: { namespace: string; ttlMs: number; now?: () => number },
): PendingGate {
  const key = (userId: string) => `${options.namespace}:${userId}`;
  const now = options.now ?? Date.now;
  return {
    async enter(userId, member) {
      const members = await redis.eval(ENTER, [key(userId)], [now(), options.ttlMs, member]);
      return Array.isArray(members) ? members.map(String) : [];
    },
    async swap(userId, from, to) {
      await redis.eval(SWAP, [key(userId)], [now(), options.ttlMs, from, to]);
    },
    async release(userId, member) {
      await redis.zrem(key(userId), member);
    },
    entry(userId, member) {
      return { key: key(userId), member, nowMs: now(), ttlMs: options.ttlMs };
    },
  };
}
