import {
  and,
  asc,
  desc,
  eq,
  inArray,
  isNotNull,
  isNull,
  lt,
  ne,
  or,
  type SQL,
  sql,
} from "drizzle-orm";
import type { Grounding } from "../../lib/gemini-models";
import type { Database } from "../client";
import { type MessageRow, messages } from "../schema/messages";
import { usageDaily } from "../schema/usage";

export type { MessageRow };

/**
 * Messages that count as conversation history: prompts, and replies that completed and were not
 * regenerated since (a superseded reply is still readable, but Gemini sees only the newest).
 */
const inHistory = or(
  eq(messages.role, "user"),
  and(eq(messages.status, "complete"), isNull(messages.supersededBy)),
);

/** The newest `limit` messages of a chatroom the user owns, newest first. */
export function selectLatestMessages(
  db: Database,
  chatroomId: string,
  userId: string,
  limit: number,
  /** Leave out replies a regeneration superseded (the chatroom view shows the newest only). */
  currentOnly = false,
) {
  return db
    .select()
    .from(messages)
    .where(
      and(
        eq(messages.chatroomId, chatroomId),
        eq(messages.userId, userId),
        currentOnly ? isNull(messages.supersededBy) : undefined,
      ),
    )
    .orderBy(desc(messages.createdAt), desc(messages.id))
    .limit(limit);
}

/** Up to `limit` messages older than message `beforeId` (which must be in the same chatroom). */
export function selectMessagesBefore(
  db: Database,
  chatroomId: string,
  userId: string,
  beforeId: string,
  limit: number,
) {
  return db
    .select()
    .from(messages)
    .where(
      and(
        eq(messages.chatroomId, chatroomId),
        eq(messages.userId, userId),
        sql`(${messages.createdAt}, ${messages.id}) < (select b.created_at, b.id from messages b where b.id = ${beforeId} and b.chatroom_id = ${chatroomId})`,
      ),
    )
    .orderBy(desc(messages.createdAt), desc(messages.id))
    .limit(limit);
}

export function selectMessage(db: Database, chatroomId: string, userId: string, id: string) {
  return db
    .select()
    .from(messages)
    .where(
      and(eq(messages.id, id), eq(messages.chatroomId, chatroomId), eq(messages.userId, userId)),
    )
    .limit(1);
}

/** The newest history messages of a chatroom the user owns, newest first. */
export function selectHistoryWindow(
  db: Database,
  chatroomId: string,
  userId: string,
  limit: number,
) {
  return db
    .select({ role: messages.role, content: messages.content })
    .from(messages)
    .where(and(eq(messages.chatroomId, chatroomId), eq(messages.userId, userId), inHistory))
    .orderBy(desc(messages.createdAt), desc(messages.id))
    .limit(limit);
}

/**
 * The history a reply answers, newest first: its prompt and what came before that prompt, as
 * its first publish sent it (a regenerated reply is created after later exchanges, which it
 * must not see). The sweep's republish reads this, like regenerate's round 1.
 */
export function selectHistoryForReply(
  db: Database,
  reply: { chatroomId: string; replyToId: string | null },
  limit: number,
) {
  return db
    .select({ role: messages.role, content: messages.content })
    .from(messages)
    .where(
      and(
        eq(messages.chatroomId, reply.chatroomId),
        inHistory,
        sql`(${messages.createdAt}, ${messages.id}) <= (select p.created_at, p.id from messages p where p.id = ${reply.replyToId} and p.chatroom_id = ${reply.chatroomId})`,
      ),
    )
    .orderBy(desc(messages.createdAt), desc(messages.id))
    .limit(limit);
}

export function insertMessages(db: Database, rows: (typeof messages.$inferInsert)[]) {
  return db.insert(messages).values(rows);
}

const pendingReply = (id: string) =>
  and(eq(messages.id, id), eq(messages.role, "model"), eq(messages.status, "pending"));

/**
 * `refund_owed_at` for a statement that ends a pending reply (fails or cancels it): `now` when
 * the reply ends without output, i.e. no text and no reply or thought tokens once the statement
 * has written `after` over it, and its prompt was counted (`quota_day`); else null. This is the
 * one rule for "the prompt is given back" (ADR 3): the Worker refunds exactly the replies its
 * ending statement marked, and the sweep pays the marks a Redis outage left owed. Columns in a
 * SET read the row as it was before the UPDATE, so what `after` writes is judged here in JS.
 */
function refundOwedOnEnding(now: Date, after: { content?: string; usage?: ReplyUsage } = {}): SQL {
  if (after.content) return sql`null`;
  if (after.usage && ((after.usage.replyTokens ?? 0) > 0 || (after.usage.thoughtTokens ?? 0) > 0)) {
    return sql`null`;
  }
  const noTokens = after.usage
    ? sql`true`
    : sql`coalesce(${messages.replyTokens}, 0) = 0 and coalesce(${messages.thoughtTokens}, 0) = 0`;
  return sql`case when ${messages.content} = '' and ${noTokens} and ${messages.quotaDay} is not null then ${now.toISOString()}::timestamptz end`;
}

/** Token usage of a reply as stored (null: Gemini did not report it). */
export interface ReplyUsage {
  promptTokens: number | null;
  replyTokens: number | null;
  thoughtTokens: number | null;
  cachedTokens: number | null;
  totalTokens: number | null;
  model: string | null;
}

/** Completes a pending reply; returns no row when it was not pending (a duplicate delivery). */
export function completeReply(
  db: Database,
  input: {
    id: string;
    content: string;
    finishReason: string | null;
    usage: ReplyUsage;
    grounding?: Grounding | null;
    now: Date;
  },
) {
  return db
    .update(messages)
    .set({
      status: "complete",
      content: input.content,
      finishReason: input.finishReason,
      grounding: input.grounding ?? null,
      ...input.usage,
      completedAt: input.now,
      error: null,
    })
    .where(pendingReply(input.id))
    .returning();
}

/**
 * Fails a pending reply; returns no row when it was not pending (so no second refund). A reply
 * that streamed text before failing keeps that text (`content`) and its usage. One that ends
 * without output is marked as owing its refund in the same statement (`refundOwedAt`).
 */
export function failReply(
  db: Database,
  input: {
    id: string;
    error: string;
    finishReason?: string | null;
    content?: string;
    usage?: ReplyUsage;
    now: Date;
  },
) {
  return db
    .update(messages)
    .set({
      status: "failed",
      error: input.error,
      finishReason: input.finishReason ?? null,
      ...(input.content ? { content: input.content } : {}),
      ...(input.usage ?? {}),
      completedAt: input.now,
      refundOwedAt: refundOwedOnEnding(input.now, input),
    })
    .where(pendingReply(input.id))
    .returning();
}

/**
 * Rows this transaction wrote carry its id in `xmin` (the low 32 bits of `pg_current_xact_id()`).
 * Unlike a timestamp, no other transaction can match it: two deliveries settling in the same
 * millisecond once both matched `completed_at = now`, and the soak caught the ledger one too high.
 */
const WRITTEN_BY_THIS_TRANSACTION = sql`${messages}.xmin::text = (pg_current_xact_id()::text::bigint % 4294967296)::text`;

/**
 * Adds a settled reply to its owner's daily usage ledger. Runs in the batch that settles the
 * reply, after the conditional UPDATE: it reads the row only if that UPDATE, in this same
 * transaction, just wrote it, so a duplicate delivery, which changes nothing, adds nothing.
 */
export function addReplyToLedger(
  db: Database,
  replyId: string,
  now: Date,
  o: { onlyWithContent?: boolean } = {},
) {
  const day = sql<string>`coalesce(${messages.quotaDay}, to_char(${messages.completedAt} at time zone 'UTC', 'YYYY-MM-DD'))`;
  return db
    .insert(usageDaily)
    .select(
      db
        .select({
          userId: messages.userId,
          day: day.as("day"),
          prompts: sql<number>`1`.as("prompts"),
          inputTokens: sql<number>`coalesce(${messages.promptTokens}, 0)`.as("input_tokens"),
          outputTokens: sql<number>`coalesce(${messages.replyTokens}, 0)`.as("output_tokens"),
          thoughtTokens: sql<number>`coalesce(${messages.thoughtTokens}, 0)`.as("thought_tokens"),
          cachedTokens: sql<number>`coalesce(${messages.cachedTokens}, 0)`.as("cached_tokens"),
        })
        .from(messages)
        .where(
          and(
            eq(messages.id, replyId),
            eq(messages.role, "model"),
            eq(messages.completedAt, now),
            WRITTEN_BY_THIS_TRANSACTION,
            // A failure without an output of its own still counts if text was already delivered.
            o.onlyWithContent ? ne(messages.content, "") : undefined,
          ),
        ),
    )
    .onConflictDoUpdate({
      target: [usageDaily.userId, usageDaily.day],
      set: {
        prompts: sql`${usageDaily.prompts} + excluded.prompts`,
        inputTokens: sql`${usageDaily.inputTokens} + excluded.input_tokens`,
        outputTokens: sql`${usageDaily.outputTokens} + excluded.output_tokens`,
        thoughtTokens: sql`${usageDaily.thoughtTokens} + excluded.thought_tokens`,
        cachedTokens: sql`${usageDaily.cachedTokens} + excluded.cached_tokens`,
      },
    });
}

/** A user's pending replies (at most `limit` ids), for MAX_PENDING_REPLIES. */
export function selectPendingReplyIds(db: Database, userId: string, limit: number) {
  return db
    .select({ id: messages.id })
    .from(messages)
    .where(
      and(eq(messages.userId, userId), eq(messages.status, "pending"), eq(messages.role, "model")),
    )
    .limit(limit);
}

/** Whether a reply row exists at all (read in the same batch as a conditional update). */
export function selectReplyId(db: Database, id: string) {
  return db
    .select({ id: messages.id })
    .from(messages)
    .where(and(eq(messages.id, id), eq(messages.role, "model")))
    .limit(1);
}

/**
 * Records the QStash job of a reply (only while it has none). The callback may already have
 * settled the reply (the publish and this write race), so the status is not part of the match:
 * the job id still tells which QStash message produced it.
 */
export function setReplyJob(db: Database, id: string, jobId: string) {
  return db
    .update(messages)
    .set({ jobId })
    .where(and(eq(messages.id, id), eq(messages.role, "model"), isNull(messages.jobId)));
}

/**
 * Hands a streamed reply, still pending, to a QStash job (its client went away): from then on it
 * is a queued reply, settled by the job's callback and swept on the queued deadline. `delivered`
 * (the text already streamed) is stored on the row, so a cancel, a failed callback or the sweep
 * sees that the prompt produced output and does not refund it. Returns the row when it matched
 * (none when a cancel, or anything else, settled it first).
 */
export function handOffStreamedReply(
  db: Database,
  input: { id: string; streamJobId: string; jobId: string; delivered: string },
) {
  return db
    .update(messages)
    .set({ jobId: input.jobId, content: input.delivered })
    .where(and(pendingReply(input.id), eq(messages.jobId, input.streamJobId)))
    .returning({ id: messages.id });
}

/**
 * Fails up to `limit` replies still pending, oldest first: any created before `cutoff`, and
 * streamed ones (job `streamJobId`) created before `streamCutoff`. Each one that ends without
 * output is marked as owing its refund in the same statement (`refundOwedAt`).
 */
export function failOverdueReplies(
  db: Database,
  window: { cutoff: Date; streamCutoff: Date; streamJobId: string; now: Date; limit: number },
) {
  const overdue = db
    .select({ id: messages.id })
    .from(messages)
    .where(
      and(
        eq(messages.role, "model"),
        eq(messages.status, "pending"),
        or(
          lt(messages.createdAt, window.cutoff),
          and(eq(messages.jobId, window.streamJobId), lt(messages.createdAt, window.streamCutoff)),
        ),
      ),
    )
    .orderBy(asc(messages.createdAt))
    .limit(window.limit);
  return db
    .update(messages)
    .set({
      status: "failed",
      error: "timeout",
      completedAt: window.now,
      refundOwedAt: refundOwedOnEnding(window.now),
    })
    .where(and(inArray(messages.id, overdue), eq(messages.status, "pending")))
    .returning(owedRefund);
}

/** What paying a reply's refund needs. */
const owedRefund = {
  id: messages.id,
  userId: messages.userId,
  quotaDay: messages.quotaDay,
  refundOwedAt: messages.refundOwedAt,
};

/** Up to `limit` replies whose refund was owed before `before`, oldest first (the sweep pays them). */
export function selectOwedRefunds(db: Database, before: Date, limit: number) {
  return db
    .select(owedRefund)
    .from(messages)
    .where(and(isNotNull(messages.refundOwedAt), lt(messages.refundOwedAt, before)))
    .orderBy(asc(messages.refundOwedAt))
    .limit(limit);
}

/** Clears the marks of the refunds `ids`, paid: only ever after their refund answered. */
export function clearOwedRefunds(db: Database, ids: string[]) {
  return db
    .update(messages)
    .set({ refundOwedAt: null })
    .where(and(inArray(messages.id, ids), isNotNull(messages.refundOwedAt)));
}

/** Which of the replies `ids` exist (a prompt's write of unknown outcome is settled by this). */
export function selectExistingReplyIds(db: Database, ids: string[]) {
  return db.select({ id: messages.id }).from(messages).where(inArray(messages.id, ids));
}

/** Pending replies that were never handed to QStash, created in [from, to). */
export function selectUnqueuedReplies(db: Database, from: Date, to: Date, limit: number) {
  return db
    .select()
    .from(messages)
    .where(
      and(
        eq(messages.role, "model"),
        eq(messages.status, "pending"),
        isNull(messages.jobId),
        sql`${messages.createdAt} >= ${from.toISOString()}::timestamptz`,
        lt(messages.createdAt, to),
      ),
    )
    .orderBy(asc(messages.createdAt))
    .limit(limit);
}

/**
 * Cancels a pending model reply of `userId` in `chatroomId` (none when it is not pending). One
 * without text is marked as owing its refund in the same statement; a streamed one whose loop
 * then keeps the text it had sent loses the mark again (`keepCancelledText`).
 */
export function cancelPendingReply(
  db: Database,
  input: { id: string; chatroomId: string; userId: string; now: Date },
) {
  return db
    .update(messages)
    .set({
      status: "cancelled",
      completedAt: input.now,
      refundOwedAt: refundOwedOnEnding(input.now),
    })
    .where(
      and(
        pendingReply(input.id),
        eq(messages.chatroomId, input.chatroomId),
        eq(messages.userId, input.userId),
      ),
    )
    .returning();
}

/** The status of a reply (the streaming loop's cancel flag). */
export function selectReplyStatus(db: Database, id: string) {
  return db.select({ status: messages.status }).from(messages).where(eq(messages.id, id)).limit(1);
}

/**
 * Keeps the text streamed before a cancel on the cancelled reply (once), which then counts: the
 * refund its cancel marked as owed is no longer owed. Not once the sweep has paid that refund
 * and cleared the mark (the stream's save delayed past REFUND_OWED_GRACE_MS by a failing
 * database): the reply then stays without text, as refunded, rather than count and be refunded.
 */
export function keepCancelledText(db: Database, id: string, content: string) {
  return db
    .update(messages)
    .set({ content, refundOwedAt: null })
    .where(
      and(
        eq(messages.id, id),
        eq(messages.status, "cancelled"),
        eq(messages.content, ""),
        or(isNotNull(messages.refundOwedAt), isNull(messages.quotaDay)),
      ),
    )
    .returning();
}

/**
 * The history a regeneration of `replyId` answers: its prompt and what came before it, newest
 * first (empty when `replyId` is not a reply of `userId` in `chatroomId`).
 */
export function selectHistoryBeforeReply(
  db: Database,
  chatroomId: string,
  userId: string,
  replyId: string,
  limit: number,
) {
  return db
    .select({ role: messages.role, content: messages.content })
    .from(messages)
    .where(
      and(
        eq(messages.chatroomId, chatroomId),
        eq(messages.userId, userId),
        inHistory,
        sql`(${messages.createdAt}, ${messages.id}) <= (select p.created_at, p.id from messages p where p.id = (select r.reply_to_id from messages r where r.id = ${replyId} and r.chatroom_id = ${chatroomId} and r.user_id = ${userId}))`,
      ),
    )
    .orderBy(desc(messages.createdAt), desc(messages.id))
    .limit(limit);
}

/**
 * Row-locks the prompt `promptId` until the transaction ends, so regenerates of one prompt
 * commit one after another. Under READ COMMITTED an UPDATE sees only what was committed when it
 * started: two regenerates in parallel each superseded the replies they could see and left both
 * new replies current (soak review). Taken before `supersedeReplies` in the same batch, a
 * parallel regenerate waits here for the first to end, and its supersede, a later statement with
 * a fresh snapshot, sees the first's reply. The prompt row and not the current reply: when the
 * holder commits, a reply it superseded no longer matches, so every waiter would go on at once.
 */
export function lockPrompt(db: Database, promptId: string) {
  return db
    .select({ id: messages.id })
    .from(messages)
    .where(and(eq(messages.id, promptId), eq(messages.role, "user")))
    .for("update");
}

/** Points every other reply to `promptId` at its newest successor `replyId`. */
export function supersedeReplies(db: Database, promptId: string, replyId: string) {
  return db
    .update(messages)
    .set({ supersededBy: replyId })
    .where(
      and(
        eq(messages.replyToId, promptId),
        eq(messages.role, "model"),
        sql`${messages.id} <> ${replyId}`,
      ),
    );
}
