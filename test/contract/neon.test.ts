import { randomInt, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { NeonDbError, type NeonQueryFunction, neon } from "@neondatabase/serverless";
import { sql as dsql, eq, getTableName, is } from "drizzle-orm";
import { PgTable } from "drizzle-orm/pg-core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { migrateExclusively } from "../../local/neon/postgres-backend.ts";
import { createNeonService } from "../../local/neon/service.ts";
import { testCloudConfig } from "../../local/test-config.ts";
import type { LocalCloudConfig } from "../../local/types.ts";
import { createDatabase, type Database } from "../../src/db/client.ts";
import * as schema from "../../src/db/schema/index.ts";

// The same cases run against embedded PGlite and, when LOCAL_DATABASE_URL is set, against a real
// PostgreSQL behind the same HTTP layer. That database is shared with other runs, so every row
// here carries fresh random ids and nothing assumes an empty table.
const pgliteConfig: LocalCloudConfig = testCloudConfig();
delete pgliteConfig.databaseUrl;
delete pgliteConfig.pgliteDir;
const backends: { name: string; kind: string; config: LocalCloudConfig }[] = [
  { name: "embedded PGlite", kind: "pglite", config: pgliteConfig },
];
const realDatabaseUrl = process.env.LOCAL_DATABASE_URL;
if (realDatabaseUrl) {
  backends.push({
    name: "real PostgreSQL",
    kind: "postgres",
    config: testCloudConfig({ databaseUrl: realDatabaseUrl }),
  });
}

// The password is never checked; the header must be there and be a postgres URL.
const connectionString = (cloud: LocalCloud) =>
  `postgres://neon:local@127.0.0.1:${cloud.port}/neondb`;

const { chatrooms, idempotencyKeys, subscriptions, users } = schema;
const schemaTables = Object.values(schema)
  .filter((value) => is(value, PgTable))
  .map((table) => getTableName(table))
  .sort();

const journal = JSON.parse(
  readFileSync(resolve(import.meta.dirname, "../../drizzle/meta/_journal.json"), "utf8"),
) as { entries: unknown[] };

function newUser(overrides: Partial<typeof users.$inferInsert> = {}) {
  return {
    id: `usr_${randomUUID()}`,
    mobileNumber: `+1555${randomInt(0, 1e9).toString().padStart(9, "0")}${randomInt(0, 10)}`,
    ...overrides,
  };
}

/** `GET /_control/neon/stats`. */
interface NeonStats {
  backend: string;
  start_ms: number;
  fault: { mode: string; ms: number };
  requests: number;
  queries: number;
  batches: number;
  statements: number;
  errors: number;
  refused: number;
}

/** The driver's error, unwrapped from drizzle's DrizzleQueryError where drizzle adds one. */
function neonErrorOf(e: unknown): NeonDbError {
  let current: unknown = e;
  while (current instanceof Error) {
    if (current instanceof NeonDbError) return current;
    current = current.cause;
  }
  throw new Error(`expected a NeonDbError, got ${String(e)}`);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  throw new Error("expected the promise to reject");
}

describe.each(backends)("local Neon SQL over HTTP on $name", ({ kind, config }) => {
  let cloud: LocalCloud;
  let db: Database;
  let sql: NeonQueryFunction<false, false>;

  const control = async (path: string, body?: unknown) => {
    const res = await fetch(`${cloud.url}/_control/neon${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const stats = async () => (await control("/stats")).body as unknown as NeonStats;

  /** A raw request to the SQL endpoint, for header behaviour the driver never varies. */
  const post = (body: unknown, headers: Record<string, string>) =>
    fetch(`${cloud.url}/neon/sql`, {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: JSON.stringify(body),
    });

  beforeAll(async () => {
    cloud = await startLocalCloud(config, [createNeonService]);
    // Exactly as the Worker builds its database (src/db/client.ts).
    db = createDatabase(connectionString(cloud), `${cloud.url}/neon/sql`);
    sql = neon(connectionString(cloud));
  });

  afterAll(async () => {
    if (!cloud) return;
    await control("/fault", { mode: "none" });
    await cloud.close();
  });

  it("reports which backend serves it", async () => {
    expect((await stats()).backend).toBe(kind);
  });

  it("has applied every migration in drizzle/", async () => {
    const res = await control("/query", {
      sql: "select count(*)::int as n from drizzle.__drizzle_migrations",
    });
    expect(res.body.rows).toEqual([{ n: journal.entries.length }]);
  });

  it("round-trips a user through the real schema, with nulls, defaults and timestamps", async () => {
    const changedAt = new Date("2026-03-04T05:06:07.891Z");
    const values = newUser({ email: "a@example.com", passwordChangedAt: changedAt });
    const [inserted] = await db.insert(users).values(values).returning();
    expect(inserted).toMatchObject({ ...values, name: null, passwordHash: null, tier: "basic" });

    const [read] = await db.select().from(users).where(eq(users.id, values.id));
    expect(read?.passwordChangedAt).toEqual(changedAt);
    expect(read?.name).toBeNull();
    expect(read?.stripeCustomerId).toBeNull();
    expect(read?.createdAt).toBeInstanceOf(Date);
    expect(Math.abs(read!.createdAt.getTime() - Date.now())).toBeLessThan(60_000);
    expect(read).toEqual(inserted);
  });

  it("round-trips booleans, integers and bigint numbers beyond 32 bits", async () => {
    const user = newUser();
    await db.insert(users).values(user);
    const periodEnd = new Date("2027-01-31T23:59:59.000Z");
    const paid = {
      id: `sub_${randomUUID()}`,
      userId: user.id,
      customerId: `cus_${randomUUID()}`,
      status: "active",
      currentPeriodEnd: periodEnd,
      cancelAtPeriodEnd: true,
      stateVersion: 1_795_476_832_166,
    };
    const plain = { id: `sub_${randomUUID()}`, userId: user.id, customerId: "c", status: "x" };
    await db.insert(subscriptions).values([paid, plain]);

    const rows = await db.select().from(subscriptions).where(eq(subscriptions.userId, user.id));
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(paid.id)).toMatchObject(paid);
    expect(byId.get(plain.id)).toMatchObject({
      cancelAtPeriodEnd: false,
      stateVersion: 0,
      priceId: null,
      currentPeriodEnd: null,
    });

    const [counted] = await db
      .select({ n: dsql<number>`count(*)::int`, total: dsql<string>`sum(state_version)` })
      .from(subscriptions)
      .where(eq(subscriptions.userId, user.id));
    expect(counted).toEqual({ n: 2, total: "1795476832166" });
  });

  it("round-trips jsonb with nesting, unicode and quotes", async () => {
    const user = newUser();
    await db.insert(users).values(user);
    const responseBody = {
      data: { list: [1, 2.5, { deep: null }], ok: true },
      text: `Grüße "zitiert" 'single' \\ 日本語 🚀`,
    };
    await db.insert(idempotencyKeys).values({
      userId: user.id,
      key: "k1",
      requestHash: "h",
      statusCode: 201,
      responseBody,
      expiresAt: new Date(Date.now() + 60_000),
    });
    const [row] = await db
      .select()
      .from(idempotencyKeys)
      .where(eq(idempotencyKeys.userId, user.id));
    expect(row?.responseBody).toEqual(responseBody);
    expect(row?.statusCode).toBe(201);
  });

  it("keeps text parameters with quotes, backslashes, placeholders and unicode intact", async () => {
    const name = `O'Brien "the" \\x00 $1 %s ?; DROP TABLE users; -- 日本語 🚀 ä\u00e4\u0301 ${randomUUID()}`;
    const user = newUser({ name });
    await db.insert(users).values(user);
    const [byName] = await db
      .select({ id: users.id, name: users.name })
      .from(users)
      .where(eq(users.name, name));
    expect(byName).toEqual({ id: user.id, name });
    const echoed = await sql.query("select $1::text as t, length($1::text) as n", [name]);
    expect(echoed).toEqual([{ t: name, n: [...name].length }]);
  });

  it("round-trips bytea, array and boolean parameters as the driver encodes them", async () => {
    const bytes = Buffer.from([0, 255, 1, 128]);
    const [row] = await sql.query(
      "select $1::bytea as b, $2::int[] as ints, $3::text[] as texts, $4::boolean as yes, $5::boolean as no",
      [bytes, [1, 2, 3], ['a"b', "c,d", null], true, false],
    );
    expect(Buffer.from(row?.b as Uint8Array)).toEqual(bytes);
    expect(row).toMatchObject({
      ints: [1, 2, 3],
      texts: ['a"b', "c,d", null],
      yes: true,
      no: false,
    });
  });

  it("reports rowCount and command for writes without RETURNING", async () => {
    const user = newUser();
    await db.insert(users).values(user);
    const updated = await db.update(users).set({ name: "renamed" }).where(eq(users.id, user.id));
    expect(updated.rowCount).toBe(1);
    expect(updated.command).toBe("UPDATE");
    const none = await db.delete(users).where(eq(users.id, `usr_${randomUUID()}`));
    expect(none.rowCount).toBe(0);
  });

  it("commits a batch in one round trip and returns each statement's result in order", async () => {
    const user = newUser();
    const room = { id: `room_${randomUUID()}`, userId: user.id, title: "t" };
    const before = await stats();
    const [insertedUsers, insertedRooms, counted] = await db.batch([
      db.insert(users).values(user).returning({ id: users.id }),
      db.insert(chatrooms).values(room).returning(),
      db
        .select({ n: dsql<number>`count(*)::int` })
        .from(chatrooms)
        .where(eq(chatrooms.userId, user.id)),
    ]);
    const after = await stats();
    expect(insertedUsers).toEqual([{ id: user.id }]);
    expect(insertedRooms[0]).toMatchObject({ ...room, messageCount: 0, lastMessageAt: null });
    expect(counted).toEqual([{ n: 1 }]);
    expect(after.batches - before.batches).toBe(1);
    expect(after.statements - before.statements).toBe(3);
    expect(after.queries - before.queries).toBe(0);
    expect(after.requests - before.requests).toBe(1);
  });

  it("rolls back the whole batch when a statement fails half-way", async () => {
    const user = newUser();
    const err = await rejection(
      db.batch([
        db.insert(users).values(user),
        db.update(users).set({ name: "changed" }).where(eq(users.id, user.id)),
        // No such user: the foreign key fails after two statements succeeded.
        db.insert(chatrooms).values({ id: `room_${randomUUID()}`, userId: "missing", title: "t" }),
        db.insert(chatrooms).values({ id: `room_${randomUUID()}`, userId: user.id, title: "t" }),
      ]),
    );
    const dbError = neonErrorOf(err);
    expect(dbError.code).toBe("23503");
    expect(dbError.constraint).toBe("chatrooms_user_id_users_id_fk");
    expect(await db.select().from(users).where(eq(users.id, user.id))).toEqual([]);
    expect(await db.select().from(chatrooms).where(eq(chatrooms.userId, user.id))).toEqual([]);
  });

  it("keeps a concurrent query out of a batch's transaction", async () => {
    const [inBatch, outside] = [newUser(), newUser()];
    const batch = sql.transaction([
      sql`insert into users (id, mobile_number) values (${inBatch.id}, ${inBatch.mobileNumber})`,
      sql`select pg_sleep(0.2)`,
      sql`select 1 / 0`,
    ]);
    // Observe the rejection now: the batch may fail while the queries below are in flight.
    const batchFailure = rejection(batch);
    await new Promise((r) => setTimeout(r, 100));
    // Sent while the batch's transaction is open: it must neither join it nor see its rows.
    const seen = await sql`select id from users where id = ${inBatch.id}`;
    await sql`insert into users (id, mobile_number) values (${outside.id}, ${outside.mobileNumber})`;
    expect(neonErrorOf(await batchFailure).code).toBe("22012");
    expect(seen).toEqual([]);
    const ids = [inBatch.id, outside.id];
    expect(await sql`select id from users where id = any(${ids})`).toEqual([{ id: outside.id }]);
  });

  it("surfaces a unique violation as NeonDbError 23505 with the constraint and table", async () => {
    const user = newUser();
    await db.insert(users).values(user);
    const err = await rejection(
      db.insert(users).values({ id: `usr_${randomUUID()}`, mobileNumber: user.mobileNumber }),
    );
    const dbError = neonErrorOf(err);
    expect(dbError.code).toBe("23505");
    expect(dbError.constraint).toBe("users_mobile_number_unique");
    expect(dbError.table).toBe("users");
    expect(dbError.schema).toBe("public");
    expect(dbError.severity).toBe("ERROR");
    expect(dbError.detail).toContain(user.mobileNumber);
    expect(dbError.message).toContain("duplicate key value violates unique constraint");
  });

  it("answers an SQL error with the driver's NeonDbError, not a server error", async () => {
    const before = await stats();
    const err = await rejection(sql.query("selec 1"));
    expect(err).toBeInstanceOf(NeonDbError);
    const dbError = err as NeonDbError;
    expect(dbError.code).toBe("42601");
    expect(dbError.message).toMatch(/syntax error at or near "selec"/);
    expect(dbError.message).not.toMatch(/Server error|connecting/);
    expect(dbError.position).toBe("1");
    expect((await stats()).errors - before.errors).toBe(1);

    const missing = neonErrorOf(await rejection(sql.query("select * from no_such_table")));
    expect(missing.code).toBe("42P01");
  });

  it("runs one statement per request, as Neon's extended protocol does", async () => {
    const err = await rejection(sql.query("select 1; select 2"));
    expect(neonErrorOf(err).code).toBe("42601");
  });

  it("returns rows as arrays in array mode and as objects otherwise, with field types", async () => {
    const query = "select $1::int as n, $2::text as t, null::text as z, $3::boolean as b";
    const params = [7, "x", false];
    expect(await sql.query(query, params, { arrayMode: true })).toEqual([[7, "x", null, false]]);
    expect(await sql.query(query, params)).toEqual([{ n: 7, t: "x", z: null, b: false }]);
    const full = await sql.query(query, params, { fullResults: true });
    expect(full.command).toBe("SELECT");
    expect(full.rowCount).toBe(1);
    expect(full.fields.map((f) => [f.name, f.dataTypeID])).toEqual([
      ["n", 23],
      ["t", 25],
      ["z", 25],
      ["b", 16],
    ]);
  });

  it("sends values in Postgres text format and honours Neon-Array-Mode on the wire", async () => {
    const body = {
      query: "select $1::int8 as big, now() as at, '{1,2}'::int[] as arr",
      params: ["9"],
    };
    const headers = { "neon-connection-string": connectionString(cloud) };
    const asObjects = await post(body, { ...headers, "neon-array-mode": "false" });
    expect(asObjects.status).toBe(200);
    const objects = (await asObjects.json()) as {
      rows: Record<string, string>[];
      rowAsArray: boolean;
    };
    expect(objects.rowAsArray).toBe(false);
    expect(objects.rows[0]).toMatchObject({ big: "9", arr: "{1,2}" });
    expect(objects.rows[0]?.at).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?\+00$/);

    const asArrays = await post(body, { ...headers, "neon-array-mode": "true" });
    const arrays = (await asArrays.json()) as { rows: unknown[][]; rowAsArray: boolean };
    expect(arrays.rowAsArray).toBe(true);
    expect(arrays.rows[0]?.slice(0, 1)).toEqual(["9"]);
  });

  it("requires the Neon-Connection-String header but accepts any password", async () => {
    const missing = await post({ query: "select 1", params: [] }, {});
    expect(missing.status).toBe(400);
    expect(((await missing.json()) as { message: string }).message).toMatch(
      /Neon-Connection-String/,
    );
    const other = neon(`postgres://someone:wrong-password@127.0.0.1:${cloud.port}/neondb`);
    expect(await other.query("select 1 as one")).toEqual([{ one: 1 }]);
  });

  it("honours the batch transaction headers (read-only batch refuses writes)", async () => {
    const user = newUser();
    const err = await rejection(
      sql.transaction(
        [sql`insert into users (id, mobile_number) values (${user.id}, ${user.mobileNumber})`],
        { isolationLevel: "Serializable", readOnly: true },
      ),
    );
    expect(neonErrorOf(err).code).toBe("25006");
    const [level] = await sql.transaction([sql`show transaction_isolation`], {
      isolationLevel: "RepeatableRead",
    });
    expect(level).toEqual([{ transaction_isolation: "repeatable read" }]);
    expect(await sql`select id from users where id = ${user.id}`).toEqual([]);
  });

  it("behaves like an unreachable database while down, and recovers after none", async () => {
    const user = newUser();
    await db.insert(users).values(user);
    try {
      expect((await control("/fault", { mode: "down" })).status).toBe(200);
      const err = neonErrorOf(
        await rejection(db.select().from(users).where(eq(users.id, user.id))),
      );
      expect(err.message).toMatch(/^Error connecting to database: TypeError: fetch failed/);
      expect(err.code).toBeUndefined();
      expect((await stats()).fault).toEqual({ mode: "down", ms: 0 });
    } finally {
      await control("/fault", { mode: "none" });
    }
    const rows = await db.select({ id: users.id }).from(users).where(eq(users.id, user.id));
    expect(rows).toEqual([{ id: user.id }]);
  });

  it("delays each request by the slow fault's ms until reset", async () => {
    try {
      await control("/fault", { mode: "slow", ms: 300 });
      const started = performance.now();
      await sql`select 1`;
      expect(performance.now() - started).toBeGreaterThanOrEqual(290);
    } finally {
      await control("/fault", { mode: "none" });
    }
    const started = performance.now();
    await sql`select 1`;
    expect(performance.now() - started).toBeLessThan(250);
  });

  it("refuses an unknown fault mode", async () => {
    expect((await control("/fault", { mode: "sideways" })).status).toBe(400);
  });

  it("counts single-statement round trips", async () => {
    const before = await stats();
    await sql`select 1`;
    await sql`select 2`;
    const after = await stats();
    expect(after.queries - before.queries).toBe(2);
    expect(after.batches - before.batches).toBe(0);
  });

  it("runs an inspection query from the control endpoint with rows as objects", async () => {
    const user = newUser({ name: "inspected" });
    await db.insert(users).values(user);
    const res = await control("/query", {
      sql: "select id, name, tier, created_at, password_hash from users where id = $1",
      params: [user.id],
    });
    expect(res.status).toBe(200);
    const rows = res.body.rows as Record<string, unknown>[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({
      id: user.id,
      name: "inspected",
      tier: "basic",
      password_hash: null,
    });
    expect(new Date(rows[0]?.created_at as string).getTime()).not.toBeNaN();

    const bad = await control("/query", { sql: "select nope from users" });
    expect(bad.status).toBe(400);
    expect((bad.body.error as { code: string }).code).toBe("42703");
  });
});

describe("local Neon on PGlite persisted in a folder", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "neon-pglite-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps data across restarts and does not re-apply migrations", async () => {
    const config = { ...pgliteConfig, pgliteDir: join(dir, "data") };
    const user = newUser();

    const first = await startLocalCloud(config, [createNeonService]);
    try {
      const db = createDatabase(connectionString(first), `${first.url}/neon/sql`);
      await db.insert(users).values(user);
    } finally {
      await first.close();
    }

    const second = await startLocalCloud(config, [createNeonService]);
    try {
      const db = createDatabase(connectionString(second), `${second.url}/neon/sql`);
      const rows = await db.select({ id: users.id }).from(users).where(eq(users.id, user.id));
      expect(rows).toEqual([{ id: user.id }]);
      const applied = await db.execute<{ n: number }>(
        dsql`select count(*)::int as n from drizzle.__drizzle_migrations`,
      );
      expect(applied.rows).toEqual([{ n: journal.entries.length }]);
    } finally {
      await second.close();
    }
  });
});

// Only where a real PostgreSQL is configured, like the real-PostgreSQL backend above.
if (realDatabaseUrl)
  describe("migrations on a real PostgreSQL", () => {
    const admin = () => new pg.Client({ connectionString: realDatabaseUrl });
    const name = `neon_ct_${randomUUID().replaceAll("-", "").slice(0, 12)}`;
    const url = () => {
      const u = new URL(realDatabaseUrl!);
      u.pathname = `/${name}`;
      return u.toString();
    };

    beforeAll(async () => {
      const client = admin();
      await client.connect();
      await client.query(`create database ${name}`);
      await client.end();
    });
    afterAll(async () => {
      const client = admin();
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    });

    it("applies once when several processes start together on a fresh database, then no-ops", async () => {
      await Promise.all([1, 2, 3, 4].map(() => migrateExclusively(url())));
      await migrateExclusively(url());

      const client = new pg.Client({ connectionString: url() });
      await client.connect();
      try {
        const applied = await client.query(
          "select count(*)::int as n from drizzle.__drizzle_migrations",
        );
        expect(applied.rows).toEqual([{ n: journal.entries.length }]);
        const tables = await client.query(
          "select table_name from information_schema.tables where table_schema = 'public' order by 1",
        );
        expect(tables.rows.map((r: { table_name: string }) => r.table_name)).toEqual(schemaTables);
      } finally {
        await client.end();
      }
    });
  });
