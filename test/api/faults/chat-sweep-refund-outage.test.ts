import { afterEach, describe, expect, it } from "vitest";
import { REFUND_OWED_GRACE_MS } from "../../../src/services/chat/sweep.ts";
import { REFUND_RETRY_SPAN_MS } from "../../../src/services/quota.ts";
import { redisFaultsByMatch } from "../../support/api.ts";
import { createSession, type TestSession } from "../../support/session.ts";
import {
  getMessage,
  marker,
  newChatroom,
  quotaCounter,
  refundOwedAt,
  runSweep,
  sendPrompt,
  unpublishedPrompt,
} from "../chat-support.ts";

const redisFaults = redisFaultsByMatch();
/** Switches Redis off for requests mentioning `match` (until `redisBack` or the test's end). */
const redisDownFor = (match: string) => redisFaults.set(match, { mode: "down" });
const redisBack = () => redisFaults.clear();

afterEach(redisBack);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Far enough ahead that the sweep finds the reply past REPLY_DEADLINE_SECONDS (1 hour). */
const pastDeadline = () => Date.now() + 3_601_000;

/** A prompt whose reply never reaches QStash, so it stays pending until the sweep fails it. */
async function unansweredPrompt(me: TestSession) {
  const room = await newChatroom(me);
  const res = await unpublishedPrompt(me, room.id, "sweep-outage");
  return { roomId: room.id, replyId: res.body.reply.id as string };
}

// The sweep acts on every pending reply in the database (it runs here, after the other files,
// one file at a time), and these tests move the cron's clock forward.
describe("the sweep's refund of a reply it fails, while Redis is down", () => {
  it(
    "is refunded exactly once by a later sweep, whether Redis was down before the failure or only for the refund",
    async () => {
      // Before: the sweep failed the reply, then its refund met the outage; retried for
      // REFUND_RETRY_SPAN_MS, then lost: the reply failed and the prompt stayed counted. Now the
      // failing statement marks the refund owed (refund_owed_at) and a later sweep pays it.
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

      // Then Redis is down for everything about the other user, before the sweep looks: the
      // reply fails all the same (its refund is marked owed in the failing statement).
      const late = await unansweredPrompt(outageFirst);
      expect(await quotaCounter(outageFirst.user.id)).toBe(1);
      await redisDownFor(outageFirst.user.id);
      const secondSweepAt = Date.now();
      await runSweep(pastDeadline());
      expect(await getMessage(outageFirst, late.roomId, late.replyId)).toMatchObject({
        status: "failed",
        error: "timeout",
      });

      // Past every retry of both sweeps' refunds, the outage still on.
      await sleep(Math.max(0, secondSweepAt + REFUND_RETRY_SPAN_MS + 2_000 - Date.now()));
      await redisBack();
      expect(await quotaCounter(refundOnly.user.id)).toBe(1);
      expect(await quotaCounter(outageFirst.user.id)).toBe(1);
      expect(await refundOwedAt(early.replyId)).not.toBeNull();
      expect(await refundOwedAt(late.replyId)).not.toBeNull();

      // Redis is back: once the marks are REFUND_OWED_GRACE_MS old, a sweep refunds both (the
      // oldest 100 marks a run: earlier files' marks may come first) and clears their marks.
      const laterSweep = () => runSweep(pastDeadline() + REFUND_OWED_GRACE_MS);
      for (let run = 0; run < 15; run++) {
        await laterSweep();
        if (
          (await refundOwedAt(early.replyId)) === null &&
          (await refundOwedAt(late.replyId)) === null
        )
          break;
      }
      expect(await quotaCounter(refundOnly.user.id)).toBe(0);
      expect(await quotaCounter(outageFirst.user.id)).toBe(0);
      expect(await refundOwedAt(early.replyId)).toBeNull();
      expect(await refundOwedAt(late.replyId)).toBeNull();

      // Once: another sweep changes nothing, and each user has the day's 5 prompts back.
      await laterSweep();
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
