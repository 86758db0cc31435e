import { neon, neonConfig } from "@neondatabase/serverless";
import { drizzle } from "drizzle-orm/neon-http";
import * as schema from "./schema";

export type Database = ReturnType<typeof createDatabase>;

/** No query waits longer than this: a hanging database becomes a 503, not a hung request. */
export const QUERY_TIMEOUT_MS = 10_000;

// neonConfig is module-global; every isolate serves one configuration, so setting it is safe.
// Each query (or batch) is one fetch and gets its own deadline.
neonConfig.fetchFunction = (input: RequestInfo | URL, init?: RequestInit) =>
  fetch(input, { ...init, signal: AbortSignal.timeout(QUERY_TIMEOUT_MS) });

/**
 * Drizzle over Neon's HTTP endpoint: one fetch per query, `db.batch` for atomic multi-statement
 * writes (neon-http has no interactive transactions).
 */
export function createDatabase(databaseUrl: string, fetchEndpoint?: string) {
  if (fetchEndpoint) neonConfig.fetchEndpoint = () => fetchEndpoint;
  return drizzle({ client: neon(databaseUrl), schema, casing: "snake_case" });
}

/**
 * SQLSTATEs that mean "the database cannot serve this now" rather than "this request is wrong":
 * connection exceptions (08), insufficient resources (53), operator intervention such as a
 * restart (57P0x), serialization failures and deadlocks (40001, 40P01).
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0|40001$|40P01$)/;

/** SQLSTATE of a database error anywhere in its cause chain. */
export function sqlStateOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/**
 * This adapter's failures that mean "the database is unavailable" (503), not "the request is
 * wrong": the driver could not reach Neon, or Postgres answered an unavailability SQLSTATE.
 * Only this module knows the driver's error shapes.
 */
export function isDatabaseUnavailable(err: Error): boolean {
  if (err.name !== "NeonDbError") return false;
  const code = (err as { code?: unknown }).code;
  return (
    /connecting to database|Server error/i.test(err.message ?? "") ||
    (typeof code === "string" && UNAVAILABLE_SQLSTATE.test(code))
  );
}
