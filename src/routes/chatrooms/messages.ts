import { createRoute, z } from "@hono/zod-openapi";
import { rateLimitHeaders as rateLimitFields } from "../../errors/http";
import { requireAuthDeferred } from "../../middleware/auth";
import type { SendMessageResult } from "../../services/chat/send";
import { errorResponses, jsonContent } from "../router";

import {
  ChatroomParams,
  IdempotencyHeader,
  MessagePage,
  MessageParams,
  MessageResponse,
  PromptAccepted,
  PromptBody,
  RegenerateAccepted,
  ResumeHeaders,
  replyHeaders,
  sseResponse,
} from "./schemas";

export const listMessagesRoute = createRoute({
  method: "get",
  path: "/chatroom/{id}/messages",
  operationId: "listMessages",
  tags: ["Chat"],
  summary: "Older messages, a page at a time (oldest first within a page)",
  request: {
    params: ChatroomParams,
    query: z.object({
      limit: z.coerce.number().int().min(1).max(100).default(50),
      before: z.string().max(64).optional().openapi({
        description: "A message id (next_cursor): return messages older than it",
      }),
    }),
  },
  responses: {
    200: jsonContent(MessagePage, "One page of messages"),
    ...errorResponses(400, 401, 404, 503),
  },
});

export const getMessageRoute = createRoute({
  method: "get",
  path: "/chatroom/{id}/messages/{message_id}",
  operationId: "getMessage",
  tags: ["Chat"],
  summary: "One message (poll a pending reply here)",
  request: { params: MessageParams },
  responses: {
    200: jsonContent(MessageResponse, "The message"),
    ...errorResponses(401, 404, 503),
  },
});

export const regenerateReplyRoute = createRoute({
  method: "post",
  path: "/chatroom/{id}/messages/{message_id}/regenerate",
  operationId: "regenerateReply",
  tags: ["Chat"],
  summary: "Ask again: a new pending reply to the same prompt",
  description:
    "Takes a model reply that is complete, failed or cancelled and queues a new reply to its prompt, with the history up to that prompt (as its first request had it). Counts against the daily quota and MAX_PENDING_REPLIES like a prompt (409 reply_in_progress, 429 daily_limit_reached) and honours `Idempotency-Key` the same way. Earlier replies to the prompt get `superseded_by` (the new reply); GET /chatroom/:id shows only the newest. Regenerates of one prompt sent at once are each accepted and counted, as if sent one after another: the last one written is the current reply.",
  middleware: [requireAuthDeferred] as const,
  request: { params: MessageParams, headers: IdempotencyHeader },
  responses: {
    202: {
      ...jsonContent(RegenerateAccepted, "The new pending reply"),
      headers: replyHeaders,
    },
    ...errorResponses(
      400,
      401,
      404,
      [409, "idempotency_key_reused", "idempotency_in_progress", "reply_in_progress"],
      [429, "daily_limit_reached"],
      503,
    ),
  },
});

export const cancelReplyRoute = createRoute({
  method: "post",
  path: "/chatroom/{id}/messages/{message_id}/cancel",
  operationId: "cancelReply",
  tags: ["Chat"],
  summary: "Stop a pending reply (queued or streaming)",
  description:
    "A queued reply's QStash job is cancelled and its prompt refunded; a streaming reply stops within a second, keeps the text already streamed (the stream ends with a `cancelled` event) and is refunded only if no text was sent. A callback arriving later changes nothing. Cancelling again answers the same 200 and completes what the first cancel may not have (within 5 minutes of the cancel, a retry after a lost answer still refunds the prompt and stops the job; the refund is given once per reply); a finished reply is 409 reply_finished.",
  middleware: [requireAuthDeferred] as const,
  request: { params: MessageParams },
  responses: {
    200: jsonContent(MessageResponse, "The cancelled reply"),
    ...errorResponses(401, 404, [409, "reply_finished"], 503),
  },
});

export const followReplyRoute = createRoute({
  method: "get",
  path: "/chatroom/{id}/messages/{message_id}/stream",
  operationId: "followReply",
  tags: ["Chat"],
  summary: "Resume or attach to a reply's stream (Server-Sent Events)",
  description:
    "The reply's `delta` events after `Last-Event-ID` (each with `id:` 1, 2, …), then the live ones, then `done` ({reply}: the whole message), `error` or `cancelled`. A settled reply answers its last event alone; a queued one answers `done` once written. Any device may attach; after 5 minutes reconnect with `Last-Event-ID`. At most 4 follows per user at once (429 with Retry-After above that). A session revoked while attached ends the stream with an `error` event (`unauthorized`) within ~5 s.",
  request: { params: MessageParams, headers: ResumeHeaders },
  responses: {
    200: {
      description: "Server-Sent Events",
      content: {
        "text/event-stream": {
          schema: z.string().openapi({
            example: 'id: 4\nevent: delta\ndata: {"text":" Mittens"}\n\n',
          }),
        },
      },
    },
    ...errorResponses(400, 401, 404, 429, 503),
  },
});

export const sendMessageRoute = createRoute({
  method: "post",
  path: "/chatroom/{id}/message",
  operationId: "sendMessage",
  tags: ["Chat"],
  summary: "Send a prompt; Gemini's reply arrives asynchronously (or streams with SSE)",
  description:
    "Counts against the daily quota (Basic 5, Pro 1000 per UTC day). Answers 202 with the saved prompt and a pending reply to poll at Location. With `Accept: text/event-stream` answers 200 with Server-Sent Events: `message` (the saved prompt; the reply id is in `Location`), `delta` ({text}, with `id:` 1, 2, …; resume at GET …/stream with `Last-Event-ID`), then `done` ({reply}), `error` ({error, reply}) or, after POST …/cancel, `cancelled` ({reply}, the text sent so far). An `Idempotency-Key` replays the first response for 24 hours without creating anything or using quota; the same key with another body is 409 idempotency_key_reused. A repeat that arrives while the first is still being written, and finds the daily limit reached by it, waits for the first and replays it (409 idempotency_in_progress if it does not finish within a few seconds). A repeat sent after the first was answered 503 while its write's outcome was unknown answers 409 idempotency_in_progress, using no quota, until the outcome is known (about 20 s). Every 409 idempotency_in_progress carries `Retry-After` (1–5 s): send the same request again after it. At most MAX_PENDING_REPLIES replies (Basic 1, Pro 3) may be pending per user: one more is 409 reply_in_progress and uses no quota.",
  // sendMessage awaits the session check in its first round (issue 12).
  middleware: [requireAuthDeferred] as const,
  request: {
    params: ChatroomParams,
    headers: IdempotencyHeader,
    body: { content: { "application/json": { schema: PromptBody } }, required: true },
  },
  responses: {
    202: {
      ...jsonContent(PromptAccepted, "Prompt saved; the reply is pending"),
      headers: replyHeaders,
    },
    200: sseResponse,
    ...errorResponses(
      400,
      401,
      404,
      [409, "idempotency_key_reused", "idempotency_in_progress", "reply_in_progress"],
      413,
      415,
      [429, "daily_limit_reached"],
      503,
    ),
  },
});

/** A prompt's answer headers: today's quota, where the reply lives, and whether it is a replay. */
export function promptHeaders(result: SendMessageResult, location: string): Record<string, string> {
  return {
    ...(result.quota ? rateLimitFields(result.quota) : {}),
    ...(result.kind === "replay" ? { "Idempotent-Replayed": "true" } : {}),
    Location: location,
  };
}
