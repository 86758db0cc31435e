import { eq } from "drizzle-orm";
import { purgeExpiredIdempotencyRecords } from "../../db/queries/idempotency";
import {
  clearOwedRefunds,
  failOverdueReplies,
  selectExistingReplyIds,
  selectHistoryForReply,
  selectOwedRefunds,
  selectUnqueuedReplies,
  setReplyJob,
} from "../../db/queries/messages";
import { purgeProcessedWebhookEvents } from "../../db/queries/webhook-events";
import { chatrooms } from "../../db/schema/chatrooms";
import { users } from "../../db/schema/users";
import { describeError } from "../../log";
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
/**
 * A refund marked owed (`refund_owed_at`) is paid by the sweep once it is this old: past the
 * attempts of the request that ended the reply (REFUND_RETRY_SPAN_MS, ~27 s, inside the ~30 s
 * `waitUntil` grants after its response), so the sweep does not pay, in vain, refunds still being tried.
 */
export const REFUND_OWED_GRACE_MS = 60_000;
/** Owed refunds paid per run: each is one Redis call (none for a day already over). */
const OWED_BATCH = 100;
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
  /** Replies this run failed whose refund Redis refused: still marked owed, paid by a later run. */
  refunds_deferred: number;
  /** Refunds marked owed before REFUND_OWED_GRACE_MS ago (any path) paid by this run. */
  owed_refunds_paid: number;
  /** Of those, the ones Redis refused: still owed, for the next run. */
  owed_refunds_left: number;
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
 * Nothing stays pending forever, and no refund stays owed (run by the cron trigger):
 * - replies pending past REPLY_DEADLINE_SECONDS (streamed ones past STREAM_REPLY_DEADLINE_MS)
 *   fail with `timeout` and refund their prompt unless it already holds delivered text, up to
 *   FAIL_BATCH per run (`failOverdue`);
 * - refunds marked owed (`refund_owed_at`, set by whatever statement ended a reply without
 *   output: callback, cancel, stream, this sweep) more than REFUND_OWED_GRACE_MS ago are paid
 *   (REFUND_ONCE: a refund the request already paid changes nothing) and their marks cleared,
 *   up to OWED_BATCH per run (`payOwedRefunds`): a Redis outage delays a refund, never loses it;
 * - replies pending without a QStash job (the publish failed) are published again, with the
 *   history their first publish had (up to their prompt) and the reply id as deduplication id
 *   so a publish that did land is not doubled;
 * - expired Idempotency-Key records are deleted, and Stripe event records past retention;
 * - prompts whose write outcome was unknown and whose request could not look for the reply
 *   (settleUnknownWrite, `quota:unsettled`) are settled: the token is given back if the reply
 *   row does not exist (final: the clock guard, ADR 3), kept if it does. A take whose check or
 *   refund fails is left for the next run, one older than UNSETTLED_MAX_AGE_MS is dropped.
 */
export async function sweepOverdueWork(deps: ChatDeps, now: Date): Promise<SweepReport> {
  const cutoff = new Date(now.getTime() - deps.config.replyDeadlineSeconds * 1000);
  const [failing, listing, purging, purgingEvents, settling, paying] = await Promise.allSettled([
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
    payOwedRefunds(deps, new Date(now.getTime() - REFUND_OWED_GRACE_MS)),
  ]);
  if (settling.status === "rejected") {
    // Left for the next run: REFUND_ONCE makes a repeated refund harmless.
    deps.log.warn("sweep_settle_unknown_writes_failed", { error: describeError(settling.reason) });
  }
  if (paying.status === "rejected") {
    // Every mark stays for the next run.
    deps.log.warn("sweep_owed_refunds_failed", { error: describeError(paying.reason) });
  }
  const settled =
    settling.status === "fulfilled" ? settling.value : { refunded: 0, kept: 0, dropped: 0 };
  const overdue = failing.status === "fulfilled" ? failing.value : { failed: 0, deferred: 0 };
  const owed = paying.status === "fulfilled" ? paying.value : { paid: 0, left: 0 };
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
    owed_refunds_paid: owed.paid,
    owed_refunds_left: owed.left,
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
 * Fails the overdue replies (oldest FAIL_BATCH) with `timeout`; the same statement marks the
 * refund each one without output owes (a stream handed to the queue holds delivered text: it
 * counts). Then pays those refunds and clears the marks of the ones Redis accepted; a refund
 * Redis refuses keeps its mark, and `payOwedRefunds` pays it in a later run.
 */
async function failOverdue(
  deps: ChatDeps,
  cutoff: Date,
  now: Date,
): Promise<{ failed: number; deferred: number }> {
  const failed = await failOverdueReplies(deps.db, {
    cutoff,
    streamCutoff: new Date(now.getTime() - STREAM_REPLY_DEADLINE_MS),
    streamJobId: STREAM_JOB_ID,
    now,
    limit: FAIL_BATCH,
  });
  const { left } = await payRefunds(deps, failed);
  if (left > 0) deps.log.warn("sweep_refunds_deferred", { replies: left });
  return { failed: failed.length, deferred: left };
}

/**
 * Pays the refunds marked owed before `before` (oldest OWED_BATCH), whatever ended their reply,
 * and clears the marks of those Redis accepted. One query, one refund each, one update.
 */
async function payOwedRefunds(
  deps: ChatDeps,
  before: Date,
): Promise<{ paid: number; left: number }> {
  const owed = await selectOwedRefunds(deps.db, before, OWED_BATCH);
  const { paid, left } = await payRefunds(deps, owed);
  if (left > 0) deps.log.warn("sweep_owed_refunds_deferred", { replies: left });
  return { paid, left };
}

/**
 * Refunds each reply marked owed (REFUND_ONCE on its id: once, however many paths pay it; a day
 * already over changes nothing and needs no Redis), then clears the marks of the refunds that
 * answered, and only those. A mark whose clearing fails is paid again (a no-op) next run.
 */
async function payRefunds(
  deps: ChatDeps,
  replies: { id: string; userId: string; quotaDay: string | null; refundOwedAt: Date | null }[],
): Promise<{ paid: number; left: number }> {
  const owed = replies.filter((r) => r.refundOwedAt !== null && r.quotaDay !== null);
  if (owed.length === 0) return { paid: 0, left: 0 };
  const refunds = await Promise.allSettled(
    owed.map((r) => deps.quota.refund(r.userId, r.quotaDay as string, r.id, { retryLater: false })),
  );
  const paid = owed.filter((_, i) => refunds[i]?.status === "fulfilled").map((r) => r.id);
  if (paid.length > 0) {
    await clearOwedRefunds(deps.db, paid).catch((err) => {
      deps.log.warn("sweep_owed_refunds_uncleared", { error: describeError(err) });
    });
  }
  return { paid: paid.length, left: owed.length - paid.length };
}

/**
 * Settles the takes settleUnknownWrite handed over: one Redis read, one query for which of their
 * replies exist, a refund (once per reply id) for each absent one, then one HDEL of the settled.
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
      : await selectExistingReplyIds(
          deps.db,
          takes.map((t) => t.replyId),
        );
  const exists = new Set(found.map((r) => r.id));
  const absent = takes.filter((t) => !exists.has(t.replyId));
  const kept = takes.filter((t) => exists.has(t.replyId));
  // A refund that fails leaves its entry for the next run; a refund of a past day is a no-op.
  // Not handed to waitUntil (retryLater): the entry is forgotten only once the refund answered.
  const refunds = await Promise.allSettled(
    absent.map((t) => deps.quota.refund(t.userId, t.day, t.replyId, { retryLater: false })),
  );
  const refunded = absent.filter((_, i) => refunds[i]?.status === "fulfilled");
  await deps.quota.forgetUnsettled([...expired, ...kept, ...refunded].map((t) => t.replyId));
  return { refunded: refunded.length, kept: kept.length, dropped: expired.length };
}
