import type { BatchOptions, SqlResult, SqlStatement } from "./backend.ts";

/** A request the endpoint refuses before reaching the database; answered 400 `{message}`. */
export class WireError extends Error {}

/** What one `POST /sql` asks for. */
export type SqlRequest =
  | { kind: "query"; statement: SqlStatement }
  | { kind: "batch"; statements: SqlStatement[] };

/** The Postgres error fields `@neondatabase/serverless` copies onto its NeonDbError. */
const ERROR_FIELDS = [
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;

const ISOLATION_LEVELS: Record<string, BatchOptions["isolationLevel"]> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};

/** Reads `Neon-Connection-String`: required and a postgres URL; its password is not checked. */
export function requireConnectionString(value: string | undefined): string {
  if (!value) throw new WireError("missing Neon-Connection-String header");
  let protocol: string;
  try {
    protocol = new URL(value).protocol;
  } catch {
    throw new WireError("Neon-Connection-String is not a valid URL");
  }
  if (protocol !== "postgres:" && protocol !== "postgresql:") {
    throw new WireError("Neon-Connection-String must be a postgres:// or postgresql:// URL");
  }
  return value;
}

/** `Neon-Array-Mode: true` answers rows as arrays; anything else as objects keyed by column. */
export function arrayMode(value: string | undefined): boolean {
  return value?.toLowerCase() === "true";
}

/** The `Neon-Batch-*` headers (ignored for a single query, as Neon does). */
export function batchOptions(header: (name: string) => string | undefined): BatchOptions {
  const options: BatchOptions = {};
  const level = header("neon-batch-isolation-level");
  if (level !== undefined) {
    const mapped = ISOLATION_LEVELS[level];
    if (!mapped) throw new WireError(`invalid Neon-Batch-Isolation-Level: ${level}`);
    options.isolationLevel = mapped;
  }
  const readOnly = booleanHeader("Neon-Batch-Read-Only", header("neon-batch-read-only"));
  if (readOnly !== undefined) options.readOnly = readOnly;
  const deferrable = booleanHeader("Neon-Batch-Deferrable", header("neon-batch-deferrable"));
  if (deferrable !== undefined) options.deferrable = deferrable;
  return options;
}

function booleanHeader(name: string, value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  if (value === "true") return true;
  if (value === "false") return false;
  throw new WireError(`invalid ${name}: ${value}`);
}

/** Body `{query, params}` for one statement or `{queries: [{query, params}, ...]}` for a batch. */
export function parseSqlRequest(text: string): SqlRequest {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new WireError("request body is not valid JSON");
  }
  if (!isObject(body)) throw new WireError("request body must be a JSON object");
  if ("queries" in body) {
    if (!Array.isArray(body.queries)) throw new WireError("queries must be an array");
    return { kind: "batch", statements: body.queries.map(parseStatement) };
  }
  return { kind: "query", statement: parseStatement(body) };
}

function parseStatement(value: unknown): SqlStatement {
  if (!isObject(value) || typeof value.query !== "string") {
    throw new WireError("each query needs a string `query`");
  }
  const params = value.params ?? [];
  if (!Array.isArray(params)) throw new WireError("params must be an array");
  return {
    query: value.query,
    // The driver sends text (or null); tolerate JSON scalars from hand-written requests.
    params: params.map((p: unknown) => {
      if (p === null || typeof p === "string") return p;
      if (typeof p === "number" || typeof p === "boolean") return String(p);
      throw new WireError("params must be strings, numbers, booleans or null");
    }),
  };
}

/** A result as Neon answers it; values stay Postgres text, the driver parses them by oid. */
export function encodeResult(result: SqlResult, asArrays: boolean) {
  const rows = asArrays
    ? result.rows
    : result.rows.map((row) => Object.fromEntries(row.map((v, i) => [result.fields[i]?.name, v])));
  return {
    command: result.command,
    rowCount: result.rowCount,
    rows,
    fields: result.fields,
    rowAsArray: asArrays,
  };
}

/**
 * The 400 body for an error Postgres raised, or undefined when `e` is not one (a bug or an
 * unreachable database, which must not look like a SQL error).
 */
export function encodeDatabaseError(e: unknown): Record<string, unknown> | undefined {
  if (!(e instanceof Error)) return undefined;
  const fields = e as unknown as Record<string, unknown>;
  const isPostgres =
    typeof fields.severity === "string" &&
    typeof fields.code === "string" &&
    /^[0-9A-Z]{5}$/.test(fields.code);
  if (!isPostgres) return undefined;
  const body: Record<string, unknown> = { message: e.message };
  for (const name of ERROR_FIELDS) {
    if (fields[name] !== undefined) body[name] = fields[name];
  }
  return body;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
