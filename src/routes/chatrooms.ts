import { createRoute, z } from "@hono/zod-openapi";
import { rateLimitHeaders as rateLimitFields } from "../errors/http";
import { MODEL_CATALOGUE, SYSTEM_INSTRUCTION_MAX_BYTES } from "../lib/gemini-models";
import { bearerSecurity, liveSession, requireAuth, requireAuthDeferred } from "../middleware/auth";
import {
  createChatroom,
  deleteChatroom,
  getChatroom,
  getMessage,
  listChatroomsCached,
  listMessages,
  updateChatroom,
} from "../services/chat/chatrooms";
import { cancelReply } from "../services/chat/control";
import { type SendMessageResult, sendMessage, streamReply } from "../services/chat/messages";
import { REPLY_ERRORS } from "../services/chat/replies";
import { getUsage, USAGE_MAX_DAYS } from "../services/chat/usage";
import { createRouter, errorResponses, jsonContent } from "./router";
import { eventStreamResponse } from "./shared/sse";

const Timestamp = z.string().openapi({ format: "date-time", example: "2025-01-15T09:30:00.000Z" });
const Id = z.string().openapi({ example: "01936f4e-1c2d-7b3a-9f00-123456789abc" });

const settingsFields = {
  model: z.string().openapi({
    example: "gemini-3.8-flash",
    description: "A model from GET /models that the caller's plan includes (else 422).",
  }),
  system_instruction: z
    .string()
    .refine(
      (s) => new TextEncoder().encode(s).length <= SYSTEM_INSTRUCTION_MAX_BYTES,
      `At most ${SYSTEM_INSTRUCTION_MAX_BYTES} bytes.`,
    )
    .openapi({ example: "Answer like a travel agent." }),
  temperature: z.number().min(0).max(2).openapi({ example: 0.7 }),
  max_output_tokens: z
    .number()
    .int()
    .min(1)
    .openapi({ example: 1024, description: "At most the plan's reply bound (and the model's)." }),
  google_search: z
    .boolean()
    .openapi({ example: false, description: "Ground answers with Google Search (Pro only)." }),
};

const SettingsView = z
  .object({
    model: settingsFields.model.optional(),
    system_instruction: z.string().optional().openapi({ example: "Answer like a travel agent." }),
    temperature: z.number().optional().openapi({ example: 0.7 }),
    max_output_tokens: z.number().int().optional().openapi({ example: 1024 }),
    google_search: z.boolean().optional().openapi({ example: false }),
  })
  .openapi("ChatSettings", {
    description:
      "The chatroom's own Gemini settings, applied to every reply in it; an absent field is the deployment's default.",
  });

const SettingsInput = z
  .object({
    model: settingsFields.model.optional(),
    system_instruction: settingsFields.system_instruction.optional(),
    temperature: settingsFields.temperature.optional(),
    max_output_tokens: settingsFields.max_output_tokens.optional(),
    google_search: settingsFields.google_search.optional(),
  })
  .strict()
  .openapi("ChatSettingsInput");

const SettingsPatch = z
  .object({
    model: settingsFields.model.nullable().optional(),
    system_instruction: settingsFields.system_instruction.nullable().optional(),
    temperature: settingsFields.temperature.nullable().optional(),
    max_output_tokens: settingsFields.max_output_tokens.nullable().optional(),
    google_search: settingsFields.google_search.nullable().optional(),
  })
  .strict()
  .openapi("ChatSettingsPatch", {
    description: "Merged into the chatroom's settings; null puts a field back to the default.",
  });

export const ChatroomSchema = z
  .object({
    id: Id,
    title: z.string().openapi({ example: "Trip ideas" }),
    title_source: z.enum(["auto", "user"]).openapi({
      description:
        '"user": set by the user; "auto": "New chat" or a title Gemini suggested from the first exchange.',
    }),
    description: z.string().nullable().openapi({ example: "Planning the June trip" }),
    settings: SettingsView,
    created_at: Timestamp,
    updated_at: Timestamp,
    last_message_at: Timestamp.nullable(),
    message_count: z.number().int().openapi({ example: 4 }),
  })
  .openapi("Chatroom");

export const MessageSchema = z
  .object({
    id: Id,
    chatroom_id: Id,
    role: z.enum(["user", "model"]),
    content: z.string().openapi({ example: "Suggest three names for a cat." }),
    status: z.enum(["pending", "complete", "failed", "cancelled"]).openapi({
      description:
        "`cancelled`: stopped with POST …/cancel; text streamed before the stop is kept in `content`.",
    }),
    error: z.enum(REPLY_ERRORS).nullable().openapi({
      description:
        "Why a reply failed. The prompt was given back to the daily quota unless Gemini had produced output for it (then `content` keeps the text already streamed).",
    }),
    finish_reason: z.string().nullable().openapi({
      example: "STOP",
      description:
        "Gemini's finishReason for a reply (`STOP`, `MAX_TOKENS` for a reply cut at the tier's output bound, `SAFETY`…); null for prompts and pending replies.",
    }),
    usage: z
      .object({
        prompt_tokens: z.number().int().openapi({ example: 12 }),
        reply_tokens: z
          .number()
          .int()
          .openapi({ example: 48, description: "Visible answer tokens." }),
        thought_tokens: z.number().int().openapi({
          example: 16,
          description: "Thinking tokens, billed as output.",
        }),
        cached_tokens: z.number().int().openapi({ example: 0 }),
        total_tokens: z.number().int().openapi({ example: 76 }),
        model: z.string().nullable().openapi({
          example: "gemini-3.8-flash",
          description: "The model version that answered.",
        }),
      })
      .nullable(),
    grounding: z
      .object({
        queries: z.array(z.string().openapi({ example: "cat names" })),
        sources: z.array(
          z.object({
            uri: z.string().openapi({ example: "https://example.com/cat-names" }),
            title: z.string().nullable().openapi({ example: "example.com" }),
          }),
        ),
      })
      .nullable()
      .openapi({
        description:
          "Google Search grounding of a reply (chatrooms with `settings.google_search`): the queries Gemini ran and the pages it used.",
      }),
    superseded_by: Id.nullable().openapi({
      description:
        "Set on a reply that was regenerated: the newest reply to the same prompt. GET /chatroom/:id shows only the newest; the messages list shows all.",
    }),
    created_at: Timestamp,
    completed_at: Timestamp.nullable(),
  })
  .openapi("Message");

// Lone surrogates cannot be stored as UTF-8 and NUL is refused by Postgres: reject them up front.
const wellFormed = (s: string) =>
  !s.includes("\0") &&
  !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

const TitleSchema = z
  .string()
  .trim()
  .min(1, "The title must not be empty.")
  .max(100)
  .refine(wellFormed, "The title contains invalid characters.")
  .openapi({ example: "Trip ideas" });

const DescriptionSchema = z
  .string()
  .max(500)
  .refine(wellFormed, "The description contains invalid characters.")
  .openapi({ example: "Planning the June trip" });

const CreateChatroomBody = z
  .object({
    title: TitleSchema.optional().openapi({
      description: 'Default "New chat", later replaced by a title Gemini suggests.',
    }),
    description: DescriptionSchema.optional(),
    settings: SettingsInput.optional(),
  })
  .strict()
  .openapi("CreateChatroomRequest");

const UpdateChatroomBody = z
  .object({
    title: TitleSchema.optional(),
    description: DescriptionSchema.nullable().optional(),
    settings: SettingsPatch.optional(),
  })
  .strict()
  .refine(
    (b) => b.title !== undefined || b.description !== undefined || b.settings !== undefined,
    "Send at least one of title, description, settings.",
  )
  .openapi("UpdateChatroomRequest");

const ModelsResponse = z
  .object({
    models: z.array(
      z.object({
        id: z.string().openapi({ example: "gemini-3.8-flash" }),
        display_name: z.string().openapi({ example: "Gemini 3.8 Flash" }),
        tiers: z.array(z.enum(["basic", "pro"])),
        input_token_limit: z.number().int().openapi({ example: 1048576 }),
        output_token_limit: z.number().int().openapi({ example: 65536 }),
        supports: z.object({ thinking: z.boolean(), search: z.boolean() }),
      }),
    ),
  })
  .openapi("Models");

const PromptBody = z
  .object({
    content: z
      .string()
      .min(1)
      .max(4000)
      .refine((s) => s.trim().length > 0, "The content must not be blank.")
      .refine(wellFormed, "The content contains invalid characters.")
      .openapi({ example: "Suggest three names for a cat." }),
  })
  .strict()
  .openapi("PromptRequest");

const ChatroomParams = z.object({
  id: z.string().openapi({
    param: { name: "id", in: "path" },
    description: "Chatroom id. A malformed, unknown or foreign id is 404.",
  }),
});

const MessageParams = ChatroomParams.extend({
  message_id: z.string().openapi({ param: { name: "message_id", in: "path" } }),
});

const ChatroomResponse = z.object({ chatroom: ChatroomSchema }).openapi("ChatroomResponse");
const ChatroomPage = z
  .object({
    chatrooms: z.array(ChatroomSchema),
    next_cursor: z.string().nullable().openapi({ example: null }),
  })
  .openapi("ChatroomPage");
const ChatroomDetail = z
  .object({ chatroom: ChatroomSchema, messages: z.array(MessageSchema), has_more: z.boolean() })
  .openapi("ChatroomDetail");
const MessagePage = z
  .object({
    messages: z.array(MessageSchema),
    next_cursor: z.string().nullable().openapi({ example: null }),
  })
  .openapi("MessagePage");
const MessageResponse = z.object({ message: MessageSchema }).openapi("MessageResponse");
const PromptAccepted = z
  .object({ message: MessageSchema, reply: MessageSchema })
  .openapi("PromptAccepted");

const rateLimitHeaders = z.object({
  "RateLimit-Limit": z.string().openapi({ description: "Prompts allowed per UTC day" }),
  "RateLimit-Remaining": z.string().openapi({ description: "Prompts left today" }),
  "RateLimit-Reset": z.string().openapi({ description: "Seconds until 00:00 UTC" }),
});

/**
 * Streams are read with fetch or EventSource, not the RPC client. `content` typed as optional
 * keeps this 200 out of AppType (zod-openapi skips such entries), so the 202 JSON stays precise.
 */
const replyHeaders = rateLimitHeaders.extend({
  Location: z.string().openapi({ description: "Where to poll the reply" }),
});

const sseResponse: {
  description: string;
  headers: typeof replyHeaders;
  content?: { "text/event-stream": { schema: z.ZodString } };
} = {
  description: "Server-Sent Events (with Accept: text/event-stream)",
  content: {
    "text/event-stream": {
      schema: z.string().openapi({
        example: 'event: delta\ndata: {"text":"Whiskers"}\n\n',
      }),
    },
  },
  headers: replyHeaders,
};

const createChatroomRoute = createRoute({
  method: "post",
  path: "/chatroom",
  operationId: "createChatroom",
  tags: ["Chat"],
  summary: "Create a chatroom",
  security: bearerSecurity,
  description:
    "`title` is optional (\"New chat\" until Gemini suggests one from the first exchange). `settings` apply to every reply in the chatroom: a model not in the caller's plan is 422 model_not_allowed; `max_output_tokens` above the plan's bound and `google_search` on Basic are 400.",
  // The session check is awaited in the handler's first round (issue 15).
  middleware: [requireAuthDeferred] as const,
  request: {
    body: { content: { "application/json": { schema: CreateChatroomBody } }, required: true },
  },
  responses: {
    201: jsonContent(ChatroomResponse, "The new chatroom"),
    ...errorResponses(400, 401, 413, 415, [422, "model_not_allowed"], 503),
  },
});

const listChatroomsRoute = createRoute({
  method: "get",
  path: "/chatroom",
  operationId: "listChatrooms",
  tags: ["Chat"],
  summary: "The caller's chatrooms, newest activity first (cached per user)",
  security: bearerSecurity,
  middleware: [requireAuth] as const,
  request: {
    query: z.object({
      limit: z.coerce.number().int().min(1).max(100).default(20),
      cursor: z
        .string()
        .max(256)
        .optional()
        .openapi({ description: "next_cursor of the previous page" }),
    }),
  },
  responses: {
    200: {
      ...jsonContent(ChatroomPage, "One page of chatrooms"),
      headers: z.object({
        "X-Cache": z.enum(["HIT", "MISS"]).openapi({ description: "Served from the Redis cache?" }),
      }),
    },
    ...errorResponses(400, 401, 503),
  },
});

const getChatroomRoute = createRoute({
  method: "get",
  path: "/chatroom/{id}",
  operationId: "getChatroom",
  tags: ["Chat"],
  summary: "A chatroom with its latest 50 messages, oldest first",
  security: bearerSecurity,
  middleware: [requireAuth] as const,
  request: { params: ChatroomParams },
  responses: {
    200: jsonContent(ChatroomDetail, "The chatroom"),
    ...errorResponses(401, 404, 503),
  },
});

const renameChatroomRoute = createRoute({
  method: "patch",
  path: "/chatroom/{id}",
  operationId: "renameChatroom",
  tags: ["Chat"],
  summary: "Rename a chatroom, or change its description or settings",
  description:
    'Fields left out are unchanged; `settings` are merged (a null field goes back to the default). Setting a title makes `title_source` "user": Gemini never retitles it.',
  security: bearerSecurity,
  middleware: [requireAuthDeferred] as const,
  request: {
    params: ChatroomParams,
    body: { content: { "application/json": { schema: UpdateChatroomBody } }, required: true },
  },
  responses: {
    200: jsonContent(ChatroomResponse, "The updated chatroom"),
    ...errorResponses(400, 401, 404, 413, 415, [422, "model_not_allowed"], 503),
  },
});

const deleteChatroomRoute = createRoute({
  method: "delete",
  path: "/chatroom/{id}",
  operationId: "deleteChatroom",
  tags: ["Chat"],
  summary: "Delete a chatroom and its messages",
  security: bearerSecurity,
  middleware: [requireAuthDeferred] as const,
  request: { params: ChatroomParams },
  responses: {
    204: { description: "Deleted" },
    ...errorResponses(401, 404, 503),
  },
});

const modelsRoute = createRoute({
  method: "get",
  path: "/models",
  operationId: "listModels",
  tags: ["Chat"],
  summary:
    "The Gemini models a chatroom can use, with their limits and the plans that include them",
  security: bearerSecurity,
  middleware: [requireAuth] as const,
  responses: {
    200: {
      ...jsonContent(ModelsResponse, "The model catalogue (the same for everyone)"),
      headers: z.object({
        "Cache-Control": z.string().openapi({ example: "public, max-age=3600" }),
      }),
    },
    ...errorResponses(401, 503),
  },
});

const listMessagesRoute = createRoute({
  method: "get",
  path: "/chatroom/{id}/messages",
  operationId: "listMessages",
  tags: ["Chat"],
  summary: "Older messages, a page at a time (oldest first within a page)",
  security: bearerSecurity,
  middleware: [requireAuth] as const,
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

const getMessageRoute = createRoute({
  method: "get",
  path: "/chatroom/{id}/messages/{message_id}",
  operationId: "getMessage",
  tags: ["Chat"],
  summary: "One message (poll a pending reply here)",
  security: bearerSecurity,
  middleware: [requireAuth] as const,
  request: { params: MessageParams },
  responses: {
    200: jsonContent(MessageResponse, "The message"),
    ...errorResponses(401, 404, 503),
  },
});

const IdempotencyHeader = z.object({
  "idempotency-key": z
    .string()
    .min(1)
    .max(255)
    .regex(/^[\x21-\x7e]+$/, "Use printable ASCII without spaces.")
    .optional(),
});

const RegenerateAccepted = z.object({ reply: MessageSchema }).openapi("RegenerateAccepted");

const regenerateReplyRoute = createRoute({
  method: "post",
  path: "/chatroom/{id}/messages/{message_id}/regenerate",
  operationId: "regenerateReply",
  tags: ["Chat"],
  summary: "Ask again: a new pending reply to the same prompt",
  description:
    "Takes a model reply that is complete, failed or cancelled and queues a new reply to its prompt, with the history before that prompt. Counts against the daily quota and MAX_PENDING_REPLIES like a prompt (409 reply_in_progress, 429 daily_limit_reached) and honours `Idempotency-Key` the same way. Earlier replies to the prompt get `superseded_by` (the new reply); GET /chatroom/:id shows only the newest.",
  security: bearerSecurity,
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

const cancelReplyRoute = createRoute({
  method: "post",
  path: "/chatroom/{id}/messages/{message_id}/cancel",
  operationId: "cancelReply",
  tags: ["Chat"],
  summary: "Stop a pending reply (queued or streaming)",
  description:
    "A queued reply's QStash job is cancelled and its prompt refunded; a streaming reply stops within a second, keeps the text already streamed (the stream ends with a `cancelled` event) and is refunded only if no text was sent. A callback arriving later changes nothing. Cancelling again answers the same 200; a finished reply is 409 reply_finished.",
  security: bearerSecurity,
  middleware: [requireAuthDeferred] as const,
  request: { params: MessageParams },
  responses: {
    200: jsonContent(MessageResponse, "The cancelled reply"),
    ...errorResponses(401, 404, [409, "reply_finished"], 503),
  },
});

const sendMessageRoute = createRoute({
  method: "post",
  path: "/chatroom/{id}/message",
  operationId: "sendMessage",
  tags: ["Chat"],
  summary: "Send a prompt; Gemini's reply arrives asynchronously (or streams with SSE)",
  description:
    "Counts against the daily quota (Basic 5, Pro 1000 per UTC day). Answers 202 with the saved prompt and a pending reply to poll at Location. With `Accept: text/event-stream` answers 200 with Server-Sent Events: `message` (the saved prompt), `delta` ({text}), then `done` ({reply}), `error` ({error, reply}) or, after POST …/cancel, `cancelled` ({reply}, the text sent so far). An `Idempotency-Key` replays the first response for 24 hours without creating anything or using quota; the same key with another body is 409 idempotency_key_reused. A repeat that arrives while the first is still being written, and finds the daily limit reached by it, waits for the first and replays it (409 idempotency_in_progress if it does not finish within a few seconds). At most MAX_PENDING_REPLIES replies (Basic 1, Pro 3) may be pending per user: one more is 409 reply_in_progress and uses no quota.",
  security: bearerSecurity,
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
function promptHeaders(result: SendMessageResult, location: string): Record<string, string> {
  return {
    ...(result.quota ? rateLimitFields(result.quota) : {}),
    ...(result.kind === "replay" ? { "Idempotent-Replayed": "true" } : {}),
    Location: location,
  };
}

const DayString = z
  .string()
  .regex(/^\d{4}-\d{2}-\d{2}$/, "Use YYYY-MM-DD.")
  .openapi({ format: "date", example: "2026-12-01" });
const UsageCounts = {
  prompts: z.number().int().openapi({ example: 3, description: "Prompts that counted" }),
  input_tokens: z.number().int().openapi({ example: 240 }),
  output_tokens: z.number().int().openapi({ example: 910, description: "Visible answer tokens" }),
  thought_tokens: z
    .number()
    .int()
    .openapi({ example: 64, description: "Thinking, billed as output" }),
};
const UsageResponse = z
  .object({
    days: z.array(z.object({ date: DayString, ...UsageCounts })),
    totals: z.object(UsageCounts),
    limits: z.object({ prompts_per_day: z.number().int().openapi({ example: 5 }) }),
  })
  .openapi("Usage");

const usageRoute = createRoute({
  method: "get",
  path: "/usage",
  operationId: "getUsage",
  tags: ["Chat"],
  summary: "The caller's Gemini usage per UTC day (prompts and tokens)",
  description: `From the usage ledger written with each settled reply. \`from\`/\`to\` are UTC days, inclusive; at most ${USAGE_MAX_DAYS} days; default the last 30 days.`,
  security: bearerSecurity,
  middleware: [requireAuth] as const,
  request: {
    query: z.object({ from: DayString.optional(), to: DayString.optional() }),
  },
  responses: {
    200: jsonContent(UsageResponse, "Daily usage, totals and the daily prompt limit"),
    ...errorResponses(400, 401, 503),
  },
});

export const chatroomRoutes = createRouter()
  .openapi(usageRoute, async (c) => {
    const { from, to } = c.req.valid("query");
    const report = await getUsage(c.get("ctx"), { userId: c.get("userId"), from, to });
    return c.json(report, 200);
  })
  .openapi(modelsRoute, (c) => {
    const models = MODEL_CATALOGUE.map((m) => ({ ...m, tiers: [...m.tiers] }));
    return c.json({ models }, 200, { "Cache-Control": "public, max-age=3600" });
  })
  .openapi(createChatroomRoute, async (c) => {
    const body = c.req.valid("json");
    const chatroom = await createChatroom(c.get("ctx"), {
      userId: c.get("userId"),
      title: body.title,
      description: body.description,
      settings: body.settings,
      sessionLive: liveSession(c),
    });
    return c.json({ chatroom }, 201);
  })
  .openapi(listChatroomsRoute, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const { page, cache } = await listChatroomsCached(c.get("ctx"), {
      userId: c.get("userId"),
      limit,
      cursor,
    });
    return c.json(page, 200, { "X-Cache": cache, "Cache-Control": "private, no-store" });
  })
  .openapi(getChatroomRoute, async (c) => {
    const detail = await getChatroom(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: c.req.valid("param").id,
    });
    return c.json(detail, 200);
  })
  .openapi(renameChatroomRoute, async (c) => {
    const body = c.req.valid("json");
    const chatroom = await updateChatroom(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: c.req.valid("param").id,
      title: body.title,
      description: body.description,
      settings: body.settings,
      sessionLive: liveSession(c),
    });
    return c.json({ chatroom }, 200);
  })
  .openapi(deleteChatroomRoute, async (c) => {
    await deleteChatroom(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: c.req.valid("param").id,
      sessionLive: liveSession(c),
    });
    return c.body(null, 204);
  })
  .openapi(listMessagesRoute, async (c) => {
    const { limit, before } = c.req.valid("query");
    const page = await listMessages(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: c.req.valid("param").id,
      limit,
      before,
    });
    return c.json(page, 200);
  })
  .openapi(getMessageRoute, async (c) => {
    const { id, message_id } = c.req.valid("param");
    const message = await getMessage(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: id,
      messageId: message_id,
    });
    return c.json({ message }, 200);
  })
  .openapi(regenerateReplyRoute, async (c) => {
    const { id, message_id } = c.req.valid("param");
    const result = await sendMessage(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: id,
      content: "",
      regenerate: { replyId: message_id },
      idempotencyKey: c.req.valid("header")["idempotency-key"],
      mode: "queued",
      sessionLive: liveSession(c),
    });
    c.set("rateLimitOutcome", "allowed");
    const headers = promptHeaders(result, `/chatroom/${id}/messages/${result.body.reply.id}`);
    return c.json({ reply: result.body.reply }, 202, headers as z.infer<typeof rateLimitHeaders>);
  })
  .openapi(cancelReplyRoute, async (c) => {
    const { id, message_id } = c.req.valid("param");
    const message = await cancelReply(c.get("ctx"), {
      userId: c.get("userId"),
      chatroomId: id,
      messageId: message_id,
      sessionLive: liveSession(c),
    });
    return c.json({ message }, 200);
  })
  .openapi(sendMessageRoute, async (c) => {
    const ctx = c.get("ctx");
    const chatroomId = c.req.valid("param").id;
    const streaming = (c.req.header("accept") ?? "").includes("text/event-stream");
    const result = await sendMessage(ctx, {
      userId: c.get("userId"),
      chatroomId,
      content: c.req.valid("json").content,
      idempotencyKey: c.req.valid("header")["idempotency-key"],
      mode: streaming ? "stream" : "queued",
      sessionLive: liveSession(c),
    });
    // For the request log; a refusal (429) is logged as "limited" by the log middleware.
    c.set("rateLimitOutcome", "allowed");
    const headers = promptHeaders(
      result,
      `/chatroom/${chatroomId}/messages/${result.body.reply.id}`,
    );
    if (result.kind === "replay" || !streaming) {
      // A replay repeats the stored status, which is always the 202 of the first response.
      return c.json(result.body, 202, headers as z.infer<typeof rateLimitHeaders>);
    }
    // SSE: the reply is produced under waitUntil; a client that disconnects hands the unfinished
    // generation to the queued path (ADR 5), so the reply is saved whether or not it stays.
    const { job } = result;
    return eventStreamResponse({
      requestSignal: c.req.raw.signal,
      headers,
      log: ctx.log,
      failure: "stream_reply_failed",
      waitUntil: (p) => c.executionCtx.waitUntil(p),
      produce: (emit, gone) => {
        emit("message", { message: result.body.message });
        return streamReply(ctx, { ...job, chatroomId }, emit, gone);
      },
    });
  });
