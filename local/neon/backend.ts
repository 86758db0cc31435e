import { resolve } from "node:path";

/** One statement as the Neon driver sends it: SQL with `$n` placeholders and text parameters. */
export interface SqlStatement {
  query: string;
  params: (string | null)[];
}

/** Options of a batch transaction, from the `Neon-Batch-*` headers. */
export interface BatchOptions {
  isolationLevel?: "READ UNCOMMITTED" | "READ COMMITTED" | "REPEATABLE READ" | "SERIALIZABLE";
  readOnly?: boolean;
  deferrable?: boolean;
}

/** A column of a result, described as Postgres's RowDescription does. */
export interface SqlField {
  name: string;
  dataTypeID: number;
  tableID?: number;
  columnID?: number;
  dataTypeSize?: number;
  dataTypeModifier?: number;
  format?: string;
}

/** One statement's result with every value still in Postgres text format. */
export interface SqlResult {
  command: string | null;
  rowCount: number | null;
  fields: SqlField[];
  rows: (string | null)[][];
}

/**
 * What the HTTP layer needs from a database: embedded PGlite or a real PostgreSQL. Errors from
 * Postgres are thrown as they come (with `code`, `detail`, `constraint`, ...); a batch is one
 * transaction, rolled back as a whole when any statement fails.
 */
export interface SqlBackend {
  readonly kind: "pglite" | "postgres";
  query(statement: SqlStatement): Promise<SqlResult>;
  batch(statements: SqlStatement[], options: BatchOptions): Promise<SqlResult[]>;
  close(): Promise<void>;
}

/** The repository's drizzle-kit migrations, applied at start so `src/db/schema` exists. */
export const MIGRATIONS_FOLDER = resolve(import.meta.dirname, "../../drizzle");

/** The batch's transaction characteristics for `BEGIN` / `SET TRANSACTION`; "" for none. */
export function transactionModes(options: BatchOptions): string {
  const modes: string[] = [];
  if (options.isolationLevel) modes.push(`ISOLATION LEVEL ${options.isolationLevel}`);
  if (options.readOnly !== undefined) modes.push(options.readOnly ? "READ ONLY" : "READ WRITE");
  if (options.deferrable !== undefined) {
    modes.push(options.deferrable ? "DEFERRABLE" : "NOT DEFERRABLE");
  }
  return modes.join(", ");
}
