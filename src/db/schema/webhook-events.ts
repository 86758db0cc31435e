import { index, pgTable, text, timestamp } from "drizzle-orm/pg-core";

/**
 * One row per processed Stripe event id: a redelivery finds its row and does nothing. Rows are
 * purged by the cron sweep long after Stripe stops redelivering (3 days).
 */
export const processedWebhookEvents = pgTable(
  "processed_webhook_events",
  {
    id: text("id").primaryKey(),
    source: text("source").notNull(),
    type: text("type").notNull(),
    processedAt: timestamp("processed_at", { withTimezone: true, mode: "date" })
      .notNull()
      .defaultNow(),
  },
  (t) => [index("processed_webhook_events_processed_at_idx").on(t.processedAt)],
);
