import { createHash, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { PGlite, type QueryOptions, type Results } from "@electric-sql/pglite";
import { drizzle } from "drizzle-orm/pglite";
import { migrate } from "drizzle-orm/pglite/migrator";
import {
  type BatchOptions,
  MIGRATIONS_FOLDER,
  type SqlBackend,
  type SqlResult,
  type SqlStatement,
  transactionModes,
} from "./backend.ts";

/**
 * Embedded PostgreSQL (PGlite, WebAssembly) in this process: in memory, or persisted in
 * `dataDir`. PGlite is one connection, so every call goes through one queue; a batch holds the
 * queue for its whole transaction and nothing interleaves with it.
 */
export class PgliteBackend implements SqlBackend {
  readonly kind = "pglite" as const;
  #db: PGlite;
  #options: QueryOptions;
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(db: PGlite, options: QueryOptions) {
    this.#db = db;
    this.#options = options;
  }

  static async create(dataDir?: string): Promise<PgliteBackend> {
    let db: PGlite;
    if (dataDir) {
      const dir = resolve(dataDir);
      mkdirSync(dir, { recursive: true });
      db = await PGlite.create({ dataDir: dir });
      await applyMigrations(db);
    } else {
      db = await openInMemory();
    }
    return new PgliteBackend(db, await rawTextOptions(db));
  }

  query(statement: SqlStatement): Promise<SqlResult> {
    return this.#exclusive(async () =>
      toResult(await this.#db.query(statement.query, statement.params, this.#options)),
    );
  }

  batch(statements: SqlStatement[], options: BatchOptions): Promise<SqlResult[]> {
    return this.#exclusive(() =>
      // PGlite's transaction() issues BEGIN/COMMIT and rolls back when the callback throws.
      this.#db.transaction(async (tx) => {
        const modes = transactionModes(options);
        if (modes) await tx.exec(`SET TRANSACTION ${modes}`);
        const results: SqlResult[] = [];
        for (const s of statements) {
          results.push(toResult(await tx.query(s.query, s.params, this.#options)));
        }
        return results;
      }),
    );
  }

  async close(): Promise<void> {
    await this.#exclusive(() => this.#db.close());
  }

  #exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#tail.then(work);
    this.#tail = run.catch(() => undefined);
    return run;
  }
}

/** Cached migrated databases: a fresh PGlite spends seconds in initdb, a loaded copy ~0.5 s. */
const TEMPLATE_DIR = resolve(import.meta.dirname, "../../.local-cloud/cache");

/**
 * An in-memory database with the migrations applied, loaded from a template saved by an earlier
 * start when PGlite and the migrations are unchanged (the key covers both).
 */
async function openInMemory(): Promise<PGlite> {
  const template = join(TEMPLATE_DIR, `pglite-${templateKey()}.tar.gz`);
  if (existsSync(template)) {
    try {
      const db = await PGlite.create({ loadDataDir: new Blob([readFileSync(template)]) });
      await applyMigrations(db);
      return db;
    } catch (e) {
      console.warn(`[local-neon] ignoring unusable ${template}:`, e);
    }
  }
  const db = await PGlite.create();
  await applyMigrations(db);
  try {
    const dump = new Uint8Array(await (await db.dumpDataDir("gzip")).arrayBuffer());
    mkdirSync(TEMPLATE_DIR, { recursive: true });
    // Several test processes may save at once: write aside, then rename into place atomically.
    const partial = `${template}.${randomUUID()}.partial`;
    writeFileSync(partial, dump);
    renameSync(partial, template);
  } catch (e) {
    console.warn("[local-neon] could not save the PGlite template:", e);
  }
  return db;
}

function applyMigrations(db: PGlite): Promise<void> {
  return migrate(drizzle({ client: db }), { migrationsFolder: MIGRATIONS_FOLDER });
}

function templateKey(): string {
  const hash = createHash("sha256");
  // createRequire, not import.meta.resolve: vitest's module runner lacks the latter.
  const pgliteEntry = createRequire(import.meta.url).resolve("@electric-sql/pglite");
  hash.update(readFileSync(join(dirname(pgliteEntry), "../package.json")));
  const journal = readFileSync(join(MIGRATIONS_FOLDER, "meta/_journal.json"), "utf8");
  hash.update(journal);
  for (const entry of (JSON.parse(journal) as { entries: { tag: string }[] }).entries) {
    hash.update(readFileSync(join(MIGRATIONS_FOLDER, `${entry.tag}.sql`)));
  }
  return hash.digest("hex").slice(0, 16);
}

/**
 * Query options that keep every value in Postgres text format both ways: the Neon driver sends
 * text parameters and parses results itself by type oid. PGlite only consults plain keys, so the
 * map lists every type that exists (taken after migrations, so their types are included).
 */
async function rawTextOptions(db: PGlite): Promise<QueryOptions> {
  const { rows } = await db.query<{ oid: number }>("select oid from pg_type");
  const parsers: NonNullable<QueryOptions["parsers"]> = {};
  const serializers: NonNullable<QueryOptions["serializers"]> = {};
  for (const { oid } of rows) {
    parsers[oid] = (value: string) => value;
    serializers[oid] = (value: unknown) => String(value);
  }
  return { rowMode: "array", parsers, serializers };
}

function toResult(r: Results<unknown>): SqlResult {
  return {
    command: r.command ?? null,
    rowCount: r.rowCount ?? null,
    fields: r.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })),
    rows: r.rows as (string | null)[][],
  };
}
