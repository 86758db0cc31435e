import {
  handOffStreamedReply,
  type MessageRow,
  selectMessage,
  selectReplyStatus,
} from "../../db/queries/messages";
import { type GeminiRequest, storableText } from "../../lib/gemini";
import { describeError } from "../../log";
import { cancelJob, finishCancelledStream, STREAM_CANCEL_POLL_MS } from "./control";
import type { ChatDeps } from "./deps";
import {
  outcomeOfAnswer,
  outcomeOfStreamError,
  type ReplyOutcome,
  replyJob,
  STREAM_JOB_ID,
  settleReply,
} from "./replies";
import { emitSettled, type ReplyEventSink, recordReply } from "./resume";

/** Where the SSE path writes (see ReplyEventSink: `id` is a delta's sequence number). */
export type StreamSink = ReplyEventSink;

/**
 * Produces a reply by streaming Gemini directly, then saves it exactly like a queued reply
 * (same conditional UPDATE, same settlement). Every delta also goes to the reply's log, so a
 * client can resume (GET …/stream with Last-Event-ID) or a second device attach. When the client
 * goes away (`clientGone` aborts), the generation keeps running for `streamGraceMs` so it can
 * resume; if it is not finished by then, it is handed to the queued path: the stream is aborted
 * and a QStash job for the same reply is published, so the reply is finished by the job's
 * callback rather than by a Worker invocation Cloudflare cuts ~30 s after the disconnect (ADR 5).
 */
export async function streamReply(
  deps: ChatDeps,
  job: { replyId: string; userId: string; chatroomId: string; request: GeminiRequest },
  emit: StreamSink,
  clientGone?: AbortSignal,
): Promise<void> {
  const upstream = new AbortController();
  const recorder = recordReply(deps, job.replyId);
  // The client left and the grace ran out: stop Gemini and hand the reply to the queue. A
  // timer, not a check at the next delta, so a model that has gone quiet is covered too.
  let graceOver = false;
  let graceTimer: ReturnType<typeof setTimeout> | undefined;
  const startGrace = () => {
    graceTimer = setTimeout(() => {
      graceOver = true;
      upstream.abort();
    }, deps.config.streamGraceMs);
  };
  if (clientGone?.aborted) startGrace();
  else clientGone?.addEventListener("abort", startGrace, { once: true });
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
      if (cancelled || graceOver) break;
      if (event.type === "delta") {
        if (event.text) {
          delivered += event.text;
          emit("delta", { text: event.text }, recorder.record(event.text));
        }
      } else {
        final = outcomeOfAnswer(event.answer);
      }
    }
    if (graceOver && !final && !cancelled) {
      if (await handOffToQueue(deps, job, delivered)) return;
    }
    outcome = final ?? outcomeOfAnswer(null);
    if (outcome.kind === "failed" && delivered) {
      // A late stop (SAFETY, RECITATION…) after text: the text is out, so it stays and counts.
      outcome = { ...outcome, charged: true, partialText: storableText(delivered) };
    }
  } catch (err) {
    if (graceOver && !cancelled && (await handOffToQueue(deps, job, delivered))) return;
    if (!cancelled) {
      deps.log.warn("gemini_stream_failed", { error: describeError(err) });
    }
    outcome = outcomeOfStreamError(err, storableText(delivered));
  } finally {
    // The stream is over: what is buffered is flushed below, in order, not on a timer.
    recorder.close();
    clearInterval(poll);
    clearTimeout(graceTimer);
    clientGone?.removeEventListener("abort", startGrace);
  }
  // Every delta is in the log before the row settles, so a follower that sees the row settled
  // has seen (or can read) them all.
  await recorder.flush();
  const reply = await saveRetrying(deps, () => saveStreamOutcome(deps, job, outcome, delivered));
  if (!reply) {
    emit("error", { error: { code: "not_found", message: "The chatroom was deleted." } });
    return;
  }
  // Followers (resume, other devices) read the row once they see the end marker.
  await recorder.end();
  emitSettled(emit, reply);
}

/**
 * Saves what the stream produced and answers the reply as saved (none: its chatroom is gone).
 * Safe to run again after a failure: every write in it is conditional (settle: on `pending`;
 * the kept text: on no text yet) and the ledger counts only a row its own transaction wrote.
 */
async function saveStreamOutcome(
  deps: ChatDeps,
  job: { replyId: string; userId: string; chatroomId: string },
  outcome: ReplyOutcome,
  delivered: string,
): Promise<MessageRow | undefined> {
  // A cancel that landed first makes this a no-op (the UPDATE is conditional on `pending`).
  const settled = await settleReply(deps, job.replyId, outcome);
  let reply: MessageRow | undefined =
    settled.status === "complete" || settled.status === "failed" ? settled.reply : undefined;
  if (!reply) {
    [reply] = await selectMessage(deps.db, job.chatroomId, job.userId, job.replyId);
  }
  if (reply?.status === "cancelled") reply = await finishCancelledStream(deps, reply, delivered);
  return reply;
}

/**
 * Waits between attempts to save a finished stream while the database fails (~15 s in all,
 * inside the ~30 s `waitUntil` grants after a client leaves). Soak finding (issue 19): one
 * failed read after a cancel ended the stream with an error, and the cancelled reply kept
 * neither its delivered text nor a refund, so the quota counted a prompt the books refunded.
 */
const STREAM_SAVE_RETRY_MS = [250, 750, 2_000, 4_000, 8_000];

async function saveRetrying<T>(deps: Pick<ChatDeps, "log">, save: () => Promise<T>): Promise<T> {
  for (const wait of STREAM_SAVE_RETRY_MS) {
    try {
      return await save();
    } catch (err) {
      deps.log.warn("stream_save_retry", { error: describeError(err), retry_in_ms: wait });
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
  return save();
}

/**
 * Publishes the QStash job that finishes a streamed reply whose client left (deduplicated by
 * the reply id, like every reply job) and moves the reply to it, storing the text already
 * delivered (it counts, ADR 5). False when the publish failed, or when the reply was no longer
 * a pending stream (a cancel landed between the publish and the update): the job is then
 * cancelled and the stream's own outcome saved, which for a cancelled reply is the cancel path.
 * Exported for its unit test (the race is hard to land through the API).
 */
export async function handOffToQueue(
  deps: ChatDeps,
  job: { replyId: string; request: GeminiRequest },
  delivered: string,
): Promise<boolean> {
  let messageId: string;
  try {
    ({ messageId } = await deps.queue.publish(replyJob(deps.config, job.replyId, job.request)));
  } catch (err) {
    deps.log.warn("stream_hand_off_failed", { error: describeError(err) });
    return false;
  }
  try {
    const moved = await handOffStreamedReply(deps.db, {
      id: job.replyId,
      streamJobId: STREAM_JOB_ID,
      jobId: messageId,
      delivered: storableText(delivered),
    });
    if (moved.length > 0) {
      deps.log.info("stream_handed_off", { reply_id: job.replyId });
      return true;
    }
    deps.log.info("stream_hand_off_lost", { reply_id: job.replyId });
  } catch (err) {
    deps.log.warn("stream_hand_off_failed", { error: describeError(err) });
  }
  // Nothing will wait for this job's answer: stop it (best effort; its callback changes nothing).
  await cancelJob(deps, messageId);
  return false;
}
