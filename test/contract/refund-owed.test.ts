import { randomInt, randomUUID } from "node:crypto";
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  cancelPendingReply,
  clearOwedRefunds,
  completeReply,
  failOverdueReplies,
  failReply,
  keepCancelledText,
  selectOwedRefunds,
} from "../../src/db/queries/messages.ts";
import { chatrooms, messages, users } from "../../src/db/schema/index.ts";
import { localNeon } from "./stand-ins.ts";

// ADR 3: the statement that ends a reply without output marks its refund owed
// (`refund_owed_at`), so a refund a Redis outage kept from landing is paid by the sweep. One rule
// decides it on every path: failed or cancelled, no text, no reply or thought tokens, and a
// prompt that was counted. Through the Neon stand-in (PGlite, or PostgreSQL with
// LOCAL_DATABASE_URL).
const neon = localNeon();

const DAY = new Date().toISOString().slice(0, 10);

async function pendingReply(
  over: { content?: string; quotaDay?: string | null; jobId?: string; createdAt?: Date } = {},
) {
  const userId = randomUUID();
  const chatroomId = randomUUID();
  const replyId = randomUUID();
  const mobileNumber = `+1${randomInt(1e9, 1e10)}`;
  await neon.db.insert(users).values({ id: userId, mobileNumber });
  await neon.db.insert(chatrooms).values({ id: chatroomId, userId, title: "owed" });
  await neon.db.insert(messages).values({
    id: replyId,
    chatroomId,
    userId,
    role: "model",
    status: "pending",
    content: over.content ?? "",
    quotaDay: over.quotaDay === undefined ? DAY : over.quotaDay,
    jobId: over.jobId ?? null,
    ...(over.createdAt ? { createdAt: over.createdAt } : {}),
  });
  return { userId, chatroomId, replyId };
}

async function markOf(replyId: string): Promise<Date | null> {
  const [row] = await neon.db
    .select({ at: messages.refundOwedAt })
    .from(messages)
    .where(eq(messages.id, replyId));
  return row?.at ?? null;
}

const usage = (replyTokens: number, thoughtTokens: number) => ({
  promptTokens: 3,
  replyTokens,
  thoughtTokens,
  cachedTokens: 0,
  totalTokens: 3 + replyTokens + thoughtTokens,
  model: "gemini-3.8-flash",
});

describe("a reply's refund marked owed by the statement that ends it", () => {
  it("a failure without output is marked; with text, output tokens or no counted prompt it is not", async () => {
    const now = new Date();
    const bare = await pendingReply();
    const [failed] = await failReply(neon.db, { id: bare.replyId, error: "upstream_error", now });
    expect(failed?.refundOwedAt?.getTime()).toBe(now.getTime());

    const zeroUsage = await pendingReply();
    await failReply(neon.db, {
      id: zeroUsage.replyId,
      error: "safety_blocked",
      usage: usage(0, 0),
      now,
    });
    expect(await markOf(zeroUsage.replyId)).not.toBeNull();

    const notMarked = [
      // Streamed text delivered before the failure.
      failReply(neon.db, {
        id: (await pendingReply()).replyId,
        error: "upstream_error",
        content: "partial",
        now,
      }),
      // Gemini produced output (billed) without usable text.
      failReply(neon.db, {
        id: (await pendingReply()).replyId,
        error: "safety_blocked",
        usage: usage(7, 0),
        now,
      }),
      failReply(neon.db, {
        id: (await pendingReply()).replyId,
        error: "upstream_error",
        usage: usage(0, 12),
        now,
      }),
      // A stream handed to the queue stored its delivered text; the failed callback keeps it.
      failReply(neon.db, {
        id: (await pendingReply({ content: "handed off" })).replyId,
        error: "timeout",
        now,
      }),
      // No prompt counted for it: nothing to give back.
      failReply(neon.db, {
        id: (await pendingReply({ quotaDay: null })).replyId,
        error: "timeout",
        now,
      }),
    ];
    for (const rows of await Promise.all(notMarked)) {
      expect(rows).toHaveLength(1);
      expect(rows[0]?.refundOwedAt).toBeNull();
    }
  });

  it("a duplicate delivery marks nothing, and a reply that completed is never marked", async () => {
    const now = new Date();
    const { replyId } = await pendingReply();
    await failReply(neon.db, { id: replyId, error: "upstream_error", now });
    await clearOwedRefunds(neon.db, [replyId]);
    expect(await failReply(neon.db, { id: replyId, error: "upstream_error", now })).toEqual([]);
    expect(await markOf(replyId)).toBeNull();

    const answered = await pendingReply();
    await completeReply(neon.db, {
      id: answered.replyId,
      content: "an answer",
      finishReason: "STOP",
      usage: usage(2, 0),
      now,
    });
    expect(await failReply(neon.db, { id: answered.replyId, error: "timeout", now })).toEqual([]);
    expect(await markOf(answered.replyId)).toBeNull();
  });

  it("a cancel marks a reply without text; a stream keeping its text clears the mark", async () => {
    const now = new Date();
    const queued = await pendingReply({ jobId: "msg_1" });
    const [cancelled] = await cancelPendingReply(neon.db, { id: queued.replyId, ...queued, now });
    expect(cancelled?.refundOwedAt?.getTime()).toBe(now.getTime());

    const handedOff = await pendingReply({ jobId: "msg_2", content: "delivered" });
    const [kept] = await cancelPendingReply(neon.db, { id: handedOff.replyId, ...handedOff, now });
    expect(kept?.refundOwedAt).toBeNull();

    const streamed = await pendingReply({ jobId: "stream" });
    await cancelPendingReply(neon.db, { id: streamed.replyId, ...streamed, now });
    expect(await markOf(streamed.replyId)).not.toBeNull();
    const [withText] = await keepCancelledText(neon.db, streamed.replyId, "sent before the stop");
    expect(withText?.content).toBe("sent before the stop");
    expect(withText?.refundOwedAt).toBeNull();
  });

  it("a stream whose refund the sweep already paid keeps no text: refunded, it does not count", async () => {
    const now = new Date();
    const streamed = await pendingReply({ jobId: "stream" });
    await cancelPendingReply(neon.db, { id: streamed.replyId, ...streamed, now });
    await clearOwedRefunds(neon.db, [streamed.replyId]);
    expect(await keepCancelledText(neon.db, streamed.replyId, "too late")).toEqual([]);
    const [row] = await neon.db.select().from(messages).where(eq(messages.id, streamed.replyId));
    expect(row?.content).toBe("");
  });

  it("the sweep's failure marks; owed refunds are listed once older than the bound, until cleared", async () => {
    const now = new Date();
    const longAgo = new Date(now.getTime() - 7_200_000);
    const overdue = await pendingReply({ createdAt: longAgo });
    const overdueWithText = await pendingReply({ createdAt: longAgo, content: "handed off" });
    const failed = await failOverdueReplies(neon.db, {
      cutoff: new Date(longAgo.getTime() + 1),
      streamCutoff: new Date(longAgo.getTime() + 1),
      streamJobId: "stream",
      now,
      limit: 100_000,
    });
    const byId = new Map(failed.map((r) => [r.id, r]));
    expect(byId.get(overdue.replyId)?.refundOwedAt?.getTime()).toBe(now.getTime());
    expect(byId.get(overdueWithText.replyId)?.refundOwedAt).toBeNull();

    const owedIds = async (before: Date) =>
      (await selectOwedRefunds(neon.db, before, 100_000)).map((r) => r.id);
    expect(await owedIds(now)).not.toContain(overdue.replyId);
    expect(await owedIds(new Date(now.getTime() + 1))).toContain(overdue.replyId);
    await clearOwedRefunds(neon.db, [overdue.replyId]);
    expect(await owedIds(new Date(now.getTime() + 1))).not.toContain(overdue.replyId);
  });
});
