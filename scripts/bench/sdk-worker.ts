// The SDK's share of a vendor call, for `npm run bench -- --cpu` (scripts/bench/cpu.ts): a Worker
// that answers "ok" after exactly one vendor call made through the API's own adapters, built the
// way the API is (wrangler, minified) and served beside the empty Worker, whose bare fetch is the
// same call without an SDK. Never deployed; not part of src/.
import { createDatabase } from "../../src/db/client";
import { sessionIsLive } from "../../src/db/queries/refresh-tokens";
import { createRedis } from "../../src/lib/redis";

interface SdkEnv {
  DATABASE_URL: string;
  NEON_FETCH_ENDPOINT: string;
  UPSTASH_REDIS_REST_URL: string;
  UPSTASH_REDIS_REST_TOKEN: string;
}

// Once per isolate, as src/middleware/context.ts builds them.
let adapters: { db: ReturnType<typeof createDatabase>; redis: ReturnType<typeof createRedis> };

// A session that does not exist: the check runs in full and maps an empty result.
const NO_SESSION = {
  userId: "00000000-0000-7000-8000-000000000000",
  familyId: "00000000-0000-7000-8000-000000000001",
  issuedAt: new Date(0),
};

export default {
  async fetch(request: Request, env: SdkEnv): Promise<Response> {
    adapters ??= {
      db: createDatabase(env.DATABASE_URL, env.NEON_FETCH_ENDPOINT),
      redis: createRedis(env.UPSTASH_REDIS_REST_URL, env.UPSTASH_REDIS_REST_TOKEN),
    };
    const path = new URL(request.url).pathname;
    try {
      if (path === "/upstash-get") await adapters.redis.get("bench:sdk");
      else if (path === "/neon-query") await adapters.db.$client`select 1`;
      else if (path === "/session-check") await sessionIsLive(adapters.db, NO_SESSION);
      else if (path !== "/") return new Response("not found", { status: 404 });
    } catch (err) {
      // The bench stops on a wrong status and shows this text.
      return new Response(String((err as Error).stack ?? err), { status: 500 });
    }
    return new Response("ok");
  },
};
