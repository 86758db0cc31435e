import { eq } from "drizzle-orm";
import { purgeExpiredIdempotencyRecords } from "../../db/queries/idempotency";
import {
  failReplies,
  type MessageRow,
  selectHistoryForReply,
  selectOverdueReplies,
  selectReplyEndings,
  selectUnqueuedReplies,
  setReplyJob,
} from "../../db/queries/messages";
import { purgeProcessedWebhookEvents } from "../../db/queries/webhook-events";
import { chatrooms } from "../../db/schema/chatrooms";
import { users } from "../../db/schema/users";
import { describeError } from "../../log";
import type { UnsettledTake } from "../quota";
import type { ChatDeps } from "./deps";
import { promptRequest } from "./history";
import { replyJob, STREAM_JOB_ID } from "./replies";

/** A reply younger than this may still be mid-publish by its own request; leave it alone. */
export const REPUBLISH_GRACE_MS = 10_000;
/**
 * A streamed reply is produced by the request itself (no QStash job to retry it); one still
 * pending after this long lost its Worker (a deploy, the waitUntil limit) and will not finish.
 */
export const STREAM_REPLY_DEADLINE_MS = 5 * 60_000;
const REPUBLISH_BATCH = 100;
/** Each failed reply costs one Redis call for its refund: bounded per run like the republish. */
const FAIL_BATCH = 100;
const PURGE_BATCH = 1000;
/** Stripe redelivers for up to 3 days; event records are kept ten times that. */
export const WEBHOOK_EVENT_RETENTION_MS = 30 * 24 * 3600 * 1000;

/**
 * A take handed over by settleUnknownWrite is dropped unsettled after this long: its counter's
 * day is over, so a refund would change nothing (the counter expires with its day).
 */
export const UNSETTLED_MAX_AGE_MS = 2 * 86_400_000;
/** Takes settled per run: one existence query and up to this many refunds. */
const UNSETTLED_BATCH = 100;

export interface SweepReport {
  failed: number;
  /** Failed replies whose refund Redis refused: still owed (`quota:unsettled`), paid by a later run. */
  refunds_deferred: number;
  /** Overdue replies left pending because the refund their failure owes could not be recorded. */
  overdue_held: number;
  /** Unknown writes settled: their reply row absent, so their token given back. */
  unsettled_refunded: number;
  /** Unknown writes settled: their reply row exists, so their token stays counted. */
  unsettled_kept: number;
  /** Unknown writes past UNSETTLED_MAX_AGE_MS, dropped unsettled. */
  unsettled_dropped: number;
  republished: number;
  republish_errors: number;
  idempotency_keys_purged: number;
  webhook_events_purged: number;
}

/**
 * Nothing stays pending forever (run by the cron trigger):
 * - replies pending past REPLY_DEADLINE_SECONDS (streamed ones past STREAM_REPLY_DEADLINE_MS)
 *   fail with `timeout` and refund their prompt unless it already holds delivered text, up to
 *   FAIL_BATCH per run (`failOverdue`: the refund is owed durably before the reply fails, so
 *   Redis refusing it delays it to a later run instead of losing it);
 * - replies pending without a QStash job (the publish failed) are published again, with the
 *   history their first publish had (up to their prompt) and the reply id as deduplication id
 *   so a publish that did land is not doubled;
 * - expired Idempotency-Key records are deleted, and Stripe event records past retention;
 * - prompts whose write outcome was unknown and whose request could not look for the reply
 *   (settleUnknownWrite, `quota:unsettled`) are settled: the token is given back if the reply
 *   row does not exist (final: the clock guard, ADR 3), kept if it does; and so are the refunds
 *   earlier runs' failures still owe. A take whose check or refund fails is left for the next
 *   run, one older than UNSETTLED_MAX_AGE_MS is dropped.
 */
export async function sweepOverdueWork(deps: ChatDeps, now: Date): Promise<SweepReport> {
  const cutoff = new Date(now.getTime() - deps.config.replyDeadlineSeconds * 1000);
  const [failing, listing, purging, purgingEvents, settling] = await Promise.allSettled([
    failOverdue(deps, cutoff, now),
    selectUnqueuedReplies(
      deps.db,
      cutoff,
      new Date(now.getTime() - REPUBLISH_GRACE_MS),
      REPUBLISH_BATCH,
    ),
    purgeExpiredIdempotencyRecords(deps.db, now, PURGE_BATCH),
    purgeProcessedWebhookEvents(
      deps.db,
      new Date(now.getTime() - WEBHOOK_EVENT_RETENTION_MS),
      PURGE_BATCH,
    ),
    settleUnknownWrites(deps, now),
  ]);
  if (settling.status === "rejected") {
    // Left for the next run: REFUND_ONCE makes a repeated refund harmless.
    deps.log.warn("sweep_settle_unknown_writes_failed", { error: describeError(settling.reason) });
  }
  const settled =
    settling.status === "fulfilled" ? settling.value : { refunded: 0, kept: 0, dropped: 0 };
  const overdue =
    failing.status === "fulfilled" ? failing.value : { failed: 0, deferred: 0, held: 0 };
  // Republishing does not wait on the overdue query.
  const unqueued = listing.status === "fulfilled" ? listing.value : [];

  const republished = await Promise.allSettled(
    unqueued.map(async (reply) => {
      const [history, [owner], [room]] = await deps.db.batch([
        // The history the first publish sent: the prompt and the window before it (a
        // regenerated reply is newer than the exchanges after its prompt; they are not its).
        selectHistoryForReply(deps.db, reply, deps.config.historyMaxMessages + 1),
        deps.db.select({ tier: users.tier }).from(users).where(eq(users.id, reply.userId)).limit(1),
        deps.db
          .select({ settings: chatrooms.settings })
          .from(chatrooms)
          .where(eq(chatrooms.id, reply.chatroomId))
          .limit(1),
      ]);
      const request = promptRequest(
        deps.config,
        owner?.tier ?? "basic",
        history,
        room?.settings ?? null,
      );
      const { messageId } = await deps.queue.publish(replyJob(deps.config, reply.id, request));
      await setReplyJob(deps.db, reply.id, messageId);
    }),
  );
  const errors = republished.filter((r) => r.status === "rejected");
  for (const e of errors) {
    deps.log.warn("sweep_republish_failed", { error: describeError(e.reason) });
  }
  if (failing.status === "rejected") throw failing.reason;
  if (listing.status === "rejected") throw listing.reason;
  return {
    failed: overdue.failed,
    refunds_deferred: overdue.deferred,
    overdue_held: overdue.held,
    unsettled_refunded: settled.refunded,
    unsettled_kept: settled.kept,
    unsettled_dropped: settled.dropped,
    republished: republished.length - errors.length,
    republish_errors: errors.length,
    idempotency_keys_purged: purging.status === "fulfilled" ? purging.value : 0,
    webhook_events_purged: purgingEvents.status === "fulfilled" ? purgingEvents.value : 0,
  };
}

/**
 * Fails the overdue replies (oldest FAIL_BATCH) with `timeout`, and refunds each one's prompt
 * unless its reply holds delivered text (a stream handed to the queue: it produced output).
 * The refund is first recorded as owed (`quota:unsettled`, kind `overdue`, one HSET), then the
 * reply fails, then the refund is paid and its record forgotten: a refund Redis refuses stays
 * owed and a later run pays it (settleUnknownWrites), once per reply id (REFUND_ONCE). A reply
 * whose refund cannot be recorded (Redis down) is not failed this run; it stays pending, and
 * overdue, for the next.
 */
async function failOverdue(
  deps: ChatDeps,
  cutoff: Date,
  now: Date,
): Promise<{ failed: number; deferred: number; held: number }> {
  const overdue = await selectOverdueReplies(deps.db, {
    cutoff,
    streamCutoff: new Date(now.getTime() - STREAM_REPLY_DEADLINE_MS),
    streamJobId: STREAM_JOB_ID,
    limit: FAIL_BATCH,
  });
  // Text is never taken off a pending reply: one without any now is the only kind owed a refund.
  const owing = overdue.filter((r) => r.content === "" && r.quotaDay !== null);
  let failing = overdue;
  if (owing.length > 0) {
    try {
      await deps.quota.deferSettle(
        ...owing.map(
          (r): UnsettledTake => ({
            replyId: r.id,
            userId: r.userId,
            day: r.quotaDay as string,
            atMs: now.getTime(),
            kind: "overdue",
          }),
        ),
      );
    } catch (err) {
      deps.log.warn("sweep_refunds_unrecorded", {
        replies: owing.length,
        error: describeError(err),
      });
      failing = overdue.filter((r) => !owing.includes(r));
    }
  }
  const held = overdue.length - failing.length;
  if (failing.length === 0) return { failed: 0, deferred: 0, held };
  const failed = await failReplies(
    deps.db,
    failing.map((r) => r.id),
    "timeout",
    now,
  );
  // The ones that hold text count. The others are refunded now if Redis allows, else later.
  const refunding = failed.filter((r) => r.content === "" && r.quotaDay !== null);
  const refunds = await Promise.allSettled(
    refunding.map((r) =>
      deps.quota.refund(r.userId, r.quotaDay as string, r.id, { retryLater: false }),
    ),
  );
  const paid = refunding.filter((_, i) => refunds[i]?.status === "fulfilled").map((r) => r.id);
  const deferred = refunding.length - paid.length;
  if (deferred > 0) deps.log.warn("sweep_refunds_deferred", { replies: deferred });
  // Not forgotten (Redis failing again): the next run finds each paid and forgets it then.
  await deps.quota.forgetUnsettled(paid).catch(() => {});
  return { failed: failed.length, deferred, held };
}

/** A reply that ended without output: its prompt is given back (ADR 3). Pending is not ended. */
function endedUnanswered(
  reply: Pick<MessageRow, "status" | "content" | "replyTokens" | "thoughtTokens">,
): boolean {
  return (
    (reply.status === "failed" || reply.status === "cancelled") &&
    reply.content === "" &&
    (reply.replyTokens ?? 0) === 0 &&
    (reply.thoughtTokens ?? 0) === 0
  );
}

/**
 * Settles the takes handed over to the sweep: one Redis read, one query for what became of their
 * replies, a refund (once per reply id) for each one owed, then one HDEL of the settled.
 * - `unknown_write` (settleUnknownWrite): owed if the reply row is absent, kept if it exists;
 * - `overdue` (failOverdue): owed once the reply has ended without output, kept if it counts,
 *   left while it is pending; an absent one (its chatroom deleted) is forgotten, as a pending
 *   reply deleted with its chatroom is never refunded.
 * Throws (leaving every entry) when Redis or the database fails.
 */
async function settleUnknownWrites(
  deps: ChatDeps,
  now: Date,
): Promise<{ refunded: number; kept: number; dropped: number }> {
  const all = await deps.quota.unsettled();
  if (all.length === 0) return { refunded: 0, kept: 0, dropped: 0 };
  const oldest = now.getTime() - UNSETTLED_MAX_AGE_MS;
  const expired = all.filter((t) => t.atMs < oldest);
  const takes = all.filter((t) => t.atMs >= oldest).slice(0, UNSETTLED_BATCH);
  for (const t of expired) {
    deps.log.warn("quota_unsettled_dropped", {
      reply_id: t.replyId,
      user_id: t.userId,
      day: t.day,
    });
  }
  const found =
    takes.length === 0
      ? []
      : await selectReplyEndings(
          deps.db,
          takes.map((t) => t.replyId),
        );
  const replies = new Map(found.map((r) => [r.id, r]));
  const owed: UnsettledTake[] = [];
  const kept: UnsettledTake[] = [];
  for (const t of takes) {
    const reply = replies.get(t.replyId);
    if (t.kind !== "overdue") (reply ? kept : owed).push(t);
    else if (reply && endedUnanswered(reply)) owed.push(t);
    else if (reply?.status !== "pending") kept.push(t);
  }
  // A refund that fails leaves its entry for the next run; a refund of a past day is a no-op.
  const refunds = await Promise.allSettled(
    owed.map((t) => deps.quota.refund(t.userId, t.day, t.replyId, { retryLater: false })),
  );
  const refunded = owed.filter((_, i) => refunds[i]?.status === "fulfilled");
  await deps.quota.forgetUnsettled([...expired, ...kept, ...refunded].map((t) => t.replyId));
  return { refunded: refunded.length, kept: kept.length, dropped: expired.length };
}
