import { pgTable, text, timestamp } from "drizzle-orm/pg-core";

export const TIERS = ["basic", "pro"] as const;
export type Tier = (typeof TIERS)[number];

export const users = pgTable("users", {
  id: text("id").primaryKey(),
  /** E.164, normalised before it is stored; the unique index makes parallel signups safe. */
  mobileNumber: text("mobile_number").notNull().unique(),
  name: text("name"),
  email: text("email"),
  /** `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`; null until the user sets a password. */
  passwordHash: text("password_hash"),
  /** Access tokens issued before this instant are refused (password change/reset). */
  passwordChangedAt: timestamp("password_changed_at", { withTimezone: true, mode: "date" }),
  /**
   * When a code sent to the number was first used (verify-otp or reset-password). Null: nobody
   * has proved they hold the number, so no password works (see docs/adr/0008-credentials.md).
   */
  mobileVerifiedAt: timestamp("mobile_verified_at", { withTimezone: true, mode: "date" }),
  tier: text("tier", { enum: TIERS }).notNull().default("basic"),
  stripeCustomerId: text("stripe_customer_id").unique(),
  createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
});

export type UserRow = typeof users.$inferSelect;
