import { and, asc, eq, gte, lte } from "drizzle-orm";
import type { Database } from "../client";
import { usageDaily } from "../schema/usage";

/** A user's ledger rows between two days (YYYY-MM-DD, inclusive), oldest first. */
export function selectUsageDays(db: Database, userId: string, from: string, to: string) {
  return db
    .select()
    .from(usageDaily)
    .where(and(eq(usageDaily.userId, userId), gte(usageDaily.day, from), lte(usageDaily.day, to)))
    .orderBy(asc(usageDaily.day));
}
