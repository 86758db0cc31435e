import { and, asc, desc, eq, inArray, isNull, lt, or, sql } from "drizzle-orm";
import type { Database } from "../client";
import { type MessageRow, messages } from "../schema/messages";

export type { MessageRow };

/** Messages that count as conversation history: prompts and replies that completed. */
const inHistory = or(eq(messages.role, "user"), eq(messages.status, "complete"));

/** The newest `limit` messages of a chatroom the user owns, newest first. */
export function selectLatestMessages(
  db: Database,
  chatroomId: string,
  userId: string,
  limit: number,
) {
  return db
    .select()
    .from(messages)
    .where(and(eq(messages.chatroomId, chatroomId), eq(messages.userId, userId)))
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

/** History as it stood when `replyId` was created (its prompt included), newest first. */
export function selectHistoryForReply(
  db: Database,
  reply: { id: string; chatroomId: string; createdAt: Date },
  limit: number,
) {
  return db
    .select({ role: messages.role, content: messages.content })
    .from(messages)
    .where(
      and(
        eq(messages.chatroomId, reply.chatroomId),
        inHistory,
        sql`(${messages.createdAt}, ${messages.id}) < (${reply.createdAt.toISOString()}::timestamptz, ${reply.id})`,
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

/** Completes a pending reply; returns no row when it was not pending (a duplicate delivery). */
export function completeReply(
  db: Database,
  input: {
    id: string;
    content: string;
    finishReason: string | null;
    promptTokens: number | null;
    replyTokens: number | null;
    now: Date;
  },
) {
  return db
    .update(messages)
    .set({
      status: "complete",
      content: input.content,
      finishReason: input.finishReason,
      promptTokens: input.promptTokens,
      replyTokens: input.replyTokens,
      completedAt: input.now,
      error: null,
    })
    .where(pendingReply(input.id))
    .returning();
}

/** Fails a pending reply; returns no row when it was not pending (so no second refund). */
export function failReply(
  db: Database,
  input: { id: string; error: string; finishReason?: string | null; now: Date },
) {
  return db
    .update(messages)
    .set({
      status: "failed",
      error: input.error,
      finishReason: input.finishReason ?? null,
      completedAt: input.now,
    })
    .where(pendingReply(input.id))
    .returning();
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
 * Fails up to `limit` replies still pending, oldest first: any created before `cutoff`, and
 * streamed ones (job `streamJobId`) created before `streamCutoff`.
 */
export function failOverdueReplies(
  db: Database,
  o: { cutoff: Date; streamCutoff: Date; streamJobId: string; now: Date; limit: number },
) {
  const overdue = db
    .select({ id: messages.id })
    .from(messages)
    .where(
      and(
        eq(messages.role, "model"),
        eq(messages.status, "pending"),
        or(
          lt(messages.createdAt, o.cutoff),
          and(eq(messages.jobId, o.streamJobId), lt(messages.createdAt, o.streamCutoff)),
        ),
      ),
    )
    .orderBy(asc(messages.createdAt))
    .limit(o.limit);
  return db
    .update(messages)
    .set({ status: "failed", error: "timeout", completedAt: o.now })
    .where(and(inArray(messages.id, overdue), eq(messages.status, "pending")))
    .returning({ id: messages.id, userId: messages.userId, quotaDay: messages.quotaDay });
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
