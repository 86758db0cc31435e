import { bigint, boolean, index, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { users } from "./users";

/** Stripe statuses that keep Pro: `past_due` while Stripe is still retrying the payment. */
export const PRO_STATUSES = ["active", "trialing", "past_due"] as const;
/** Stripe statuses a subscription never leaves; no later write may bring it back. */
export const TERMINAL_STATUSES = ["canceled", "incomplete_expired"] as const;

export const subscriptions = pgTable(
  "subscriptions",
  {
    /** Stripe subscription id. */
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    customerId: text("customer_id").notNull(),
    status: text("status").notNull(),
    priceId: text("price_id"),
    currentPeriodEnd: timestamp("current_period_end", { withTimezone: true, mode: "date" }),
    cancelAtPeriodEnd: boolean("cancel_at_period_end").notNull().default(false),
    /** Unix ms at which the state was read from Stripe; an older read never overwrites a newer one. */
    stateVersion: bigint("state_version", { mode: "number" }).notNull().default(0),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  // The tier is recomputed from a user's subscriptions under the user's row lock: no table scan.
  (t) => [index("subscriptions_user_status_idx").on(t.userId, t.status)],
);

export type SubscriptionRow = typeof subscriptions.$inferSelect;
