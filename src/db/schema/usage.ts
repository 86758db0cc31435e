import { integer, pgTable, primaryKey, text } from "drizzle-orm/pg-core";
import { users } from "./users";

/**
 * Per-user daily usage ledger, written in the same db.batch that settles a reply (so it never
 * disagrees with the messages): one row per user and quota day (UTC, YYYY-MM-DD).
 */
export const usageDaily = pgTable(
  "usage_daily",
  {
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    day: text("day").notNull(),
    /** Prompts that counted (a refunded prompt is not here). */
    prompts: integer("prompts").notNull().default(0),
    inputTokens: integer("input_tokens").notNull().default(0),
    outputTokens: integer("output_tokens").notNull().default(0),
    thoughtTokens: integer("thought_tokens").notNull().default(0),
    cachedTokens: integer("cached_tokens").notNull().default(0),
  },
  (t) => [primaryKey({ columns: [t.userId, t.day] })],
);

export type UsageDailyRow = typeof usageDaily.$inferSelect;
