import { afterEach, describe, expect, it } from "vitest";
import { REFUND_OWED_GRACE_MS } from "../../../src/services/chat/sweep.ts";
import { REFUND_RETRY_SPAN_MS } from "../../../src/services/quota.ts";
import { call, redisFaultsByMatch, testEnv } from "../../support/api.ts";
import { createSession, type TestSession } from "../../support/session.ts";
import {
  callbackBody,
  geminiAnswer,
  getMessage,
  marker,
  newChatroom,
  postCallback,
  quotaCounter,
  refundOwedAt,
  runSweep,
  sendPrompt,
  signQStash,
  sql,
  unpublishedPrompt,
} from "../chat-support.ts";

// Every path that ends a reply without output owes its prompt back (ADR 3). The failure callback
// and the cancel used to change the reply in Postgres, then refund in Redis for ~27 s under
// waitUntil (REFUND_RETRY_SPAN_MS): a longer Redis outage lost the refund, and the user's
// quota stayed spent for a prompt Gemini never answered. Now the statement that ends the reply
// marks the refund owed (`refund_owed_at`), and the sweep pays what is still marked.

const redisFaults = redisFaultsByMatch();
/** Switches Redis off for requests mentioning `match` (until `redisBack` or the test's end). */
const redisDownFor = (match: string) => redisFaults.set(match, { mode: "down" });
const redisBack = () => redisFaults.clear();

afterEach(redisBack);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A prompt whose reply never reaches QStash: it stays pending until something ends it. */
async function pendingReply(me: TestSession, roomId: string) {
  return (await unpublishedPrompt(me, roomId, "owed")).body.reply.id as string;
}

/** Delivers a signed QStash callback for the reply (`failed`: the failure callback). */
async function deliver(replyId: string, body: string, failed = false) {
  const path = `/webhook/qstash/${failed ? "reply-failed" : "reply"}?reply_id=${replyId}`;
  const res = await postCallback(path, body, await signQStash(`${testEnv.APP_URL}${path}`, body));
  expect(res.status).toBe(200);
  return res.body as { status: string };
}

/** Gemini kept failing: QStash gave up and calls the failure callback. */
const retriesExhausted = () =>
  callbackBody("upstream down", { status: 500, retried: 3, maxRetries: 3 });

async function cancel(me: TestSession, roomId: string, replyId: string) {
  const res = await call("POST", `/chatroom/${roomId}/messages/${replyId}/cancel`, {
    token: me.token,
  });
  expect(res.status).toBe(200);
  expect(res.body.message.status).toBe("cancelled");
}

/** Past the grace: the sweep pays refunds marked owed before it. */
const pastGrace = () => Date.now() + REFUND_OWED_GRACE_MS + 5_000;

/**
 * Sweeps until the replies' marks are cleared. The sweep pays the oldest 100 marks a run, and
 * this folder's earlier files leave marks of their own (paid already: each costs a no-op), so
 * ours may take a few runs.
 */
async function sweepUntilPaid(replyIds: string[], runs = 15) {
  for (let i = 0; i < runs; i++) {
    await runSweep(pastGrace());
    const marks = await Promise.all(replyIds.map(refundOwedAt));
    if (marks.every((m) => m === null)) return;
  }
  throw new Error(`refunds still owed after ${runs} sweeps`);
}

describe("a refund owed while Redis is down longer than the refund's retries", () => {
  it(
    "is paid by the sweep once Redis is back, exactly once, for the failure callback and the cancel",
    async () => {
      const failedUser = await createSession();
      const cancelUser = await createSession();
      const failedRoom = (await newChatroom(failedUser)).id;
      const cancelRoom = (await newChatroom(cancelUser)).id;
      // Two prompts each, so a refund paid twice would show (2 → 0, not 2 → 1).
      await pendingReply(failedUser, failedRoom);
      const failedReply = await pendingReply(failedUser, failedRoom);
      await pendingReply(cancelUser, cancelRoom);
      const cancelledReply = await pendingReply(cancelUser, cancelRoom);
      expect(await quotaCounter(failedUser.user.id)).toBe(2);
      expect(await quotaCounter(cancelUser.user.id)).toBe(2);

      // Redis refuses everything about either user (their counters, their refund markers).
      await redisDownFor(failedUser.user.id);
      await redisDownFor(failedReply);
      await redisDownFor(cancelUser.user.id);
      await redisDownFor(cancelledReply);
      const endedAt = Date.now();
      expect(await deliver(failedReply, retriesExhausted(), true)).toEqual({ status: "failed" });
      await cancel(cancelUser, cancelRoom, cancelledReply);
      expect(await getMessage(failedUser, failedRoom, failedReply)).toMatchObject({
        status: "failed",
        content: "",
      });

      // Past every attempt of both refunds (in the request and under waitUntil), still down.
      await sleep(Math.max(0, endedAt + REFUND_RETRY_SPAN_MS + 3_000 - Date.now()));
      await redisBack();
      expect(await quotaCounter(failedUser.user.id)).toBe(2);
      expect(await quotaCounter(cancelUser.user.id)).toBe(2);

      // Redis is back: the sweep pays both, and clears their marks.
      await sweepUntilPaid([failedReply, cancelledReply]);
      expect(await quotaCounter(failedUser.user.id)).toBe(1);
      expect(await quotaCounter(cancelUser.user.id)).toBe(1);

      // Once: another sweep changes nothing, and a repeat of the cancel refunds nothing more.
      await runSweep(pastGrace());
      await cancel(cancelUser, cancelRoom, cancelledReply);
      expect(await quotaCounter(failedUser.user.id)).toBe(1);
      expect(await quotaCounter(cancelUser.user.id)).toBe(1);
      const probe = await sendPrompt(failedUser, failedRoom, marker("probe"));
      expect(probe.headers.get("ratelimit-remaining")).toBe("3");
    },
    REFUND_RETRY_SPAN_MS + 90_000,
  );
});

describe("the refund_owed_at mark", () => {
  it("is set when a reply ends without output, cleared once its refund is paid, and never set on a reply that counts", async () => {
    const me = await createSession();
    const roomId = (await newChatroom(me)).id;
    const [failed, complete, blocked, kept] = [
      await pendingReply(me, roomId),
      await pendingReply(me, roomId),
      await pendingReply(me, roomId),
      await pendingReply(me, roomId),
    ];
    expect(await quotaCounter(me.user.id)).toBe(4);

    // Failed without output: marked in the failing statement, and refunded at once.
    expect(await deliver(failed, retriesExhausted(), true)).toEqual({ status: "failed" });
    expect(await refundOwedAt(failed)).not.toBeNull();
    expect(await quotaCounter(me.user.id)).toBe(3);

    // Answered: counts, never marked.
    expect(await deliver(complete, callbackBody(geminiAnswer("an answer")))).toEqual({
      status: "complete",
    });
    // Blocked after Gemini produced output tokens: failed, but it counts, never marked.
    const blockedAnswer = {
      candidates: [{ finishReason: "SAFETY", index: 0 }],
      usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 7, totalTokenCount: 10 },
    };
    expect(await deliver(blocked, callbackBody(blockedAnswer))).toEqual({ status: "failed" });
    // A stream handed to the queue stored the text it had delivered: its cancel refunds nothing.
    await sql().query("update messages set content = 'delivered text' where id = $1", [kept]);
    await cancel(me, roomId, kept);
    for (const id of [complete, blocked, kept]) expect(await refundOwedAt(id)).toBeNull();
    expect(await quotaCounter(me.user.id)).toBe(3);

    // The sweep pays the failed one's refund again (REFUND_ONCE: nothing more given back) and
    // clears its mark.
    await sweepUntilPaid([failed]);
    expect(await quotaCounter(me.user.id)).toBe(3);
    for (const id of [complete, blocked, kept]) expect(await refundOwedAt(id)).toBeNull();
  }, 60_000);
});
