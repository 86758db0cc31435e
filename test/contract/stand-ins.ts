import { afterAll, beforeAll, expect } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { createNeonService } from "../../local/neon/service.ts";
import { createRedisService } from "../../local/redis/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";
import { createDatabase, type Database } from "../../src/db/client.ts";
import { createRedis, type RedisClient } from "../../src/lib/redis.ts";

/**
 * A local Upstash for one test file (embedded, or a real Redis behind it when LOCAL_REDIS_URL is
 * set), started before its tests and closed after, reached through the Worker's own Redis
 * adapter. Read `redis` inside tests or hooks registered after this call.
 */
export function localUpstash(): {
  readonly redis: RedisClient;
  /** Switches a fault of the local Redis on (`POST /_control/redis/fault`). */
  fault(body: Record<string, unknown>): Promise<void>;
} {
  let cloud: LocalCloud | undefined;
  let redis: RedisClient | undefined;
  beforeAll(async () => {
    cloud = await startLocalCloud(
      testCloudConfig(process.env.LOCAL_REDIS_URL ? { redisUrl: process.env.LOCAL_REDIS_URL } : {}),
      [createRedisService],
    );
    redis = createRedis(`${cloud.url}/redis`, TEST_KEYS.redisToken);
  });
  afterAll(async () => {
    await cloud?.close();
  });
  return {
    get redis() {
      if (!redis) throw new Error("the local Upstash is not started yet");
      return redis;
    },
    async fault(body) {
      const res = await fetch(`${cloud?.url}/_control/redis/fault`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      expect(res.ok).toBe(true);
    },
  };
}

/**
 * A local Neon for one test file (embedded PGlite, or the real PostgreSQL behind it when
 * LOCAL_DATABASE_URL is set), started before its tests and closed after, reached through the
 * Worker's own database client. Read `db` inside tests or hooks registered after this call.
 */
export function localNeon(): { readonly db: Database } {
  let cloud: LocalCloud | undefined;
  let db: Database | undefined;
  beforeAll(async () => {
    const config = testCloudConfig(
      process.env.LOCAL_DATABASE_URL ? { databaseUrl: process.env.LOCAL_DATABASE_URL } : {},
    );
    if (!process.env.LOCAL_DATABASE_URL) {
      delete config.databaseUrl;
      delete config.pgliteDir;
    }
    cloud = await startLocalCloud(config, [createNeonService]);
    db = createDatabase(
      `postgres://neon:local@127.0.0.1:${cloud.port}/neondb`,
      `${cloud.url}/neon/sql`,
    );
  });
  afterAll(async () => {
    await cloud?.close();
  });
  return {
    get db() {
      if (!db) throw new Error("the local Neon is not started yet");
      return db;
    },
  };
}
