import { eq } from "drizzle-orm";
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
