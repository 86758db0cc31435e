import { afterEach, describe, expect, it } from "vitest";
import { QUERY_TIMEOUT_MS } from "../../../src/db/client.ts";
import { UNKNOWN_WRITE_SETTLE_MS } from "../../../src/services/chat/send.ts";
import { control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import {
  marker,
  newChatroom,
  promptRows,
  quotaCounter,
  redis,
  runSweep,
  sendPrompt,
} from "../chat-support.ts";

const ROUND_ONE_DELAY_MS = 1_000;
/** Round 2's batch runs this long after it was sent: past the Worker's deadline (a 503). */
const LATE_COMMIT_MS = QUERY_TIMEOUT_MS + 2_000;
/**
 * The settle starts at the 503 and checks for ~25 s (the waitUntil budget) before handing the
 * take to the sweep; the database is down for all of it, and a little longer.
 */
const DOWN_AFTER_503_MS = 30_000;

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("an unknown write whose settle the database was down for", () => {
  it(
    "keeps the token until the sweep can look, then refunds an absent reply exactly once and keeps a committed one",
    async () => {
      const absent = await createSession();
      const absentRoom = await newChatroom(absent);
      const committed = await createSession();
      const committedRoom = await newChatroom(committed);

      // Both prompts' round-2 batches run LATE_COMMIT_MS after they were sent: the Worker gives
      // up first (503, outcome unknown). One batch then commits; the other finds its chatroom
      // deleted meanwhile and rolls back (the Worker never hears of either).
      await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
      const sent = Promise.all([
        sendPrompt(absent, absentRoom.id, marker("never-committed")),
        sendPrompt(committed, committedRoom.id, marker("committed-late")),
      ]);
      await sleep(ROUND_ONE_DELAY_MS / 2);
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      await sleep(ROUND_ONE_DELAY_MS);
      const deleted = await control("neon/query", {
        sql: "delete from chatrooms where id = $1",
        params: [absentRoom.id],
      });
      expect(deleted.status).toBe(200);
      const [a, b] = await sent;
      const failedAt = Date.now();
      // The failing vendor: Neon is down across the settle read and every recheck (the held
      // batches were already admitted, so they still run).
      await control("neon/fault", { mode: "down" });
      expect([a.status, b.status]).toEqual([503, 503]);

      await sleep(Math.max(0, failedAt + DOWN_AFTER_503_MS - Date.now()));
      expect(DOWN_AFTER_503_MS).toBeGreaterThan(UNKNOWN_WRITE_SETTLE_MS);
      // Nothing could be settled: both tokens are still counted.
      expect(await quotaCounter(absent.user.id)).toBe(1);
      expect(await quotaCounter(committed.user.id)).toBe(1);

      await control("neon/fault", { mode: "none" });
      expect(await promptRows(absentRoom.id)).toBe(0);
      expect(await promptRows(committedRoom.id)).toBe(1);

      // The database is back: the cron's sweep settles both.
      await runSweep();
      expect(await quotaCounter(absent.user.id)).toBe(0);
      expect(await quotaCounter(committed.user.id)).toBe(1);
      expect(await redis("HLEN", "quota:unsettled")).toBe(0);

      // A second sweep changes nothing (the entries are gone; a refund is once per reply id).
      await runSweep();
      expect(await quotaCounter(absent.user.id)).toBe(0);
      expect(await quotaCounter(committed.user.id)).toBe(1);
    },
    DOWN_AFTER_503_MS + QUERY_TIMEOUT_MS + 30_000,
  );
});
