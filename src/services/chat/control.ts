import {
  addReplyToLedger,
  cancelPendingReply,
  keepCancelledText,
  type MessageRow,
  selectMessage,
} from "../../db/queries/messages";
import { ConflictError, NotFoundError } from "../../errors";
import { storableText } from "../../lib/gemini";
import { describeError } from "../../log";
import { assertId } from "./chatrooms";
import type { ChatDeps } from "./deps";
import { leavePending, refundPrompt, STREAM_JOB_ID } from "./replies";
import { type MessageView, messageView } from "./views";

/**
 * POST /chatroom/:id/messages/:message_id/cancel. Rounds: [session check], then one db.batch
 * [conditional UPDATE … WHERE status = 'pending' ‖ the message], then for a queued reply
 * [QStash cancel ‖ quota refund]. The conditional UPDATE decides every race: a callback or a
 * stream that settles first makes this a 409 `reply_finished`; a cancel that lands first makes
 * their writes no-ops (they too update only pending replies). Cancelling again answers the same
 * 200 with the cancelled reply, and runs the steps after the batch again (all idempotent), so a
 * retry of a cancel whose answer was lost still refunds the prompt and cancels the job.
 *
 * A queued reply has no text before its callback, so its prompt is refunded, unless it is a stream
 * handed to the queue (its delivered text is on the row and kept). A streamed reply's
 * loop notices the cancel within STREAM_CANCEL_POLL_MS, stops Gemini, keeps the text already
 * sent, and refunds only if there was none (`finishCancelledStream`).
 */
export async function cancelReply(
  deps: ChatDeps,
  input: { userId: string; chatroomId: string; messageId: string; sessionLive?: Promise<void> },
): Promise<MessageView> {
  assertId(input.chatroomId);
  assertId(input.messageId, "message");
  await input.sessionLive;
  const now = deps.clock.now();
  const [cancelled, , [row]] = await deps.db.batch([
    cancelPendingReply(deps.db, {
      id: input.messageId,
      chatroomId: input.chatroomId,
      userId: input.userId,
      now,
    }),
    // A stream handed to the queue kept the text it had delivered: that prompt counts, in the
    // ledger as in the quota (the ledger reads the row only if this batch just cancelled it).
    addReplyToLedger(deps.db, input.messageId, now, { onlyWithContent: true }),
    selectMessage(deps.db, input.chatroomId, input.userId, input.messageId),
  ]);
  const done = cancelled[0];
  if (done) {
    await finishCancel(deps, done);
    return messageView(done);
  }
  if (row?.role !== "model") throw new NotFoundError("No such reply.");
  if (row.status === "cancelled") {
    // Cancelled already, perhaps by this client's earlier attempt whose batch committed but
    // whose answer was lost (a 503): the steps after the batch may never have run. Each is
    // idempotent (the refund once per reply in Redis, the job's cancel, the gate's release).
    // Only while such a retry is plausible: a loop of cancels on an old reply would otherwise
    // buy a QStash call and a Redis script per request.
    const since = now.getTime() - (row.completedAt?.getTime() ?? 0);
    if (since <= CANCEL_RETRY_WINDOW_MS) await finishCancel(deps, row);
    return messageView(row);
  }
  throw new ConflictError(`The reply is already ${row.status}.`, "reply_finished");
}

/**
 * How long after a cancel a repeat of it still redoes the steps after the batch: a client's
 * retry of a lost answer comes within seconds to a minute (its 503 backoff); later repeats only
 * read the reply.
 */
export const CANCEL_RETRY_WINDOW_MS = 5 * 60_000;

/** What follows a committed cancel, safe to run again: the gate, the QStash job, the refund. */
async function finishCancel(deps: ChatDeps, reply: MessageRow): Promise<void> {
  leavePending(deps, reply.userId, reply.id);
  // A streamed reply's own loop keeps its text or refunds it (`finishCancelledStream`).
  if (reply.jobId === STREAM_JOB_ID) return;
  // A queued reply has no text unless it is a stream handed to the queue, which stored what it
  // had delivered: that text stays on the cancelled reply and its prompt counts. The cancel's
  // UPDATE marked the refund owed exactly when there was none (and the sweep clears the mark of
  // one it paid, so a late repeat of the cancel sends nothing).
  await Promise.all([
    reply.jobId ? cancelJob(deps, reply.jobId) : undefined,
    reply.refundOwedAt ? refundPrompt(deps, reply.userId, reply.quotaDay, reply.id) : undefined,
  ]);
}

/** Best effort: a job QStash still delivers reports to a callback that changes nothing. */
export async function cancelJob(
  deps: Pick<ChatDeps, "queue" | "log">,
  jobId: string,
): Promise<void> {
  try {
    await deps.queue.cancel(jobId);
  } catch (err) {
    deps.log.warn("qstash_cancel_failed", { error: describeError(err) });
  }
}

/** How often a streaming loop checks whether its reply was cancelled. */
export const STREAM_CANCEL_POLL_MS = 400;

/**
 * After a streamed reply was cancelled: keeps the text the client was sent (the prompt counts),
 * or refunds the prompt when nothing was sent. Returns the reply as saved.
 */
export async function finishCancelledStream(
  deps: Pick<ChatDeps, "db" | "quota" | "log">,
  reply: MessageRow,
  delivered: string,
): Promise<MessageRow> {
  if (!delivered) {
    await refundPrompt(deps, reply.userId, reply.quotaDay, reply.id);
    return reply;
  }
  // Kept once (the UPDATE is conditional on no text yet), and added to the ledger in the same
  // batch: the ledger reads the row only if this transaction just wrote it.
  const text = storableText(delivered);
  const cancelledAt = reply.completedAt;
  const [kept] = cancelledAt
    ? (
        await deps.db.batch([
          keepCancelledText(deps.db, reply.id, text),
          addReplyToLedger(deps.db, reply.id, cancelledAt, { onlyWithContent: true }),
        ])
      )[0]
    : await keepCancelledText(deps.db, reply.id, text);
  return kept ?? reply;
}
