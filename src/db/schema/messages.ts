import { index, integer, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import { chatrooms } from "./chatrooms";
import { users } from "./users";

export const MESSAGE_ROLES = ["user", "model"] as const;
export const MESSAGE_STATUSES = ["pending", "complete", "failed"] as const;
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
    /** For a model reply: the user message it answers. */
    replyToId: text("reply_to_id"),
    /** QStash message id of the job producing this reply; null while not (yet) published. */
    jobId: text("job_id"),
    /** The quota day (UTC, YYYY-MM-DD) the prompt was counted in, so a refund hits the right day. */
    quotaDay: text("quota_day"),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    completedAt: timestamp("completed_at", { withTimezone: true, mode: "date" }),
  },
  (t) => [
    index("messages_chatroom_created_idx").on(t.chatroomId, t.createdAt, t.id),
    index("messages_pending_idx").on(t.status, t.createdAt),
  ],
);

export type MessageRow = typeof messages.$inferSelect;
