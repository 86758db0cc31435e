import {
  handOffStreamedReply,
  type MessageRow,
  selectMessage,
  selectReplyStatus,
} from "../../db/queries/messages";
import { type GeminiRequest, storableText } from "../../lib/gemini";
import { describeError } from "../../log";
import { finishCancelledStream, STREAM_CANCEL_POLL_MS } from "./control";
import type { ChatDeps } from "./deps";
import {
  outcomeOfAnswer,
  outcomeOfStreamError,
  type ReplyOutcome,
  replyJob,
  STREAM_JOB_ID,
  settleReply,
} from "./replies";
import { messageView } from "./views";

/** Where the SSE path writes; a write to a client that went away must not throw. */
export type StreamSink = (event: "delta" | "done" | "error" | "cancelled", data: unknown) => void;

/**
 * Produces a reply by streaming Gemini directly, then saves it exactly like a queued reply
 * (same conditional UPDATE, same settlement). When the client goes away (`clientGone` aborts)
 * before the answer is complete, the unfinished generation is handed to the queued path: the
 * stream is aborted and a QStash job for the same reply is published, so the reply is finished
 * and saved by the job's callback rather than by a Worker invocation Cloudflare may cut ~30 s
 * after the disconnect (ADR 5).
 */
export async function streamReply(
  deps: ChatDeps,
  job: { replyId: string; userId: string; chatroomId: string; request: GeminiRequest },
  emit: StreamSink,
  clientGone?: AbortSignal,
): Promise<void> {
  const upstream = new AbortController();
  const stop = () => upstream.abort();
  clientGone?.addEventListener("abort", stop);
  // The cancel flag: POST …/cancel marks the reply cancelled; this loop stops Gemini when it
  // sees that (checked every STREAM_CANCEL_POLL_MS, so within half a second).
  let cancelled = false;
  let checking = false;
  const poll = setInterval(() => {
    if (checking || cancelled) return;
    checking = true;
    selectReplyStatus(deps.db, job.replyId)
      .then(([row]) => {
        if (row?.status === "cancelled") {
          cancelled = true;
          upstream.abort();
        }
      })
      .catch(() => {})
      .finally(() => {
        checking = false;
      });
  }, STREAM_CANCEL_POLL_MS);
  let outcome: ReplyOutcome;
  // What the client has been sent: kept (and counted) even if the stream then fails.
  let delivered = "";
  try {
    let final: ReplyOutcome | null = null;
    for await (const event of deps.gemini.stream(
      job.request.body,
      upstream.signal,
      job.request.model,
    )) {
      if (cancelled) break;
      if (event.type === "delta") {
        if (event.text) {
          delivered += event.text;
          emit("delta", { text: event.text });
        }
      } else {
        final = outcomeOfAnswer(event.answer);
      }
      if (clientGone?.aborted && !final) break;
    }
    if (clientGone?.aborted && !final && !cancelled) {
      if (await handOffToQueue(deps, job)) return;
    }
    outcome = final ?? outcomeOfAnswer(null);
    if (outcome.kind === "failed" && delivered) {
      // A late stop (SAFETY, RECITATION…) after text: the text is out, so it stays and counts.
      outcome = { ...outcome, charged: true, partialText: storableText(delivered) };
    }
  } catch (err) {
    if (clientGone?.aborted && !cancelled && (await handOffToQueue(deps, job))) return;
    if (!cancelled) {
      deps.log.warn("gemini_stream_failed", { error: describeError(err) });
    }
    outcome = outcomeOfStreamError(err, storableText(delivered));
  } finally {
    clearInterval(poll);
    clientGone?.removeEventListener("abort", stop);
  }
  // A cancel that landed first makes this a no-op (the UPDATE is conditional on `pending`).
  const settled = await settleReply(deps, job.replyId, outcome);
  let reply: MessageRow | undefined =
    settled.status === "complete" || settled.status === "failed" ? settled.reply : undefined;
  if (!reply) {
    [reply] = await selectMessage(deps.db, job.chatroomId, job.userId, job.replyId);
  }
  if (!reply) {
    emit("error", { error: { code: "not_found", message: "The chatroom was deleted." } });
    return;
  }
  if (reply.status === "cancelled") {
    reply = await finishCancelledStream(deps, reply, delivered);
    emit("cancelled", { reply: messageView(reply) });
    return;
  }
  const view = messageView(reply);
  if (reply.status === "complete") emit("done", { reply: view });
  else {
    emit("error", {
      error: { code: reply.error ?? "upstream_error", message: "The reply failed." },
      reply: view,
    });
  }
}

/**
 * Publishes the QStash job that finishes a streamed reply whose client left (deduplicated by
 * the reply id, like every reply job). False when the publish failed: the stream's own outcome
 * is then saved instead.
 */
async function handOffToQueue(
  deps: ChatDeps,
  job: { replyId: string; request: GeminiRequest },
): Promise<boolean> {
  try {
    const { messageId } = await deps.queue.publish(replyJob(deps.config, job.replyId, job.request));
    await handOffStreamedReply(deps.db, job.replyId, STREAM_JOB_ID, messageId);
    deps.log.info("stream_handed_off", { reply_id: job.replyId });
    return true;
  } catch (err) {
    deps.log.warn("stream_hand_off_failed", { error: describeError(err) });
    return false;
  }
}
