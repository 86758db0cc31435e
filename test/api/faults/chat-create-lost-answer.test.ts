// A POST /chatroom whose answer was lost: the database ran its write after the Worker had given
// up on it (503). The client resends the create with its Idempotency-Key and must end up with
// one chatroom, whichever of the two writes reaches the database first. The database is slowed
// for everyone (a global switch, hence this folder).
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { QUERY_TIMEOUT_MS } from "../../../src/db/client.ts";
import { call, control, waitFor } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { sql } from "../chat-support.ts";

const ROUND_ONE_DELAY_MS = 1_000;
/** A statement runs this long after it was sent: past the Worker's deadline, then commits. */
const LATE_COMMIT_MS = QUERY_TIMEOUT_MS + 2_000;

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function create(token: string, body: unknown, key: string) {
  return call("POST", "/chatroom", { token, body, headers: { "idempotency-key": key } });
}

async function listedIds(token: string): Promise<string[]> {
  const res = await call("GET", "/chatroom", { token });
  expect(res.status, res.text).toBe(200);
  return res.body.chatrooms.map((r: { id: string }) => r.id);
}

async function roomIdsOf(userId: string): Promise<string[]> {
  const rows = await sql().query("select id from chatrooms where user_id = $1", [userId]);
  return rows.map((r) => r.id as string);
}

describe("a chatroom create whose answer was lost, resent with its Idempotency-Key", () => {
  it(
    "replays the chatroom the lost create wrote",
    async () => {
      const me = await createSession();
      const key = randomUUID();
      // Without settings the create is one batch (the session check rides in it): it runs
      // LATE_COMMIT_MS after it was sent, after the Worker has answered 503.
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const lost = await create(me.token, { title: "lost" }, key);
      await control("neon/fault", { mode: "none" });
      expect(lost.status, lost.text).toBe(503);
      // A list read while the lost write still waits caches the list without it (twice: the
      // second read is served from that page).
      for (let i = 0; i < 2; i++) {
        expect((await listedIds(me.token)).length).toBe(0);
      }
      const [written] = await waitFor(async () => {
        const ids = await roomIdsOf(me.user.id);
        return ids.length > 0 && ids;
      }, 10_000);

      const resent = await create(me.token, { title: "lost" }, key);
      expect(resent.status, resent.text).toBe(201);
      expect(resent.headers.get("idempotent-replayed")).toBe("true");
      expect(resent.body.chatroom.id).toBe(written);
      expect(await roomIdsOf(me.user.id)).toEqual([written]);
      // The replay bumped the list cache: the page cached before the late commit is not served.
      expect(await listedIds(me.token)).toEqual([written]);
    },
    LATE_COMMIT_MS + 30_000,
  );

  it(
    "creates one chatroom when the resend is written before the lost create",
    async () => {
      const me = await createSession();
      const key = randomUUID();
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const sentAt = Date.now();
      const lost = await create(me.token, { title: "late" }, key);
      await control("neon/fault", { mode: "none" });
      expect(lost.status, lost.text).toBe(503);

      // The lost create's batch is still waiting in the database's queue: the resend goes first.
      const resent = await create(me.token, { title: "late" }, key);
      expect(resent.status, resent.text).toBe(201);
      expect(resent.headers.get("idempotent-replayed")).toBeNull();
      // Past the point where the lost batch has run (it finds the key's record and writes nothing).
      await sleep(Math.max(0, sentAt + LATE_COMMIT_MS + 2_000 - Date.now()));
      expect(await roomIdsOf(me.user.id)).toEqual([resent.body.chatroom.id]);
      const again = await create(me.token, { title: "late" }, key);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(again.body.chatroom.id).toBe(resent.body.chatroom.id);
    },
    LATE_COMMIT_MS + 30_000,
  );

  it(
    "replays the lost create of a chatroom with settings",
    async () => {
      const me = await createSession();
      const key = randomUUID();
      const body = { title: "tuned", settings: { temperature: 0.3 } };
      // With settings, round 1 reads the tier and the key's record; only round 2's write, sent
      // once round 1 is in, meets LATE_COMMIT_MS.
      await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
      const sent = create(me.token, body, key);
      await sleep(ROUND_ONE_DELAY_MS / 2);
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const lost = await sent;
      await control("neon/fault", { mode: "none" });
      expect(lost.status, lost.text).toBe(503);
      const [written] = await waitFor(async () => {
        const ids = await roomIdsOf(me.user.id);
        return ids.length > 0 && ids;
      }, 15_000);

      const resent = await create(me.token, body, key);
      expect(resent.status, resent.text).toBe(201);
      expect(resent.headers.get("idempotent-replayed")).toBe("true");
      expect(resent.body.chatroom.id).toBe(written);
      expect(resent.body.chatroom.settings).toEqual({ temperature: 0.3 });
      expect(await roomIdsOf(me.user.id)).toEqual([written]);
    },
    LATE_COMMIT_MS + 30_000,
  );
});
