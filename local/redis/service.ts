import type { IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type Context, Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import type { RedisBackend } from "./backend.ts";
import { createControlApp, Faults, Stats } from "./control.ts";
import { EmbeddedRedis } from "./embedded.ts";
import { RealRedis } from "./real-redis.ts";
import { RedisError, type RestResult } from "./reply.ts";
import { BadRequest, encodeResult, parseCommand, parseCommands } from "./rest.ts";
import { RedisUsage } from "./usage.ts";

const PREFIX = "/redis";

type Endpoint = "single" | "pipeline" | "multi_exec";

/**
 * Upstash Redis REST API: `POST /redis` (one JSON-array command), `/redis/pipeline`,
 * `/redis/multi-exec`, plus `GET /redis/<cmd>/<arg>...` for curl. Backed by the embedded
 * store, or by a real Redis when `config.redisUrl` is set.
 */
export async function createRedisService(config: LocalCloudConfig): Promise<LocalService> {
  const backend: RedisBackend = config.redisUrl
    ? await RealRedis.create(config.redisUrl)
    : await EmbeddedRedis.create();
  const faults = new Faults();
  const stats = new Stats();
  const usage = new RedisUsage();
  const app = new Hono();

  const authorized = (c: Context): boolean =>
    c.req.header("authorization") === `Bearer ${config.redisToken}` ||
    c.req.query("_token") === config.redisToken;

  /** Applies an injected fault and the token check; a Response means "answer this instead". */
  const gate = async (c: Context, requestText: string): Promise<Response | undefined> => {
    const fault = faults.find(requestText);
    if (fault) {
      stats.faults_triggered++;
      if (fault.mode === "down") {
        // Kill the TCP connection so the SDK sees a network error (and retries), not an HTTP one.
        (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket.destroy();
        return c.body(null, 503);
      }
      if (fault.mode === "error") {
        return c.json({ error: "ERR service unavailable (local fault injection)" }, 500);
      }
      await sleep(fault.ms);
    }
    if (!authorized(c)) {
      stats.unauthorized++;
      return c.json({ error: "Unauthorized" }, 401);
    }
    return undefined;
  };

  const base64 = (c: Context): boolean =>
    c.req.header("upstash-encoding")?.toLowerCase() === "base64";

  const answer = async (c: Context, endpoint: Endpoint, work: () => Promise<Response>) => {
    stats.requests[endpoint]++;
    try {
      return await work();
    } catch (e) {
      stats.errors++;
      if (e instanceof BadRequest || e instanceof RedisError) {
        return c.json({ error: e.message }, 400);
      }
      console.error("[local-redis]", e);
      return c.json({ error: `ERR ${e instanceof Error ? e.message : String(e)}` }, 500);
    }
  };

  const single = (c: Context, command: string[]) => {
    stats.count([command]);
    usage.count([command]);
    return backend.run(command).then((r) => {
      if ("error" in r) {
        stats.errors++;
        return c.json(r, 400);
      }
      return c.json(encodeResult(r, base64(c)));
    });
  };

  const many = (c: Context, results: RestResult[]) => {
    stats.errors += results.filter((r) => "error" in r).length;
    const encode = base64(c);
    return c.json(results.map((r) => encodeResult(r, encode)));
  };

  app.post("/", async (c) => {
    const text = await c.req.text();
    return (await gate(c, text)) ?? answer(c, "single", async () => single(c, parseCommand(text)));
  });

  app.post("/pipeline", async (c) => {
    const text = await c.req.text();
    return (
      (await gate(c, text)) ??
      answer(c, "pipeline", async () => {
        const commands = parseCommands(text);
        stats.count(commands);
        usage.count(commands);
        return many(c, await backend.pipeline(commands));
      })
    );
  });

  app.post("/multi-exec", async (c) => {
    const text = await c.req.text();
    return (
      (await gate(c, text)) ??
      answer(c, "multi_exec", async () => {
        const commands = parseCommands(text);
        stats.count(commands);
        usage.count(commands);
        return many(c, await backend.multiExec(commands));
      })
    );
  });

  // Path style, as Upstash documents for curl: GET /redis/set/foo/bar.
  app.get("/*", async (c) => {
    const path = c.req.path.slice(PREFIX.length);
    return (
      (await gate(c, path)) ??
      answer(c, "single", async () => {
        const command = path.split("/").filter(Boolean).map(decodeURIComponent);
        if (command.length === 0) throw new BadRequest("ERR no command given");
        return single(c, command);
      })
    );
  });

  return {
    name: "redis",
    prefix: PREFIX,
    app,
    control: createControlApp(backend.kind, faults, stats),
    usage,
    close: () => backend.close(),
  };
}
