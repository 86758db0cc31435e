import { afterEach, describe, expect, it } from "vitest";
import { QUERY_TIMEOUT_MS } from "../../../src/db/client.ts";
import { IN_PROGRESS_RETRY_AFTER_MAX_SECONDS } from "../../../src/services/chat/idempotency.ts";
import { UNKNOWN_WRITE_SETTLE_MS } from "../../../src/services/chat/send.ts";
import { call, control, waitFor } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { marker, newChatroom, promptRows, quotaCounter, sendPrompt } from "../chat-support.ts";

const ROUND_ONE_DELAY_MS = 1_000;
/** Round 2's batch runs this long after it was sent: past the Worker's deadline, then commits. */
const LATE_COMMIT_MS = QUERY_TIMEOUT_MS + 2_000;
/** Past the batch's commit deadline, and past the point where the Worker settles the write. */
const HELD_PAST_DEADLINE_MS = UNKNOWN_WRITE_SETTLE_MS + 5_000;

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Sends a prompt whose round-2 batch the database runs `lateMs` after it was sent. */
async function sendWithLateWrite(
  me: Awaited<ReturnType<typeof createSession>>,
  chatroomId: string,
  content: string,
  lateMs: number,
  headers: Record<string, string> = {},
) {
  await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
  const sent = sendPrompt(me, chatroomId, content, headers);
  await sleep(ROUND_ONE_DELAY_MS / 2);
  await control("neon/fault", { mode: "slow", ms: lateMs });
  const res = await sent;
  await control("neon/fault", { mode: "none" });
  return res;
}

describe("a prompt whose write commits after the Worker's database deadline", () => {
  it(
    "is counted exactly once, with or without an Idempotency-Key",
    async () => {
      const me = await createSession();
      const room = await newChatroom(me);
      const key = marker("late-commit-key");
      const keyed = marker("late-keyed");
      const plain = marker("late-plain");

      // Every /sql request waits ROUND_ONE_DELAY_MS while round 1 runs; once round 1's batch is
      // in, the delay becomes LATE_COMMIT_MS, which only round 2's batch meets (the local Neon
      // runs a statement after its delay even when the client has given up on it).
      await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
      const sent = Promise.all([
        sendPrompt(me, room.id, keyed, { "Idempotency-Key": key }),
        sendPrompt(me, room.id, plain),
      ]);
      await sleep(ROUND_ONE_DELAY_MS / 2);
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const [first, second] = await sent;
      const failedAt = Date.now();
      await control("neon/fault", { mode: "none" });
      expect([first.status, second.status]).toEqual([503, 503]);
      expect(first.body.error.code).toBe("dependency_unavailable");

      // Both batches commit after the 503s.
      await waitFor(async () => (await promptRows(room.id)) === 2, 10_000, 200);

      const replay = await sendPrompt(me, room.id, keyed, { "Idempotency-Key": key });
      expect(replay.status).toBe(202);
      expect(replay.headers.get("idempotent-replayed")).toBe("true");
      expect(replay.body.message.content).toBe(keyed);

      // Past the point where the Worker decides whether to give the tokens back.
      await sleep(Math.max(0, failedAt + UNKNOWN_WRITE_SETTLE_MS + 3_000 - Date.now()));
      const status = await call("GET", "/subscription/status", { token: me.token });
      expect(status.body.usage.used_today).toBe(2);
      expect(await quotaCounter(me.user.id)).toBe(2);
      expect(await promptRows(room.id)).toBe(2);

      // Exactly 5 prompts for a Basic user: 3 more, then a 429.
      for (let i = 0; i < 3; i++) {
        expect((await sendPrompt(me, room.id, marker(`after-${i}`))).status).toBe(202);
      }
      const sixth = await sendPrompt(me, room.id, marker("sixth"));
      expect(sixth.status).toBe(429);
      expect(sixth.body.error.details.used).toBe(5);
      expect(await promptRows(room.id)).toBe(5);
      const after = await call("GET", "/subscription/status", { token: me.token });
      expect(after.body.usage.used_today).toBe(5);
    },
    QUERY_TIMEOUT_MS + UNKNOWN_WRITE_SETTLE_MS + 40_000,
  );

  it(
    "gives the token back once the write is known not to have committed",
    async () => {
      const me = await createSession();
      const room = await newChatroom(me);
      await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
      const sent = sendPrompt(me, room.id, marker("late-rolled-back"), {
        "Idempotency-Key": marker("late-rolled-back-key"),
      });
      await sleep(ROUND_ONE_DELAY_MS / 2);
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      // The control query is not delayed: when round 2's batch finally runs, its chatroom is
      // gone, so it rolls back (the Worker, past its deadline, never hears of it).
      await sleep(ROUND_ONE_DELAY_MS);
      const deleted = await control("neon/query", {
        sql: "delete from chatrooms where id = $1",
        params: [room.id],
      });
      expect(deleted.status).toBe(200);
      const res = await sent;
      const failedAt = Date.now();
      await control("neon/fault", { mode: "none" });
      expect(res.status).toBe(503);
      // Held while the outcome is unknown...
      const held = await call("GET", "/subscription/status", { token: me.token });
      expect(held.body.usage.used_today).toBe(1);

      // ...and given back once the reply is known absent.
      await sleep(Math.max(0, failedAt + UNKNOWN_WRITE_SETTLE_MS + 3_000 - Date.now()));
      const status = await call("GET", "/subscription/status", { token: me.token });
      expect(status.body.usage.used_today).toBe(0);
      expect(await quotaCounter(me.user.id)).toBe(0);
    },
    QUERY_TIMEOUT_MS + UNKNOWN_WRITE_SETTLE_MS + 40_000,
  );

  it(
    "rolls back a batch the database holds past its commit deadline, so the settle read is final",
    async () => {
      const me = await createSession();
      const room = await newChatroom(me);
      // The database runs round 2's batch only after the Worker has answered 503 and has looked
      // for its reply (found none, so gave the token back): committing then would be a prompt
      // counted nowhere, answered by Gemini for free.
      const res = await sendWithLateWrite(me, room.id, marker("held-past"), HELD_PAST_DEADLINE_MS);
      const failedAt = Date.now();
      expect(res.status).toBe(503);
      // The batch has run (it was sent before the 503, QUERY_TIMEOUT_MS earlier).
      await sleep(
        Math.max(0, failedAt - QUERY_TIMEOUT_MS + HELD_PAST_DEADLINE_MS + 2_000 - Date.now()),
      );
      expect(await promptRows(room.id)).toBe(0);
      expect(await quotaCounter(me.user.id)).toBe(0);
      const status = await call("GET", "/subscription/status", { token: me.token });
      expect(status.body.usage.used_today).toBe(0);
    },
    HELD_PAST_DEADLINE_MS + 40_000,
  );

  it(
    "tells a resend to retry while the first attempt's write is unknown, then replays it with the right RateLimit-Remaining",
    async () => {
      const me = await createSession();
      const room = await newChatroom(me);
      for (let i = 0; i < 3; i++) {
        expect((await sendPrompt(me, room.id, marker(`before-${i}`))).status).toBe(202);
      }
      const key = marker("resend-key");
      const content = marker("resent");
      const first = await sendWithLateWrite(me, room.id, content, LATE_COMMIT_MS, {
        "Idempotency-Key": key,
      });
      const failedAt = Date.now();
      expect(first.status).toBe(503);

      // The client resends at once. Its first attempt still holds a token, and its batch has not
      // run yet: going ahead would count the prompt twice (RateLimit-Remaining 0 of the 1 left,
      // as in the 200-user load run; 429 had it been the day's last prompt).
      const early = await sendPrompt(me, room.id, content, { "Idempotency-Key": key });
      expect(early.status, early.text).toBe(409);
      expect(early.body.error.code).toBe("idempotency_in_progress");
      // The hold lasts past the settle (~30 s); the 409 names the capped wait instead.
      expect(early.headers.get("retry-after")).toBe(String(IN_PROGRESS_RETRY_AFTER_MAX_SECONDS));

      // Retrying after Retry-After, as the 409 asks: the first attempt's write commits, and is
      // replayed.
      let again = early;
      while (again.status === 409 && Date.now() < failedAt + UNKNOWN_WRITE_SETTLE_MS + 10_000) {
        await sleep(Number(again.headers.get("retry-after")) * 1_000);
        again = await sendPrompt(me, room.id, content, { "Idempotency-Key": key });
      }
      expect(again.status, again.text).toBe(202);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(again.headers.get("ratelimit-remaining")).toBe("1");
      expect(await promptRows(room.id)).toBe(4);

      // Once the first attempt is settled: 4 counted, so one more prompt, then 429.
      await sleep(Math.max(0, failedAt + UNKNOWN_WRITE_SETTLE_MS + 2_000 - Date.now()));
      expect(await quotaCounter(me.user.id)).toBe(4);
      const fifth = await sendPrompt(me, room.id, marker("fifth"));
      expect(fifth.status).toBe(202);
      expect(fifth.headers.get("ratelimit-remaining")).toBe("0");
      expect((await sendPrompt(me, room.id, marker("sixth"))).status).toBe(429);
      expect(await promptRows(room.id)).toBe(5);
    },
    UNKNOWN_WRITE_SETTLE_MS + 60_000,
  );
});
