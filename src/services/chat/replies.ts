import { touchChatroomForReply } from "../../db/queries/chatrooms";
import {
  completeReply,
  failReply,
  type MessageRow,
  selectReplyId,
} from "../../db/queries/messages";
import { describeError, sqlStateOf } from "../../errors";
import {
  GEMINI_API_KEY_HEADER,
  type GeminiAnswer,
  GeminiCallError,
  type GenerateContentBody,
  generateContentUrl,
  readGenerateContentResponse,
} from "../../lib/gemini";
import { decodeCallbackBody, type QueueCallback, type QueuedRequest } from "../../lib/queue";
import { invalidateList } from "./chatrooms";
import type { ChatConfig, ChatDeps } from "./deps";
import type { ReplyError } from "./views";

export { REPLY_ERRORS, type ReplyError } from "./views";

/** What one piece of news about a reply means for it. */
export type ReplyOutcome =
  | {
      kind: "complete";
      text: string;
      finishReason: string | null;
      promptTokens: number | null;
      replyTokens: number | null;
    }
  | { kind: "failed"; error: ReplyError; finishReason: string | null }
  | { kind: "retrying" };

/** job_id of a reply produced by the streaming path (never republished by the sweep). */
export const STREAM_JOB_ID = "stream";

export const REPLY_CALLBACK_PATH = "/webhook/qstash/reply";
export const REPLY_FAILURE_CALLBACK_PATH = "/webhook/qstash/reply-failed";

/** The QStash job that asks Gemini for a reply and reports back to our callbacks. */
export function replyJob(
  config: ChatConfig,
  replyId: string,
  body: GenerateContentBody,
): QueuedRequest {
  const base = config.appUrl.replace(/\/+$/, "");
  const query = `?reply_id=${encodeURIComponent(replyId)}`;
  return {
    url: generateContentUrl(config.geminiBaseUrl, config.geminiModel),
    body,
    forwardHeaders: { [GEMINI_API_KEY_HEADER]: config.geminiApiKey },
    redactHeaders: [GEMINI_API_KEY_HEADER],
    deduplicationId: replyId,
    retries: config.qstashRetries,
    timeoutSeconds: config.geminiTimeoutSeconds,
    callback: `${base}${REPLY_CALLBACK_PATH}${query}`,
    failureCallback: `${base}${REPLY_FAILURE_CALLBACK_PATH}${query}`,
  };
}

export function outcomeOfAnswer(answer: GeminiAnswer | null): ReplyOutcome {
  if (!answer) return { kind: "failed", error: "upstream_error", finishReason: null };
  if (answer.kind === "blocked") {
    return { kind: "failed", error: "safety_blocked", finishReason: answer.finishReason };
  }
  if (answer.kind === "empty") {
    return { kind: "failed", error: "upstream_error", finishReason: answer.finishReason };
  }
  return {
    kind: "complete",
    text: answer.text,
    finishReason: answer.finishReason,
    promptTokens: answer.usage.promptTokens,
    replyTokens: answer.usage.replyTokens,
  };
}

function errorForStatus(status: number): ReplyError {
  if (status === 429) return "rate_limited";
  // QStash reports status 0 when the destination gave no response (timeout, connection error).
  if (status === 0 || status === 408 || status === 504) return "timeout";
  return "upstream_error";
}

/**
 * Reads a QStash callback. A 2xx is final (QStash will not retry it): usable text completes the
 * reply, anything else fails it. A non-2xx is final only on the failure callback or once the
 * retries are used up; before that the reply stays pending.
 */
export function interpretCallback(
  cb: QueueCallback,
  o: { failureCallback: boolean; defaultMaxRetries: number },
): ReplyOutcome {
  if (cb.status >= 200 && cb.status < 300) {
    const json = decodeCallbackBody(cb.body);
    return outcomeOfAnswer(json === undefined ? null : readGenerateContentResponse(json));
  }
  const maxRetries = cb.maxRetries ?? o.defaultMaxRetries;
  const final = o.failureCallback || (cb.retried ?? 0) >= maxRetries;
  if (!final) return { kind: "retrying" };
  return { kind: "failed", error: errorForStatus(cb.status), finishReason: null };
}

export function outcomeOfStreamError(err: unknown): ReplyOutcome {
  if (err instanceof GeminiCallError) {
    if (err.timedOut) return { kind: "failed", error: "timeout", finishReason: null };
    if (err.status !== null)
      return { kind: "failed", error: errorForStatus(err.status), finishReason: null };
  }
  return { kind: "failed", error: "upstream_error", finishReason: null };
}

export type SettleResult =
  | { status: "complete" | "failed"; reply: MessageRow }
  /** `unknown`: no such reply (yet). The publish runs beside the batch that inserts the reply,
   * so under load a callback can arrive before that batch commits; it must be retried. */
  | { status: "pending" | "unchanged" | "unknown" };

/**
 * Applies an outcome to a pending reply with a conditional UPDATE (… WHERE status = 'pending'), so
 * a duplicate or late delivery changes nothing. Only the delivery that changed the row refunds
 * the quota (failure) or invalidates the list cache (completion).
 */
export async function settleReply(
  deps: Pick<ChatDeps, "db" | "clock" | "listCache" | "quota" | "waitUntil">,
  replyId: string,
  outcome: ReplyOutcome,
): Promise<SettleResult> {
  if (outcome.kind === "retrying") return { status: "pending" };
  const now = deps.clock.now();
  if (outcome.kind === "complete") {
    let written: Awaited<ReturnType<typeof completeReplyBatch>>;
    try {
      written = await completeReplyBatch(deps, replyId, outcome, now);
    } catch (err) {
      // The answer cannot be stored as it is (a data exception, SQLSTATE class 22). Retrying
      // would fail the same way until the deadline: the reply fails visibly now instead.
      if (!sqlStateOf(err)?.startsWith("22")) throw err;
      console.warn(
        JSON.stringify({
          level: "warn",
          msg: "reply_unstorable",
          reply_id: replyId,
          error: describeError(err),
        }),
      );
      return settleReply(deps, replyId, {
        kind: "failed",
        error: "upstream_error",
        finishReason: outcome.finishReason,
      });
    }
    const [completed, , exists] = written;
    const reply = completed[0];
    if (!reply) return { status: exists.length > 0 ? "unchanged" : "unknown" };
    await invalidateList(deps, reply.userId);
    return { status: "complete", reply };
  }
  const [failed, exists] = await deps.db.batch([
    failReply(deps.db, {
      id: replyId,
      error: outcome.error,
      finishReason: outcome.finishReason,
      now,
    }),
    selectReplyId(deps.db, replyId),
  ]);
  const reply = failed[0];
  if (!reply) return { status: exists.length > 0 ? "unchanged" : "unknown" };
  await refundPrompt(deps, reply.userId, reply.quotaDay);
  return { status: "failed", reply };
}

/** Gives a failed prompt back to the user's daily quota (best effort: logged on failure). */
export async function refundPrompt(
  deps: Pick<ChatDeps, "quota">,
  userId: string,
  quotaDay: string | null,
): Promise<void> {
  if (!quotaDay) return;
  try {
    await deps.quota.refund(userId, quotaDay);
  } catch (err) {
    console.error(
      JSON.stringify({
        level: "error",
        msg: "quota_refund_failed",
        user_id: userId,
        error: describeError(err),
      }),
    );
  }
}

function completeReplyBatch(
  deps: Pick<ChatDeps, "db">,
  replyId: string,
  outcome: Extract<ReplyOutcome, { kind: "complete" }>,
  now: Date,
) {
  return deps.db.batch([
    completeReply(deps.db, {
      id: replyId,
      content: outcome.text,
      finishReason: outcome.finishReason,
      promptTokens: outcome.promptTokens,
      replyTokens: outcome.replyTokens,
      now,
    }),
    touchChatroomForReply(deps.db, replyId, now),
    selectReplyId(deps.db, replyId),
  ]);
}
