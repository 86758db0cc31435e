import type { IncomingMessage } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type Context, Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import type { SqlBackend } from "./backend.ts";
import { createControlApp, Fault, Stats } from "./control.ts";
import { PgliteBackend } from "./pglite-backend.ts";
import { PostgresBackend } from "./postgres-backend.ts";
import { NeonUsage } from "./usage.ts";
import {
  arrayMode,
  batchOptions,
  encodeDatabaseError,
  encodeResult,
  parseSqlRequest,
  requireConnectionString,
  WireError,
} from "./wire.ts";

/**
 * Neon's SQL-over-HTTP endpoint, `POST /neon/sql`, as `@neondatabase/serverless` (and so
 * drizzle-orm/neon-http) uses it. Runs on embedded PGlite, or on a real PostgreSQL when
 * `config.databaseUrl` is set; the repository's migrations are applied at start either way.
 */
export async function createNeonService(config: LocalCloudConfig): Promise<LocalService> {
  const started = performance.now();
  const backend: SqlBackend = config.databaseUrl
    ? await PostgresBackend.create(config.databaseUrl)
    : await PgliteBackend.create(config.pgliteDir);
  const startMs = Math.round(performance.now() - started);
  const fault = new Fault();
  const stats = new Stats();
  const usage = new NeonUsage();
  const app = new Hono();

  app.post("/sql", async (c) => {
    stats.requests++;
    if (fault.mode === "down") {
      stats.refused++;
      // Drop the TCP connection so the driver's fetch fails, as with an unreachable database.
      (c.env as { incoming?: IncomingMessage } | undefined)?.incoming?.socket.destroy();
      return c.body(null, 503);
    }
    if (fault.mode === "slow") await sleep(fault.ms);
    try {
      requireConnectionString(c.req.header("neon-connection-string"));
      const request = parseSqlRequest(await c.req.text());
      const asArrays = arrayMode(c.req.header("neon-array-mode"));
      usage.count(request.kind === "query" ? [request.statement] : request.statements);
      if (request.kind === "query") {
        stats.queries++;
        stats.statements++;
        const result = await backend.query(request.statement);
        return c.json(encodeResult(result, asArrays));
      }
      const options = batchOptions((name) => c.req.header(name));
      stats.batches++;
      stats.statements += request.statements.length;
      const results = await backend.batch(request.statements, options);
      return c.json({ results: results.map((r) => encodeResult(r, asArrays)) });
    } catch (e) {
      stats.errors++;
      return answerError(c, e);
    }
  });

  return {
    name: "neon",
    prefix: "/neon",
    app,
    control: createControlApp(backend, fault, stats, startMs),
    usage,
    close: () => backend.close(),
  };
}

/** Neon answers request and SQL errors with 400 and a JSON body the driver turns into NeonDbError. */
function answerError(c: Context, e: unknown): Response {
  if (e instanceof WireError) return c.json({ message: e.message }, 400);
  const dbError = encodeDatabaseError(e);
  if (dbError) return c.json(dbError, 400);
  console.error("[local-neon]", e);
  return c.json({ message: `local neon: ${e instanceof Error ? e.message : String(e)}` }, 500);
}
