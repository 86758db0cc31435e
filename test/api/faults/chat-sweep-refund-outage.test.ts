import { afterEach, describe, expect, it } from "vitest";
import { REFUND_RETRY_SPAN_MS } from "../../../src/services/quota.ts";
import { control } from "../../support/api.ts";
import { createSession, type TestSession } from "../../support/session.ts";
import {
  getMessage,
  marker,
  newChatroom,
  quotaCounter,
  redis,
  runSweep,
  sendPrompt,
} from "../chat-support.ts";

const matches: string[] = [];

/** Switches Redis off for requests mentioning `match` (until the test ends). */
async function redisDownFor(match: string) {
  matches.push(match);
  expect((await control("redis/fault", { mode: "down", match })).status).toBe(200);
}

async function redisBack() {
  for (const match of matches.splice(0)) await control("redis/fault", { mode: "none", match });
}

afterEach(redisBack);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Far enough ahead that the sweep finds the reply past REPLY_DEADLINE_SECONDS (1 hour). */
const pastDeadline = () => Date.now() + 3_601_000;

/** A prompt whose reply never reaches QStash, so it stays pending until the sweep fails it. */
async function unansweredPrompt(me: TestSession) {
  const room = await newChatroom(me);
  const content = marker("sweep-outage");
  await control("qstash/publish-fault", { match: content, mode: "error" });
  try {
    const res = await sendPrompt(me, room.id, content);
    expect(res.status).toBe(202);
    return { roomId: room.id, replyId: res.body.reply.id as string };
  } finally {
    await control("qstash/publish-fault", { match: content, mode: "none" });
  }
}

async function unsettledEntry(replyId: string) {
  return redis("HGET", "quota:unsettled", replyId);
}

// The sweep acts on every pending reply in the database (it runs here, after the other files,
// one file at a time), and these tests move the cron's clock forward.
describe("the sweep's refund of a reply it fails, while Redis is down", () => {
  it(
    "is refunded exactly once by a later sweep, whether Redis was down before the failure or only for the refund",
    async () => {
      // Before: the sweep failed the reply, then its refund met the outage; retried for
      // REFUND_RETRY_SPAN_MS, then lost: the reply failed and the prompt stayed counted.
      const outageFirst = await createSession();
      const refundOnly = await createSession();
      const early = await unansweredPrompt(refundOnly);
      expect(await quotaCounter(refundOnly.user.id)).toBe(1);

      // Redis accepts the sweep's other commands but refuses this reply's refund.
      await redisDownFor(`quota:prompts:token:${early.replyId}`);
      await runSweep(pastDeadline());
      expect(await getMessage(refundOnly, early.roomId, early.replyId)).toMatchObject({
        status: "failed",
        error: "timeout",
      });

      // Then Redis is down for everything about the other user, before the sweep looks.
      const late = await unansweredPrompt(outageFirst);
      expect(await quotaCounter(outageFirst.user.id)).toBe(1);
      await redisDownFor(outageFirst.user.id);
      const secondSweepAt = Date.now();
      await runSweep(pastDeadline());

      // Past every retry of both sweeps' refunds, the outage still on.
      await sleep(Math.max(0, secondSweepAt + REFUND_RETRY_SPAN_MS + 2_000 - Date.now()));
      await redisBack();
      expect(await quotaCounter(refundOnly.user.id)).toBe(1);
      expect(await quotaCounter(outageFirst.user.id)).toBe(1);

      // Redis is back: the next sweep refunds both, and fails the reply it had left pending.
      await runSweep(pastDeadline());
      expect(await getMessage(outageFirst, late.roomId, late.replyId)).toMatchObject({
        status: "failed",
        error: "timeout",
      });
      expect(await quotaCounter(refundOnly.user.id)).toBe(0);
      expect(await quotaCounter(outageFirst.user.id)).toBe(0);
      expect(await unsettledEntry(early.replyId)).toBeNull();
      expect(await unsettledEntry(late.replyId)).toBeNull();

      // Once: another sweep changes nothing, and each user has the day's 5 prompts back.
      await runSweep(pastDeadline());
      expect(await quotaCounter(refundOnly.user.id)).toBe(0);
      expect(await quotaCounter(outageFirst.user.id)).toBe(0);
      for (const [me, roomId] of [
        [refundOnly, early.roomId],
        [outageFirst, late.roomId],
      ] as const) {
        const probe = await sendPrompt(me, roomId, marker("probe"));
        expect(probe.headers.get("ratelimit-remaining")).toBe("4");
      }
    },
    2 * REFUND_RETRY_SPAN_MS + 60_000,
  );
});
