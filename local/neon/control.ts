import { Hono } from "hono";
import pg from "pg";
import type { SqlBackend } from "./backend.ts";
import { encodeDatabaseError, parseSqlRequest, WireError } from "./wire.ts";

export type FaultMode = "none" | "down" | "slow";

/** The one global database fault; tests that set it must reset it with `{"mode":"none"}`. */
export class Fault {
  mode: FaultMode = "none";
  /** Delay added to each `/sql` request while `slow`. */
  ms = 0;
}

/** Counters for tests to count round trips (read twice and subtract: they never reset). */
export class Stats {
  /** HTTP requests to `/sql`, answered or not. */
  requests = 0;
  /** Single-statement requests. */
  queries = 0;
  /** Batch requests (each one transaction). */
  batches = 0;
  /** Statements received, in single requests and batches. */
  statements = 0;
  /** Requests answered with an error (SQL or request errors). */
  errors = 0;
  /** Requests whose connection was dropped by the `down` fault. */
  refused = 0;
}

/**
 * `/_control/neon`: `POST /fault` `{"mode":"down"|"slow"|"none","ms"?}`, `GET /stats`, and
 * `POST /query` `{"sql","params"?}` to inspect the database (rows as objects, values parsed the
 * way `pg` parses them: int8 and numeric stay strings, timestamps become ISO strings).
 */
export function createControlApp(
  backend: SqlBackend,
  fault: Fault,
  stats: Stats,
  startMs: number,
): Hono {
  const control = new Hono();

  control.post("/fault", async (c) => {
    const body = (await c.req.json().catch(() => null)) as { mode?: unknown; ms?: unknown } | null;
    const mode = body?.mode;
    if (mode !== "none" && mode !== "down" && mode !== "slow") {
      return c.json({ error: 'mode must be "none", "down" or "slow"' }, 400);
    }
    const ms = Number(body?.ms ?? 0);
    if (!Number.isFinite(ms) || ms < 0) return c.json({ error: "ms must be >= 0" }, 400);
    fault.mode = mode;
    fault.ms = mode === "slow" ? ms : 0;
    return c.json({ mode: fault.mode, ms: fault.ms });
  });

  control.get("/stats", (c) =>
    c.json({
      backend: backend.kind,
      start_ms: startMs,
      fault: { mode: fault.mode, ms: fault.ms },
      ...stats,
    }),
  );

  control.post("/query", async (c) => {
    const body = (await c.req.json().catch(() => null)) as { sql?: unknown; params?: unknown };
    if (typeof body?.sql !== "string")
      return c.json({ error: { message: "sql is required" } }, 400);
    try {
      const request = parseSqlRequest(JSON.stringify({ query: body?.sql, params: body?.params }));
      if (request.kind !== "query") throw new WireError("one statement only");
      const result = await backend.query(request.statement);
      const parsers = result.fields.map((f) => pg.types.getTypeParser(f.dataTypeID, "text"));
      const rows = result.rows.map((row) =>
        Object.fromEntries(
          row.map((v, i) => [result.fields[i]?.name, v === null ? null : parsers[i]?.(v)]),
        ),
      );
      return c.json({ command: result.command, row_count: result.rowCount, rows });
    } catch (e) {
      const dbError = encodeDatabaseError(e);
      if (dbError) return c.json({ error: dbError }, 400);
      if (e instanceof WireError) return c.json({ error: { message: e.message } }, 400);
      throw e;
    }
  });

  return control;
}
