import { eq, sql } from "drizzle-orm";
import type { Database } from "../client";
import { processedWebhookEvents } from "../schema";

/** True once the event id has been recorded (its state change committed with it). */
export async function isWebhookEventProcessed(db: Database, eventId: string): Promise<boolean> {
  const rows = await db
    .select({ id: processedWebhookEvents.id })
    .from(processedWebhookEvents)
    .where(eq(processedWebhookEvents.id, eventId))
    .limit(1);
  return rows.length > 0;
}

/**
 * Deletes up to `limit` event records processed before `before`. Stripe redelivers an event for
 * up to 3 days, so a record older than that can no longer stop a duplicate.
 */
export async function purgeProcessedWebhookEvents(
  db: Database,
  before: Date,
  limit: number,
): Promise<number> {
  const result = await db.execute(sql`
    delete from ${processedWebhookEvents}
     where id in (
       select id from ${processedWebhookEvents}
        where processed_at < ${before.toISOString()}::timestamptz
        limit ${limit})`);
  return result.rowCount ?? 0;
}
