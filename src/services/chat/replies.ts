import { sqlStateOf } from "../../db/client";
import { lockChatroomOfReply, touchChatroomForReply } from "../../db/queries/chatrooms";
import {
  addReplyToLedger,
  completeReply,
  failReply,
  type MessageRow,
  type ReplyUsage,
  selectReplyId,
} from "../../db/queries/messages";

import {
  GEMINI_API_KEY_HEADER,
  type GeminiAnswer,
  GeminiCallError,
  type GeminiRequest,
  type GeminiUsage,
  type Grounding,
  generateContentUrl,
  producedOutput,
  readGenerateContentResponse,
} from "../../lib/gemini";
import { decodeCallbackBody, type QueueCallback, type QueuedRequest } from "../../lib/queue";
import { describeError } from "../../log";
import { invalidateList } from "./chatrooms";
import { background, type ChatConfig, type ChatDeps } from "./deps";
import { queueTitle, wantsAutoTitle } from "./titles";
import type { ReplyError } from "./views";

export { REPLY_ERRORS, type ReplyError } from "./views";

/** What one piece of news about a reply means for it. */
export type ReplyOutcome =
  | {
      kind: "complete";
      text: string;
      finishReason: string | null;
      usage: ReplyUsage;
      grounding?: Grounding | null;
    }
  | {
      kind: "failed";
      error: ReplyError;
      finishReason: string | null;
      /**
       * Gemini produced output for it (text the client saw, or billed tokens): the prompt
       * counts and is not refunded. Only a prompt that produced nothing is given back.
       */
      charged?: boolean;
      /** Text delivered before the failure (streaming), kept on the reply. */
      partialText?: string;
      usage?: ReplyUsage;
    }
  | { kind: "retrying" };

function replyUsage(u: GeminiUsage): ReplyUsage {
  const sum = (u.promptTokens ?? 0) + (u.replyTokens ?? 0) + (u.thoughtTokens ?? 0);
  return {
    promptTokens: u.promptTokens,
    replyTokens: u.replyTokens,
    thoughtTokens: u.thoughtTokens,
    cachedTokens: u.cachedTokens,
    totalTokens: u.totalTokens ?? (u.promptTokens === null ? null : sum),
    model: u.model,
  };
}

/** job_id of a reply produced by the streaming path (never republished by the sweep). */
export const STREAM_JOB_ID = "stream";

export const REPLY_CALLBACK_PATH = "/webhook/qstash/reply";
export const REPLY_FAILURE_CALLBACK_PATH = "/webhook/qstash/reply-failed";

/** The QStash job that asks Gemini for a reply and reports back to our callbacks. */
export function replyJob(
  config: ChatConfig,
  replyId: string,
  request: GeminiRequest,
): QueuedRequest {
  const base = config.appUrl.replace(/\/+$/, "");
  const query = `?reply_id=${encodeURIComponent(replyId)}`;
  return {
    url: generateContentUrl(config.geminiBaseUrl, request.model),
    body: request.body,
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
  if (answer.kind !== "text") {
    return {
      kind: "failed",
      error: answer.kind === "blocked" ? "safety_blocked" : "upstream_error",
      finishReason: answer.finishReason,
      charged: producedOutput(answer.usage),
      usage: replyUsage(answer.usage),
    };
  }
  // MAX_TOKENS is a complete reply: the text up to the bound, with its finish reason.
  return {
    kind: "complete",
    text: answer.text,
    finishReason: answer.finishReason,
    usage: replyUsage(answer.usage),
    ...(answer.grounding ? { grounding: answer.grounding } : {}),
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
  delivery: { failureCallback: boolean; defaultMaxRetries: number },
): ReplyOutcome {
  if (cb.status >= 200 && cb.status < 300) {
    const json = decodeCallbackBody(cb.body);
    return outcomeOfAnswer(json === undefined ? null : readGenerateContentResponse(json));
  }
  const maxRetries = cb.maxRetries ?? delivery.defaultMaxRetries;
  const final = delivery.failureCallback || (cb.retried ?? 0) >= maxRetries;
  if (!final) return { kind: "retrying" };
  return { kind: "failed", error: errorForStatus(cb.status), finishReason: null };
}

/**
 * A streamed reply that went wrong. `delivered` is the text the client already received: when
 * there is any, it is kept on the (failed) reply and the prompt counts.
 */
export function outcomeOfStreamError(err: unknown, delivered = ""): ReplyOutcome {
  let error: ReplyError = "upstream_error";
  if (err instanceof GeminiCallError) {
    if (err.timedOut) error = "timeout";
    else if (err.status !== null) error = errorForStatus(err.status);
  }
  return delivered
    ? { kind: "failed", error, finishReason: null, charged: true, partialText: delivered }
    : { kind: "failed", error, finishReason: null };
}

export type SettleResult =
  | { status: "complete" | "failed"; reply: MessageRow }
  /** `unknown`: no such reply (yet). The publish runs beside the batch that inserts the reply,
   * so under load a callback can arrive before that batch commits; it must be retried. */
  | { status: "pending" | "unchanged" | "unknown" };

/** What settling a reply touches: the row, the ledger, the quota, the gate, the list cache, titles. */
export type SettleDeps = Pick<
  ChatDeps,
  "db" | "clock" | "listCache" | "quota" | "waitUntil" | "pendingGate" | "log" | "queue" | "config"
>;

/**
 * Applies an outcome to a pending reply with a conditional UPDATE (… WHERE status = 'pending'), so
 * a duplicate or late delivery changes nothing. Only the delivery that changed the row refunds
 * the quota (failure) or invalidates the list cache (completion).
 */
export async function settleReply(
  deps: SettleDeps,
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
      deps.log.warn("reply_unstorable", { reply_id: replyId, error: describeError(err) });
      return settleReply(deps, replyId, {
        kind: "failed",
        error: "upstream_error",
        finishReason: outcome.finishReason,
      });
    }
    const [, completed, touched, exists] = written;
    const reply = completed[0];
    if (!reply) return { status: exists.length > 0 ? "unchanged" : "unknown" };
    leavePending(deps, reply.userId, replyId);
    if (wantsAutoTitle(touched[0])) background(deps, "title_queue", queueTitle(deps, reply));
    await invalidateList(deps, reply.userId);
    return { status: "complete", reply };
  }
  const [failed, exists] = await deps.db.batch([
    failReply(deps.db, {
      id: replyId,
      error: outcome.error,
      finishReason: outcome.finishReason,
      content: outcome.partialText,
      usage: outcome.usage,
      now,
    }),
    selectReplyId(deps.db, replyId),
    // A prompt that produced output counts: in the ledger, and not refunded. A reply that
    // already holds text (a stream handed to the queue stored what it delivered) counts too,
    // whatever this failure says.
    addReplyToLedger(deps.db, replyId, now, { onlyWithContent: outcome.charged !== true }),
  ]);
  const reply = failed[0];
  if (!reply) return { status: exists.length > 0 ? "unchanged" : "unknown" };
  leavePending(deps, reply.userId, replyId);
  // Owed exactly when the UPDATE marked it (no text, no output tokens): the mark is what the
  // sweep pays if Redis refuses this refund for longer than its retries.
  if (reply.refundOwedAt) await refundPrompt(deps, reply.userId, reply.quotaDay, replyId);
  if (outcome.partialText) await invalidateList(deps, reply.userId);
  return { status: "failed", reply };
}

/** A settled reply no longer counts against MAX_PENDING_REPLIES (best effort; entries expire). */
export function leavePending(
  deps: Pick<ChatDeps, "pendingGate" | "waitUntil" | "log">,
  userId: string,
  replyId: string,
) {
  deps.waitUntil(deps.pendingGate.release(userId, replyId).catch(() => {}));
}

/**
 * Gives a failed prompt back to the user's daily quota: retried for ~27 s, then logged. Its
 * reply's `refund_owed_at` mark stays, so the sweep pays it if this never got through.
 */
export async function refundPrompt(
  deps: Pick<ChatDeps, "quota" | "log">,
  userId: string,
  quotaDay: string | null,
  replyId: string,
): Promise<void> {
  if (!quotaDay) return;
  try {
    await deps.quota.refund(userId, quotaDay, replyId);
  } catch (err) {
    deps.log.error("quota_refund_failed", { user_id: userId, error: describeError(err) });
  }
}

function completeReplyBatch(
  deps: Pick<ChatDeps, "db">,
  replyId: string,
  outcome: Extract<ReplyOutcome, { kind: "complete" }>,
  now: Date,
) {
  return deps.db.batch([
    // The chatroom before the reply, in the order a chatroom DELETE takes them (no deadlock).
    lockChatroomOfReply(deps.db, replyId),
    completeReply(deps.db, {
      id: replyId,
      content: outcome.text,
      finishReason: outcome.finishReason,
      usage: outcome.usage,
      grounding: outcome.grounding ?? null,
      now,
    }),
    touchChatroomForReply(deps.db, replyId, now),
    selectReplyId(deps.db, replyId),
    addReplyToLedger(deps.db, replyId, now),
  ]);
}
