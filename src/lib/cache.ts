import { describeError, type Logger } from "../log";
import type { RedisClient } from "./redis";

/** What a cache read found: the scope's current version and the entry stored under it, if any. */
export interface CacheRead {
  version: string;
  /** The stored value, or null on a miss (absent, written under an older version, or corrupt). */
  value: string | null;
}

/**
 * A per-scope (per-user) cache in Redis. Every entry records the scope version it was computed
 * under; `invalidate` sets a new version, so entries computed from older data are never served,
 * even when a slow reader writes them after the invalidation. Versions are random, never a
 * counter: a counter whose key expired would restart and could match a surviving old entry.
 */
export interface VersionedCache {
  /** One round trip (MGET). Resolves null when Redis fails or is slower than the bound. */
  read(scope: string, key: string): Promise<CacheRead | null>;
  write(scope: string, key: string, version: string, value: string): Promise<void>;
  invalidate(scope: string): Promise<void>;
  /**
   * What `invalidate` would write, for a caller that runs it inside its own script (the prompt's
   * quota take): the version key, a fresh version and the key's lifetime.
   */
  invalidation(scope: string): CacheInvalidation;
}

/** One `invalidate`, described: SET key value EX ttlSeconds. */
export interface CacheInvalidation {
  key: string;
  value: string;
  ttlSeconds: number;
}

export interface VersionedCacheOptions {
  redis: RedisClient;
  namespace: string;
  ttlSeconds: number;
  /** Longest a read may take before the caller goes to the database instead. */
  readTimeoutMs: number;
  log: Logger;
}

const SEPARATOR = "\n";

export function createVersionedCache(options: VersionedCacheOptions): VersionedCache {
  const versionKey = (scope: string) => `${options.namespace}:${scope}:ver`;
  const entryKey = (scope: string, key: string) => `${options.namespace}:${scope}:entry:${key}`;
  // Longer than any entry lives, so an absent version ("0") never meets an entry written under
  // an expired one; the value itself never repeats.
  const versionTtl = Math.max(options.ttlSeconds * 4, 86_400);

  return {
    async read(scope, key) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), options.readTimeoutMs);
      });
      const lookup = options.redis
        .mget<(string | null)[]>(versionKey(scope), entryKey(scope, key))
        .then(([version, stored]): CacheRead => {
          const current = version ?? "0";
          if (typeof stored !== "string") return { version: current, value: null };
          const at = stored.indexOf(SEPARATOR);
          if (at < 0 || stored.slice(0, at) !== current) return { version: current, value: null };
          return { version: current, value: stored.slice(at + 1) };
        })
        .catch((err: unknown) => {
          options.log.warn("cache_read_failed", { error: describeError(err) });
          return null;
        });
      try {
        return await Promise.race([lookup, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
    async write(scope, key, version, value) {
      await options.redis.set(entryKey(scope, key), `${version}${SEPARATOR}${value}`, {
        ex: options.ttlSeconds,
      });
    },
    async invalidate(scope) {
      await options.redis.set(versionKey(scope), crypto.randomUUID(), { ex: versionTtl });
    },
    invalidation(scope) {
      return { key: versionKey(scope), value: crypto.randomUUID(), ttlSeconds: versionTtl };
    },
  };
}
