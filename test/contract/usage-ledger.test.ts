import { randomUUID } from "node:crypto";
import { and, eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { addReplyToLedger, completeReply } from "../../src/db/queries/messages.ts";
import { chatrooms, messages, usageDaily, users } from "../../src/db/schema/index.ts";
import { localNeon } from "./stand-ins.ts";

// The usage ledger counts a settled reply once, in the batch that settles it, through the Neon
// stand-in (embedded PGlite, or the real PostgreSQL when LOCAL_DATABASE_URL is set).
const neon = localNeon();

async function pendingReply(): Promise<{ userId: string; replyId: string; day: string }> {
  const userId = randomUUID();
  const chatroomId = randomUUID();
  const replyId = randomUUID();
  const day = new Date().toISOString().slice(0, 10);
  await neon.db
    .insert(users)
    .values({ id: userId, mobileNumber: `+1555${Date.now()}${Math.random()}`.slice(0, 16) });
  await neon.db.insert(chatrooms).values({ id: chatroomId, userId, title: "ledger" });
  await neon.db.insert(messages).values({
    id: replyId,
    chatroomId,
    userId,
    role: "model",
    status: "pending",
    quotaDay: day,
  });
  return { userId, replyId, day };
}

const settle = (replyId: string, now: Date) =>
  neon.db.batch([
    completeReply(neon.db, {
      id: replyId,
      content: "hello",
      finishReason: "STOP",
      usage: {
        promptTokens: 3,
        replyTokens: 2,
        thoughtTokens: 0,
        cachedTokens: 0,
        totalTokens: 5,
        model: "gemini-3.8-flash",
      },
      now,
    }),
    addReplyToLedger(neon.db, replyId, now),
  ]);

describe("the usage ledger", () => {
  it("counts a reply once when a duplicate delivery settles it in the same millisecond", async () => {
    const { userId, replyId, day } = await pendingReply();
    const now = new Date();
    const [first] = await settle(replyId, now);
    const [second] = await settle(replyId, now);
    expect(first).toHaveLength(1);
    expect(second).toHaveLength(0);
    const rows = await neon.db
      .select()
      .from(usageDaily)
      .where(and(eq(usageDaily.userId, userId), eq(usageDaily.day, day)));
    expect(rows).toHaveLength(1);
    expect(rows[0]?.prompts).toBe(1);
    expect(rows[0]?.inputTokens).toBe(3);
  });
});
