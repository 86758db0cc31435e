import { drizzle } from "drizzle-orm/node-postgres";
import { migrate } from "drizzle-orm/node-postgres/migrator";
import pg from "pg";
import {
  type BatchOptions,
  MIGRATIONS_FOLDER,
  type SqlBackend,
  type SqlResult,
  type SqlStatement,
  transactionModes,
} from "./backend.ts";

/** Every value stays in Postgres text format: the Neon driver parses results itself. */
const RAW_TEXT: pg.CustomTypesConfig = {
  getTypeParser: (() => (value: string) => value) as pg.CustomTypesConfig["getTypeParser"],
};

/** Arbitrary, fixed key of the session-level advisory lock that serialises migrations. */
const MIGRATION_LOCK_KEY = "7305402811";

/**
 * A real PostgreSQL through `pg`: single statements on a pool, a batch as BEGIN ... COMMIT on one
 * pooled connection.
 */
export class PostgresBackend implements SqlBackend {
  readonly kind = "postgres" as const;
  #pool: pg.Pool;

  private constructor(pool: pg.Pool) {
    this.#pool = pool;
  }

  static async create(databaseUrl: string): Promise<PostgresBackend> {
    await migrateExclusively(databaseUrl);
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 10, types: RAW_TEXT });
    // An idle connection dropped by the server must not crash the local cloud.
    pool.on("error", (e) => console.error("[local-neon] idle connection error:", e.message));
    return new PostgresBackend(pool);
  }

  async query(statement: SqlStatement): Promise<SqlResult> {
    return toResult(await this.#pool.query(queryConfig(statement)));
  }

  async batch(statements: SqlStatement[], options: BatchOptions): Promise<SqlResult[]> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      const modes = transactionModes(options);
      await client.query(modes ? `BEGIN ${modes}` : "BEGIN");
      try {
        const results: SqlResult[] = [];
        for (const s of statements) results.push(toResult(await client.query(queryConfig(s))));
        await client.query("COMMIT");
        return results;
      } catch (e) {
        await client.query("ROLLBACK").catch((rollbackError: Error) => {
          broken = rollbackError;
        });
        throw e;
      }
    } finally {
      // A connection whose ROLLBACK failed is in an unknown state: discard it.
      client.release(broken);
    }
  }

  close(): Promise<void> {
    return this.#pool.end();
  }
}

/**
 * Applies the drizzle migrations while holding an advisory lock, so test runs starting at the
 * same time against one database neither race on DDL nor apply a migration twice.
 */
export async function migrateExclusively(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query("select pg_advisory_lock($1)", [MIGRATION_LOCK_KEY]);
    try {
      await migrate(drizzle({ client }), { migrationsFolder: MIGRATIONS_FOLDER });
    } finally {
      await client.query("select pg_advisory_unlock($1)", [MIGRATION_LOCK_KEY]);
    }
  } finally {
    await client.end();
  }
}

function queryConfig(s: SqlStatement): pg.QueryArrayConfig & { queryMode: "extended" } {
  // Always the extended protocol, as Neon uses: one statement per query, even without params.
  return { text: s.query, values: s.params, rowMode: "array", queryMode: "extended" };
}

function toResult(r: pg.QueryArrayResult): SqlResult {
  return {
    command: r.command ?? null,
    rowCount: r.rowCount ?? null,
    fields: r.fields.map((f) => ({
      name: f.name,
      tableID: f.tableID,
      columnID: f.columnID,
      dataTypeID: f.dataTypeID,
      dataTypeSize: f.dataTypeSize,
      dataTypeModifier: f.dataTypeModifier,
      format: f.format,
    })),
    rows: r.rows as (string | null)[][],
  };
}
