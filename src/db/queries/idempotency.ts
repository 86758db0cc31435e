import { and, eq, gt, lte, sql } from "drizzle-orm";
import type { Database } from "../client";
import { idempotencyKeys } from "../schema/idempotency-keys";

export type IdempotencyRow = typeof idempotencyKeys.$inferSelect;

/** The live (unexpired) record of `key` for this user; pass key null for a query matching nothing. */
export function selectIdempotencyRecord(
  db: Database,
  userId: string,
  key: string | null,
  now: Date,
) {
  return db
    .select()
    .from(idempotencyKeys)
    .where(
      key === null
        ? sql`false`
        : and(
            eq(idempotencyKeys.userId, userId),
            eq(idempotencyKeys.key, key),
            gt(idempotencyKeys.expiresAt, now),
          ),
    )
    .limit(1);
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
