import { eq } from "drizzle-orm";
import { purgeExpiredIdempotencyRecords } from "../../db/queries/idempotency";
import {
  failOverdueReplies,
  selectHistoryForReply,
  selectUnqueuedReplies,
  setReplyJob,
} from "../../db/queries/messages";
import { purgeProcessedWebhookEvents } from "../../db/queries/webhook-events";
import { chatrooms } from "../../db/schema/chatrooms";
import { users } from "../../db/schema/users";
import { describeError } from "../../log";
import type { ChatDeps } from "./deps";
import { promptRequest } from "./history";
import { refundPrompt, replyJob, STREAM_JOB_ID } from "./replies";

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

export interface SweepReport {
  failed: number;
  republished: number;
  republish_errors: number;
  idempotency_keys_purged: number;
  webhook_events_purged: number;
}

/**
 * Nothing stays pending forever (run by the cron trigger):
 * - replies pending past REPLY_DEADLINE_SECONDS (streamed ones past STREAM_REPLY_DEADLINE_MS)
 *   fail with `timeout` and refund their prompt unless it already holds delivered text, up to
 *   FAIL_BATCH per run;
 * - replies pending without a QStash job (the publish failed) are published again, with the
 *   history their first publish had (up to their prompt) and the reply id as deduplication id
 *   so a publish that did land is not doubled;
 * - expired Idempotency-Key records are deleted, and Stripe event records past retention.
 */
export async function sweepOverdueWork(deps: ChatDeps, now: Date): Promise<SweepReport> {
  const cutoff = new Date(now.getTime() - deps.config.replyDeadlineSeconds * 1000);
  const [failing, listing, purging, purgingEvents] = await Promise.allSettled([
    failOverdueReplies(deps.db, {
      cutoff,
      streamCutoff: new Date(now.getTime() - STREAM_REPLY_DEADLINE_MS),
      streamJobId: STREAM_JOB_ID,
      now,
      limit: FAIL_BATCH,
    }),
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
  ]);
  // Replies that were failed get their refunds even when the other queries did not succeed;
  // not one that holds text (a stream handed to the queue): its prompt produced output.
  const overdue = failing.status === "fulfilled" ? failing.value : [];
  await Promise.all(
    overdue
      .filter((r) => r.content === "")
      .map((r) => refundPrompt(deps, r.userId, r.quotaDay, r.id)),
  );
  // And republishing does not wait on the overdue query either.
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
    failed: overdue.length,
    republished: republished.length - errors.length,
    republish_errors: errors.length,
    idempotency_keys_purged: purging.status === "fulfilled" ? purging.value : 0,
    webhook_events_purged: purgingEvents.status === "fulfilled" ? purgingEvents.value : 0,
  };
}
