import type { ChatroomRow } from "../../db/schema/chatrooms";
import type { MessageRole, MessageRow, MessageStatus } from "../../db/schema/messages";
import type { ChatSettings, Grounding } from "../../lib/gemini-models";

/** The closed set of reply failure codes a client can see in `Message.error`. */
export const REPLY_ERRORS = [
  "rate_limited",
  "upstream_error",
  "safety_blocked",
  "timeout",
] as const;
export type ReplyError = (typeof REPLY_ERRORS)[number];

/** The public JSON of a chatroom. */
export interface ChatroomView {
  id: string;
  title: string;
  title_source: "auto" | "user";
  description: string | null;
  settings: ChatSettings;
  created_at: string;
  updated_at: string;
  last_message_at: string | null;
  message_count: number;
}

/** The public JSON of a message (a prompt or a model reply). */
export interface MessageView {
  id: string;
  chatroom_id: string;
  role: MessageRole;
  content: string;
  status: MessageStatus;
  error: ReplyError | null;
  finish_reason: string | null;
  usage: {
    prompt_tokens: number;
    reply_tokens: number;
    thought_tokens: number;
    cached_tokens: number;
    total_tokens: number;
    model: string | null;
  } | null;
  /** Google Search grounding of a reply (null: none). */
  grounding: Grounding | null;
  /** A regenerated reply: the id of the newest reply to the same prompt. */
  superseded_by: string | null;
  created_at: string;
  completed_at: string | null;
}

export function chatroomView(r: ChatroomRow): ChatroomView {
  return {
    id: r.id,
    title: r.title,
    title_source: r.titleSource,
    description: r.description,
    settings: r.settings ?? {},
    created_at: r.createdAt.toISOString(),
    updated_at: r.updatedAt.toISOString(),
    last_message_at: r.lastMessageAt ? r.lastMessageAt.toISOString() : null,
    message_count: r.messageCount,
  };
}

export function messageView(
  r: Pick<
    MessageRow,
    | "id"
    | "chatroomId"
    | "role"
    | "content"
    | "status"
    | "error"
    | "finishReason"
    | "promptTokens"
    | "replyTokens"
    | "thoughtTokens"
    | "cachedTokens"
    | "totalTokens"
    | "model"
    | "supersededBy"
    | "grounding"
    | "createdAt"
    | "completedAt"
  >,
): MessageView {
  return {
    id: r.id,
    chatroom_id: r.chatroomId,
    role: r.role,
    content: r.content,
    status: r.status,
    error: (REPLY_ERRORS as readonly string[]).includes(r.error ?? "")
      ? (r.error as ReplyError)
      : null,
    finish_reason: r.role === "model" ? r.finishReason : null,
    // A reply's usage once settled with output: complete, or failed after streaming text.
    usage:
      r.role === "model" && (r.status === "complete" || (r.status === "failed" && r.content))
        ? {
            prompt_tokens: r.promptTokens ?? 0,
            reply_tokens: r.replyTokens ?? 0,
            thought_tokens: r.thoughtTokens ?? 0,
            cached_tokens: r.cachedTokens ?? 0,
            total_tokens:
              r.totalTokens ??
              (r.promptTokens ?? 0) + (r.replyTokens ?? 0) + (r.thoughtTokens ?? 0),
            model: r.model,
          }
        : null,
    grounding: r.role === "model" ? (r.grounding ?? null) : null,
    superseded_by: r.supersededBy,
    created_at: r.createdAt.toISOString(),
    completed_at: r.completedAt ? r.completedAt.toISOString() : null,
  };
}
