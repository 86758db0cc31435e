import { sql } from "drizzle-orm";
import { index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import type { Grounding } from "../../lib/gemini-models";
import { chatrooms } from "./chatrooms";
import { users } from "./users";

export const MESSAGE_ROLES = ["user", "model"] as const;
/** `cancelled`: stopped by the user (POST …/cancel); text streamed before the stop is kept. */
export const MESSAGE_STATUSES = ["pending", "complete", "failed", "cancelled"] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

export const messages = pgTable(
  "messages",
  {
    id: text("id").primaryKey(),
    chatroomId: text("chatroom_id")
      .notNull()
      .references(() => chatrooms.id, { onDelete: "cascade" }),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    role: text("role", { enum: MESSAGE_ROLES }).notNull(),
    content: text("content").notNull().default(""),
    status: text("status", { enum: MESSAGE_STATUSES }).notNull(),
    /** Closed set of failure codes: rate_limited, upstream_error, safety_blocked, timeout. */
    error: text("error"),
    finishReason: text("finish_reason"),
    promptTokens: integer("prompt_tokens"),
    replyTokens: integer("reply_tokens"),
    /** thoughtsTokenCount: thinking, billed as output. */
    thoughtTokens: integer("thought_tokens"),
    /** cachedContentTokenCount: prompt tokens served from Gemini's context cache. */
    cachedTokens: integer("cached_tokens"),
    totalTokens: integer("total_tokens"),
    /** modelVersion Gemini reported: the model that actually answered. */
    model: text("model"),
    /** For a model reply: the user message it answers. */
    replyToId: text("reply_to_id"),
    /** Google Search grounding of a reply (chatrooms with `settings.google_search`). */
    grounding: jsonb("grounding").$type<Grounding>(),
    /** A regenerated reply's successor: the newest reply to the same prompt (null: current). */
    supersededBy: text("superseded_by"),
    /** QStash message id of the job producing this reply; null while not (yet) published. */
    jobId: text("job_id"),
    /** The quota day (UTC, YYYY-MM-DD) the prompt was counted in, so a refund hits the right day. */
    quotaDay: text("quota_day"),
    /**
     * Set by the statement that ends the reply without output (failed or cancelled, no text, no
     * reply or thought tokens): its prompt's refund is owed. The Worker pays it at once; the sweep
     * pays whatever a Redis outage left owed and clears the mark once the refund answered (ADR 3).
     */
    refundOwedAt: timestamp("refund_owed_at", { withTimezone: true, mode: "date" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    completedAt: timestamp("completed_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [
    index("messages_chatroom_created_idx").on(t.chatroomId, t.createdAt, t.id),
    index("messages_pending_idx").on(t.status, t.createdAt),
    /** A user's pending replies (MAX_PENDING_REPLIES is checked on every prompt). */
    index("messages_user_pending_idx").on(t.userId).where(sql`${t.status} = 'pending'`),
    /** Refunds still owed, oldest first (the sweep pays them). */
    index("messages_refund_owed_idx").on(t.refundOwedAt).where(sql`${t.refundOwedAt} is not null`),
  ],
);

export type MessageRow = typeof messages.$inferSelect;
