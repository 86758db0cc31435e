// POST /chatroom takes an Idempotency-Key, with the prompt routes' contract: a resend (after a
// 503 or a lost answer) gets the first chatroom back instead of a second one.
import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { call, uniqueClientIp } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { sql, warmList } from "./chat-support.ts";

const PASSWORD = "correct horse battery";

function create(token: string, body: unknown, key?: string) {
  return call("POST", "/chatroom", {
    token,
    body,
    headers: key === undefined ? {} : { "idempotency-key": key },
  });
}

/** The ids of the user's chatrooms, read from the database (no cache in the way). */
async function roomIdsOf(userId: string): Promise<string[]> {
  const rows = await sql().query("select id from chatrooms where user_id = $1 order by id", [
    userId,
  ]);
  return rows.map((r) => r.id as string);
}

async function recordsOf(userId: string): Promise<number> {
  const [row] = await sql().query(
    "select count(*)::int as n from idempotency_keys where user_id = $1",
    [userId],
  );
  return row?.n as number;
}

async function login(mobile_number: string): Promise<{ token: string; refresh_token: string }> {
  const res = await call("POST", "/auth/login", {
    body: { mobile_number, password: PASSWORD },
    headers: { "cf-connecting-ip": uniqueClientIp() },
  });
  expect(res.status, res.text).toBe(200);
  return { token: res.body.token as string, refresh_token: res.body.refresh_token as string };
}

describe("Idempotency-Key on POST /chatroom", () => {
  it("replays the first 201 for the same key and body: the same chatroom, nothing created", async () => {
    const me = await createSession();
    const key = randomUUID();
    const first = await create(me.token, { title: "Trip ideas" }, key);
    expect(first.status, first.text).toBe(201);
    expect(first.headers.get("idempotent-replayed")).toBeNull();

    const again = await create(me.token, { title: "Trip ideas" }, key);
    expect(again.status, again.text).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body).toEqual(first.body);
    expect(await roomIdsOf(me.user.id)).toEqual([first.body.chatroom.id]);
    // The first answer is what was created, as GET shows it.
    const shown = await call("GET", `/chatroom/${first.body.chatroom.id}`, { token: me.token });
    expect(shown.body.chatroom).toEqual(first.body.chatroom);
  });

  it("replays a create with settings, whatever the order of the body's fields", async () => {
    const me = await createSession();
    const key = randomUUID();
    const first = await create(
      me.token,
      { settings: { temperature: 0.5, max_output_tokens: 100 }, title: "Tuned" },
      key,
    );
    expect(first.status, first.text).toBe(201);
    const again = await create(
      me.token,
      { title: "Tuned", settings: { max_output_tokens: 100, temperature: 0.5 } },
      key,
    );
    expect(again.status, again.text).toBe(201);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body.chatroom.id).toBe(first.body.chatroom.id);
    expect(await roomIdsOf(me.user.id)).toEqual([first.body.chatroom.id]);
  });

  it.each([
    ["without settings", {}],
    ["with settings", { settings: { temperature: 1 } }],
  ])(
    "refuses the same key with another body (%s): 409 idempotency_key_reused, nothing created",
    async (_label, extra) => {
      const me = await createSession();
      const key = randomUUID();
      const first = await create(me.token, { title: "one", ...extra }, key);
      expect(first.status, first.text).toBe(201);
      const other = await create(me.token, { title: "two", ...extra }, key);
      expect(other.status, other.text).toBe(409);
      expect(other.body.error.code).toBe("idempotency_key_reused");
      expect(await roomIdsOf(me.user.id)).toEqual([first.body.chatroom.id]);
    },
  );

  it.each([
    ["without settings", {}],
    ["with settings", { settings: { temperature: 1 } }],
  ])(
    "creates one chatroom when the same create arrives five times at once (%s)",
    async (_label, extra) => {
      const me = await createSession();
      const key = randomUUID();
      const results = await Promise.all(
        Array.from({ length: 5 }, () => create(me.token, { title: "parallel", ...extra }, key)),
      );
      for (const r of results) expect(r.status, r.text).toBe(201);
      const ids = new Set(results.map((r) => r.body.chatroom.id));
      expect(ids.size).toBe(1);
      expect(await roomIdsOf(me.user.id)).toEqual([...ids]);
      expect(results.filter((r) => r.headers.get("idempotent-replayed") === null)).toHaveLength(1);
    },
  );

  it("keeps keys per user: another user's key creates that user's own chatroom", async () => {
    const [a, b] = await Promise.all([createSession(), createSession()]);
    const key = randomUUID();
    const ofA = await create(a.token, { title: "A's room" }, key);
    expect(ofA.status).toBe(201);
    // B sends A's key with A's very body: a create of B's, never A's answer.
    const ofB = await create(b.token, { title: "A's room" }, key);
    expect(ofB.status, ofB.text).toBe(201);
    expect(ofB.headers.get("idempotent-replayed")).toBeNull();
    expect(ofB.body.chatroom.id).not.toBe(ofA.body.chatroom.id);
    expect(await roomIdsOf(b.user.id)).toEqual([ofB.body.chatroom.id]);
    const listB = await call("GET", "/chatroom", { token: b.token });
    expect(listB.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([ofB.body.chatroom.id]);
    // Each replays their own.
    const againB = await create(b.token, { title: "A's room" }, key);
    expect(againB.body.chatroom.id).toBe(ofB.body.chatroom.id);
    const againA = await create(a.token, { title: "A's room" }, key);
    expect(againA.body.chatroom.id).toBe(ofA.body.chatroom.id);
    expect(await roomIdsOf(a.user.id)).toEqual([ofA.body.chatroom.id]);
  });

  it.each([
    ["without settings", {}],
    ["with settings", { settings: { temperature: 1 } }],
  ])(
    "a revoked session's keyed create writes nothing and reads no replay; the owner's key still works after logging in again (%s)",
    async (_label, extra) => {
      const s: TestSession = await createSession({ password: PASSWORD });
      const used = randomUUID();
      const mine = await create(s.token, { title: "kept", ...extra }, used);
      expect(mine.status).toBe(201);
      const out = await call("POST", "/auth/logout", {
        token: s.token,
        body: { refresh_token: s.refresh_token },
      });
      expect(out.status).toBe(204);

      // The revoked token learns nothing from a key in use, and writes nothing with a new one.
      const replay = await create(s.token, { title: "kept", ...extra }, used);
      expect(replay.status).toBe(401);
      const reused = await create(s.token, { title: "other", ...extra }, used);
      expect(reused.status).toBe(401);
      const key = randomUUID();
      const refused = await create(
        s.token,
        { title: "written by a revoked session", ...extra },
        key,
      );
      expect(refused.status).toBe(401);
      expect(await roomIdsOf(s.user.id)).toEqual([mine.body.chatroom.id]);
      expect(await recordsOf(s.user.id)).toBe(1);

      const back = await login(s.mobile_number);
      const created = await create(back.token, { title: "after login", ...extra }, key);
      expect(created.status, created.text).toBe(201);
      expect(created.headers.get("idempotent-replayed")).toBeNull();
      const again = await create(back.token, { title: "after login", ...extra }, key);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(again.body.chatroom.id).toBe(created.body.chatroom.id);
      expect((await roomIdsOf(s.user.id)).sort()).toEqual(
        [mine.body.chatroom.id, created.body.chatroom.id].sort(),
      );
    },
  );

  it("invalidates the cached list on a create, and again on a replay (the first write may have committed after its answer was lost)", async () => {
    const me = await createSession();
    const key = randomUUID();
    await warmList(me);
    const first = await create(me.token, { title: "listed" }, key);
    expect(first.status).toBe(201);
    const listed = await call("GET", "/chatroom", { token: me.token });
    expect(listed.headers.get("x-cache")).toBe("MISS");
    expect(listed.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([
      first.body.chatroom.id,
    ]);
    expect((await call("GET", "/chatroom", { token: me.token })).headers.get("x-cache")).toBe(
      "HIT",
    );

    const again = await create(me.token, { title: "listed" }, key);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    const after = await call("GET", "/chatroom", { token: me.token });
    expect(after.headers.get("x-cache")).toBe("MISS");
    expect(after.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([first.body.chatroom.id]);
  });

  it("lets a key be used again once its record has expired", async () => {
    const me = await createSession();
    const key = randomUUID();
    const first = await create(me.token, { title: "old" }, key);
    expect(first.status).toBe(201);
    await sql().query(
      "update idempotency_keys set expires_at = now() - interval '1 minute' where user_id = $1",
      [me.user.id],
    );
    const fresh = await create(me.token, { title: "new" }, key);
    expect(fresh.status, fresh.text).toBe(201);
    expect(fresh.headers.get("idempotent-replayed")).toBeNull();
    expect(fresh.body.chatroom.title).toBe("new");
    expect(await roomIdsOf(me.user.id)).toHaveLength(2);
    expect(await recordsOf(me.user.id)).toBe(1);
  });

  it.each(["", "has space", "x".repeat(256)])(
    "refuses a malformed key (%j) with 400 and creates nothing",
    async (key) => {
      const me = await createSession();
      const res = await create(me.token, { title: "bad key" }, key);
      expect(res.status).toBe(400);
      expect(res.body.error.details[0].location).toBe("header");
      expect(await roomIdsOf(me.user.id)).toEqual([]);
    },
  );
});
