import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../context";
import { NotFoundError, UnauthorizedError, ValidationError } from "../../errors";
import { ID_PATTERN, idTimeMs } from "../../lib/ids";
import { parseQueueCallback } from "../../lib/queue";
import { BODY_LIMITS, limitBody } from "../../middleware/body";
import {
  interpretCallback,
  REPLY_CALLBACK_PATH,
  REPLY_FAILURE_CALLBACK_PATH,
  settleReply,
} from "../../services/chat/replies";
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

/** Longer than any write of a reply row can take (10 s query deadline, with room to spare). */
const REPLY_ROW_GRACE_MS = 60_000;

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

async function handleCallback(c: Context<AppEnv>, failureCallback: boolean) {
  const ctx = c.get("ctx");
  const raw = await c.req.text();
  const signature = c.req.header("upstash-signature");
  // Verify against our public URL (APP_URL), not request.url, which a proxy may have rewritten.
  const requested = new URL(c.req.url);
  const publicUrl = `${ctx.config.appUrl.replace(/\/+$/, "")}${requested.pathname}${requested.search}`;
  const valid =
    signature !== undefined &&
    (await ctx.queueVerifier.verify({ signature, body: raw, url: publicUrl }));
  if (!valid) {
    throw new UnauthorizedError("The QStash signature is invalid.", "invalid_signature");
  }

  const replyId = c.req.query("reply_id") ?? "";
  if (!ID_PATTERN.test(replyId)) throw new ValidationError("reply_id is malformed.");
  const callback = parseQueueCallback(raw);
  if (!callback) throw new ValidationError("The body is not a QStash callback.");

  const outcome = interpretCallback(callback, {
    failureCallback,
    defaultMaxRetries: ctx.config.qstashRetries,
  });
  const result = await settleReply(ctx, replyId, outcome);
  ctx.log.info("qstash_callback", {
    reply_id: replyId,
    failure_callback: failureCallback,
    upstream_status: callback.status,
    retried: callback.retried,
    dlq_id: callback.dlqId,
    outcome: outcome.kind,
    result: result.status,
  });
  if (result.status === "unknown") {
    // The id says when its request made it: past every query deadline, the row will never
    // appear (its chatroom was deleted, or its write failed), so retrying only fills the DLQ.
    if (ctx.clock.now().getTime() - idTimeMs(replyId) > REPLY_ROW_GRACE_MS) {
      return c.json({ status: "gone" as const }, 200);
    }
    // Not 200: the reply's batch may still be committing; QStash retries a non-2xx later.
    throw new NotFoundError("No such reply (yet).");
  }
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
  );
