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
