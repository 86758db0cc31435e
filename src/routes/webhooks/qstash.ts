import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../context";
import { BODY_LIMITS, limitBody } from "../../middleware/body";
import { receiveReplyCallback, receiveTitleCallback } from "../../services/chat/callbacks";
import { REPLY_CALLBACK_PATH, REPLY_FAILURE_CALLBACK_PATH } from "../../services/chat/replies";
import { TITLE_CALLBACK_PATH } from "../../services/chat/titles";
import { createRouter, errorResponses, jsonContent } from "../router";

const CallbackQuery = z.object({
  reply_id: z.string().openapi({ description: "The reply this job produces" }),
});

const CallbackHeaders = z.object({
  "upstash-signature": z.string().optional().openapi({
    description: "QStash's JWT over the raw body and this URL (current or next signing key)",
  }),
});

const CallbackResult = z
  .object({ status: z.enum(["complete", "failed", "pending", "unchanged", "gone"]) })
  .openapi("QStashCallbackResult");

// Generic over the path so its literal type reaches AppType (a `string` path would erase the others).
const callbackRoute = <P extends string>(path: P, operationId: string, summary: string) =>
  createRoute({
    method: "post",
    path,
    operationId,
    tags: ["Webhooks"],
    summary,
    description:
      "Called by QStash with Gemini's generateContent response (base64 in `body`). Signature checked against the raw body and this endpoint's public URL; every delivery is idempotent on the reply id. An unknown reply id is 404, so QStash retries: the callback can outrun the commit of the reply it answers. Once the id is older than a minute its reply can no longer appear (deleted chatroom, failed write): 200 `gone` ends the retries.",
    request: { query: CallbackQuery, headers: CallbackHeaders },
    responses: {
      200: jsonContent(CallbackResult, "Processed (or a duplicate that changed nothing)"),
      ...errorResponses(400, [401, "invalid_signature"], [404, "not_found"], 413, 503),
    },
  });

const TitleResult = z
  .object({ status: z.enum(["titled", "unchanged", "ignored"]) })
  .openapi("QStashTitleResult");

const titleCallbackRoute = createRoute({
  method: "post",
  path: TITLE_CALLBACK_PATH,
  operationId: "receiveQstashTitle",
  tags: ["Webhooks"],
  summary: "QStash callback: a chatroom title Gemini suggested",
  description:
    "QStash's callback (and failure callback) for a chatroom's title job; signature checked as for replies. `titled`, `unchanged` (the user renamed it meanwhile) or `ignored` (no usable answer: the title stays).",
  request: {
    query: z.object({
      chatroom_id: z.string().openapi({ description: "The chatroom to title" }),
    }),
    headers: CallbackHeaders,
  },
  responses: {
    200: jsonContent(TitleResult, "Processed"),
    ...errorResponses(400, [401, "invalid_signature"], 413, 503),
  },
});

/** What QStash signed: the raw body, its signature and the path and query it was sent to. */
async function signedCallback(c: Context<AppEnv>) {
  const requested = new URL(c.req.url);
  return {
    raw: await c.req.text(),
    signature: c.req.header("upstash-signature"),
    pathAndQuery: `${requested.pathname}${requested.search}`,
  };
}

async function handleCallback(c: Context<AppEnv>, failureCallback: boolean) {
  const result = await receiveReplyCallback(c.get("ctx"), {
    ...(await signedCallback(c)),
    replyId: c.req.query("reply_id") ?? "",
    failureCallback,
  });
  return c.json({ status: result.status }, 200);
}

/** QStash signs the raw body: no JSON checks, a 4 MiB limit (Gemini responses ride in it). */
export const qstashWebhookRoutes = createRouter({ body: [limitBody(BODY_LIMITS.qstashCallback)] })
  .openapi(
    callbackRoute(
      REPLY_CALLBACK_PATH,
      "receiveQstashReply",
      "QStash callback: a Gemini reply attempt",
    ),
    (c) => handleCallback(c, false),
  )
  .openapi(
    callbackRoute(
      REPLY_FAILURE_CALLBACK_PATH,
      "receiveQstashReplyFailure",
      "QStash failure callback: retries exhausted",
    ),
    (c) => handleCallback(c, true),
  )
  .openapi(titleCallbackRoute, async (c) => {
    const result = await receiveTitleCallback(c.get("ctx"), {
      ...(await signedCallback(c)),
      chatroomId: c.req.valid("query").chatroom_id,
    });
    return c.json({ status: result.status }, 200);
  });
