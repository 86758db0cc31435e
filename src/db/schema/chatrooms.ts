import { index, integer, jsonb, pgTable, text, timestamp } from "drizzle-orm/pg-core";
import type { ChatSettings } from "../../lib/gemini-models";
import { users } from "./users";

export const chatrooms = pgTable(
  "chatrooms",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    title: text("title").notNull(),
    /** "user": set by the user (never replaced); "auto": the default or one Gemini suggested. */
    titleSource: text("title_source", { enum: ["auto", "user"] })
      .notNull()
      .default("user"),
    description: text("description"),
    /** The chatroom's own Gemini settings (ChatSettings); null: the deployment's defaults. */
    settings: jsonb("settings").$type<ChatSettings>(),
    messageCount: integer("message_count").notNull().default(0),
    lastMessageAt: timestamp("last_message_at", { withTimezone: true, mode: "date" }),
    createdAt: timestamp("created_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
    updatedAt: timestamp("updated_at", { withTimezone: true, mode: "date" }).notNull().defaultNow(),
  },
  (t) => [index("chatrooms_user_activity_idx").on(t.userId, t.updatedAt, t.id)],
);

export type ChatroomRow = typeof chatrooms.$inferSelect;
