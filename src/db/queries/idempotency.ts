import { and, eq, gt, lte, notExists, type SQL, sql } from "drizzle-orm";
import type { Database } from "../client";
import { idempotencyKeys } from "../schema/idempotency-keys";

export type IdempotencyRow = typeof idempotencyKeys.$inferSelect;

/**
 * The live (unexpired) record of `key` for this user; pass key null for a query matching nothing.
 * With `onlyIf` (the caller's session check, say), nothing unless that condition holds too.
 */
export function selectIdempotencyRecord(
  db: Database,
  userId: string,
  key: string | null,
  now: Date,
  onlyIf?: SQL,
) {
  return db
    .select()
    .from(idempotencyKeys)
    .where(key === null ? sql`false` : and(liveRecord(userId, key, now), onlyIf))
    .limit(1);
}

function liveRecord(userId: string, key: string, now: Date) {
  return and(
    eq(idempotencyKeys.userId, userId),
    eq(idempotencyKeys.key, key),
    gt(idempotencyKeys.expiresAt, now),
  );
}

/** True while `key` has no live record for this user (a condition for a write in a batch). */
export function noLiveIdempotencyRecord(db: Database, userId: string, key: string, now: Date) {
  return notExists(
    db
      .select({ one: sql`1` })
      .from(idempotencyKeys)
      .where(liveRecord(userId, key, now)),
  );
}

/** Removes an expired record so the key can be used again (runs before the insert in a batch). */
export function deleteExpiredIdempotencyRecord(
  db: Database,
  userId: string,
  key: string,
  now: Date,
) {
  return db
    .delete(idempotencyKeys)
    .where(
      and(
        eq(idempotencyKeys.userId, userId),
        eq(idempotencyKeys.key, key),
        lte(idempotencyKeys.expiresAt, now),
      ),
    );
}

/** Plain insert: a live record with the same key makes the whole batch fail (unique violation). */
export function insertIdempotencyRecord(db: Database, row: typeof idempotencyKeys.$inferInsert) {
  return db.insert(idempotencyKeys).values(row);
}

/**
 * `insertIdempotencyRecord` written only while `condition` holds (its chatroom was written by an
 * earlier statement of the same batch, say). Plain all the same: a live record with the same
 * key makes the whole batch fail.
 */
export function insertIdempotencyRecordIf(
  db: Database,
  row: {
    userId: string;
    key: string;
    requestHash: string;
    statusCode: number;
    responseBody: unknown;
    createdAt: Date;
    expiresAt: Date;
  },
  condition: SQL,
) {
  // INSERT ... SELECT lists every column in the table's order (drizzle names them all).
  return db
    .insert(idempotencyKeys)
    .select(
      sql`select ${row.userId}, ${row.key}, ${row.requestHash}, ${row.statusCode}::int, ${JSON.stringify(row.responseBody)}::jsonb, ${row.createdAt.toISOString()}::timestamptz, ${row.expiresAt.toISOString()}::timestamptz where ${condition}`,
    );
}

/** Deletes up to `limit` expired records (the cron sweep keeps the table from growing forever). */
export async function purgeExpiredIdempotencyRecords(
  db: Database,
  now: Date,
  limit: number,
): Promise<number> {
  const result = await db.execute(sql`
    delete from ${idempotencyKeys}
     where (user_id, key) in (
       select user_id, key from ${idempotencyKeys}
        where expires_at <= ${now.toISOString()}::timestamptz
        limit ${limit})`);
  return result.rowCount ?? 0;
}
