import { createRoute, type RouteConfig, z } from "@hono/zod-openapi";
import { MODEL_CATALOGUE } from "../../lib/gemini-models";
import {
  liveSession,
  requireAuthCarried,
  requireAuthDeferred,
  sessionOf,
  sessionRecheck,
} from "../../middleware/auth";
import {
  createChatroom,
  deleteChatroom,
  getChatroom,
  getMessage,
  listChatroomsCached,
  listMessages,
  updateChatroom,
} from "../../services/chat/chatrooms";
import { cancelReply } from "../../services/chat/control";
import {
  enterFollow,
  FOLLOW_HEARTBEAT_MS,
  findReplyToFollow,
  followReply,
} from "../../services/chat/resume";
import { sendMessage } from "../../services/chat/send";
import { streamReply } from "../../services/chat/stream";
import { getUsage, USAGE_MAX_DAYS } from "../../services/chat/usage";
import { createRouter, errorResponses, jsonContent } from "../router";
import { jsonText } from "../shared/json-text";
import { eventStreamResponse } from "../shared/sse";

import {
  cancelReplyRoute,
  followReplyRoute,
  getMessageRoute,
  listMessagesRoute,
  promptHeaders,
  regenerateReplyRoute,
  sendMessageRoute,
} from "./messages";
import {
  ChatroomDetail,
  ChatroomPage,
  ChatroomParams,
  ChatroomResponse,
  CreateChatroomBody,
  DayString,
  IdempotencyHeader,
  ModelsResponse,
  type rateLimitHeaders,
  replayHeaders,
  UpdateChatroomBody,
  UsageResponse,
} from "./schemas";

/**
 * `route` with `headers` validated and documented like any route's, yet left out of its typed
 * client input, where they would become a required `header` argument of every existing call
 * (POST /chatroom's Idempotency-Key came after its typed callers, scripts/support/fixtures.ts);
 * a typed client sends an optional header through its `headers` option instead.
 */
function withOptionalHeaders<R extends RouteConfig>(route: R, headers: z.ZodType): R {
  return { ...route, request: { ...route.request, headers } };
}

const createChatroomRoute = withOptionalHeaders(
  createRoute({
    method: "post",
    path: "/chatroom",
    operationId: "createChatroom",
    tags: ["Chat"],
    summary: "Create a chatroom",
    description:
      "`title` is optional (\"New chat\" until Gemini suggests one from the first exchange). `settings` apply to every reply in the chatroom: a model not in the caller's plan is 422 model_not_allowed; `max_output_tokens` above the plan's bound and `google_search` on Basic are 400. An `Idempotency-Key` makes a resend safe: the same key and body within 24 hours answers the first 201 again (the same chatroom, as it was created, with `Idempotent-Replayed: true`) and creates nothing; the same key with another body is 409 idempotency_key_reused. Sent twice at once, one chatroom is created and both answer it. Keys are the caller's own.",
    // The insert carries the session check (issue 18); with `settings` the check runs beside the
    // tier read instead, in the handler's first round. With a key, so do the record's read and write.
    middleware: [requireAuthCarried] as const,
    request: {
      body: { content: { "application/json": { schema: CreateChatroomBody } }, required: true },
    },
    responses: {
      201: {
        ...jsonContent(
          ChatroomResponse,
          "The new chatroom (or, for a resent Idempotency-Key, the first answer)",
        ),
        headers: replayHeaders,
      },
      ...errorResponses(
        400,
        401,
        [409, "idempotency_key_reused", "idempotency_in_progress"],
        413,
        415,
        [422, "model_not_allowed"],
        503,
      ),
    },
  }),
  IdempotencyHeader,
);

const listChatroomsRoute = createRoute({
  method: "get",
  path: "/chatroom",
  operationId: "listChatrooms",
  tags: ["Chat"],
  summary: "The caller's chatrooms, newest activity first (cached per user)",
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

const usageRoute = createRoute({
  method: "get",
  path: "/usage",
  operationId: "getUsage",
  tags: ["Chat"],
  summary: "The caller's Gemini usage per UTC day (prompts and tokens)",
  description: `From the usage ledger written with each settled reply. \`from\`/\`to\` are UTC days, inclusive; at most ${USAGE_MAX_DAYS} days; default the last 30 days.`,
  request: {
    query: z.object({ from: DayString.optional(), to: DayString.optional() }),
  },
  responses: {
    200: jsonContent(UsageResponse, "Daily usage, totals and the daily prompt limit"),
    ...errorResponses(400, 401, 503),
  },
});

/** Chatrooms, prompts, replies, models and usage; every route requires a bearer token. */
export const chatroomRoutes = createRouter({ auth: true })
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
    const result = await createChatroom(c.get("ctx"), {
      userId: c.get("userId"),
      title: body.title,
      description: body.description,
      settings: body.settings,
      // Validated with the route (IdempotencyHeader), though not in its typed input.
      idempotencyKey: c.req.header("idempotency-key"),
      sessionLive: () => liveSession(c),
      session: sessionOf(c),
    });
    // A replay repeats the stored status, which is always the 201 of the first response.
    return result.kind === "replay"
      ? c.json(result.body, 201, { "Idempotent-Replayed": "true" })
      : c.json(result.body, 201);
  })
  .openapi(listChatroomsRoute, async (c) => {
    const { limit, cursor } = c.req.valid("query");
    const { json, cache } = await listChatroomsCached(c.get("ctx"), {
      userId: c.get("userId"),
      limit,
      cursor,
    });
    // Already JSON (a hit is the stored text): sent as is.
    return jsonText<z.infer<typeof ChatroomPage>>(c, json, {
      "X-Cache": cache,
      "Cache-Control": "private, no-store",
    });
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
  .openapi(followReplyRoute, async (c) => {
    const ctx = c.get("ctx");
    const { id, message_id } = c.req.valid("param");
    const afterSeq = Number(c.req.valid("header")["last-event-id"] ?? "0");
    const userId = c.get("userId");
    // 404 before the stream opens; the session check and the per-user follow cap (429) run
    // beside this read and are settled before the stream starts, so a revoked token or a user
    // over the cap never opens one. The cap's entry is released when the follow ends.
    const entered = enterFollow(ctx, userId, c.get("requestId"));
    let release: () => Promise<void>;
    let reply: Awaited<ReturnType<typeof findReplyToFollow>>;
    try {
      [reply, , release] = await Promise.all([
        findReplyToFollow(ctx, { userId, chatroomId: id, messageId: message_id }),
        liveSession(c),
        entered,
      ]);
    } catch (err) {
      entered.then(
        (r) => r(),
        () => {},
      );
      throw err;
    }
    const sessionLive = sessionRecheck(c);
    return eventStreamResponse({
      requestSignal: c.req.raw.signal,
      headers: {},
      log: ctx.log,
      failure: "follow_reply_failed",
      waitUntil: (p) => c.executionCtx.waitUntil(p),
      // A queued reply writes nothing until it settles: the heartbeat is how a follow whose
      // client left ends (and frees its place under MAX_FOLLOWS_PER_USER) within seconds.
      heartbeatMs: FOLLOW_HEARTBEAT_MS,
      produce: (emit, gone) =>
        followReply(ctx, { reply, afterSeq, sessionLive }, emit, gone).finally(release),
    });
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
    // SSE: the reply is produced under waitUntil; a client that disconnects can resume while the
    // generation runs on, which is handed to the queued path after the grace (ADR 5).
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
