import { afterAll, beforeAll, expect } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { createRedisService } from "../../local/redis/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";
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
