import { describe, expect, it } from "vitest";
import { call, waitFor } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  geminiFault,
  marker,
  newChatroom,
  redis,
  sendPrompt,
  settledReply,
  warmList,
} from "./chat-support.ts";

async function list(session: TestSession, query = "") {
  const res = await call("GET", `/chatroom${query}`, { token: session.token });
  expect(res.status).toBe(200);
  return res;
}

describe("GET /chatroom cache", () => {
  it("serves the second read from Redis with the same body, never storable by shared caches", async () => {
    const me = await createSession();
    await newChatroom(me, "cached");
    const { first, hit } = await warmList(me);
    expect(first.headers.get("x-cache")).toBe("MISS");
    expect(hit.text).toBe(first.text);
    expect(hit.headers.get("content-type")).toBe(first.headers.get("content-type"));
    expect(hit.headers.get("cache-control")).toBe("private, no-store");
    expect(first.headers.get("cache-control")).toBe("private, no-store");
  });

  it("keeps users apart: each user only ever sees their own cached list", async () => {
    const [a, b] = await Promise.all([createSession(), createSession()]);
    const ra = await newChatroom(a, "A's room");
    const rb = await newChatroom(b, "B's room");
    const { hit: hitA } = await warmList(a);
    const { hit: hitB } = await warmList(b);
    expect(hitA.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([ra.id]);
    expect(hitB.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([rb.id]);
  });

  it("is invalidated by creating, renaming and deleting a chatroom", async () => {
    const me = await createSession();
    const room = await newChatroom(me, "first");
    await warmList(me);

    const second = await newChatroom(me, "second");
    const afterCreate = await list(me);
    expect(afterCreate.headers.get("x-cache")).toBe("MISS");
    expect(afterCreate.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([
      second.id,
      room.id,
    ]);

    await warmList(me);
    const renamed = await call("PATCH", `/chatroom/${room.id}`, {
      token: me.token,
      body: { title: "renamed" },
    });
    expect(renamed.status).toBe(200);
    const afterRename = await list(me);
    expect(afterRename.headers.get("x-cache")).toBe("MISS");
    expect(afterRename.body.chatrooms[0]).toMatchObject({ id: room.id, title: "renamed" });

    await warmList(me);
    expect((await call("DELETE", `/chatroom/${second.id}`, { token: me.token })).status).toBe(204);
    const afterDelete = await list(me);
    expect(afterDelete.headers.get("x-cache")).toBe("MISS");
    expect(afterDelete.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([room.id]);
  });

  it("reads its own writes: a chatroom created (in one round) is in the very next list, warm cache or not, even with list reads racing the create", async () => {
    const me = await createSession();
    // Cold cache: create, then list at once.
    const first = await newChatroom(me, "ryw first");
    expect((await list(me)).body.chatrooms.map((r: { id: string }) => r.id)).toEqual([first.id]);
    for (let round = 0; round < 5; round++) {
      await warmList(me);
      // Lists in flight while the create runs may cache the old page under the bumped version;
      // the bump after the commit must retire it before the create's answer is read.
      const racing = Array.from({ length: 3 }, () => call("GET", "/chatroom", { token: me.token }));
      const created = await newChatroom(me, `ryw ${round}`);
      const after = await list(me);
      expect(after.body.chatrooms[0]?.id, `round ${round}`).toBe(created.id);
      for (const res of await Promise.all(racing)) expect(res.status).toBe(200);
    }
  });

  it("is invalidated by a new message and again by the reply's completion", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    await warmList(me);

    const content = marker("cache-msg");
    // Slow, so the reply is still pending when the list is read after the send.
    await geminiFault({ match: content, kind: "slow", times: 1, ms: 1000 });
    const sent = await sendPrompt(me, room.id, content);
    expect(sent.status).toBe(202);
    const afterSend = await list(me);
    expect(afterSend.headers.get("x-cache")).toBe("MISS");
    expect(afterSend.body.chatrooms[0]).toMatchObject({
      message_count: 2,
      last_message_at: sent.body.message.created_at,
    });

    const reply = await settledReply(me, room.id, sent.body.reply.id);
    expect(reply.status).toBe("complete");
    // The callback bumps the version just after committing the reply: wait for that, then the
    // list must show the reply's time (a cached page from before it would not).
    const afterReply = await waitFor(async () => {
      const res = await list(me);
      return res.body.chatrooms[0].last_message_at === reply.completed_at && res;
    });
    expect(afterReply.body.chatrooms[0].message_count).toBe(2);
  });

  it("treats a corrupted cache entry as a miss and replaces it", async () => {
    const me = await createSession();
    await newChatroom(me, "corrupt");
    await warmList(me, "?limit=7");
    const prefix = `cache:chatrooms:${me.user.id}`;
    const version = ((await redis("GET", `${prefix}:ver`)) as string | null) ?? "0";
    // Planted on pages never read, so no background write of this test's reads can replace them.
    await redis("SET", `${prefix}:entry:p2:5:`, `${version}\n{"chatrooms": [ truncated`);
    const res = await list(me, "?limit=5");
    expect(res.headers.get("x-cache")).toBe("MISS");
    expect(res.body.chatrooms).toHaveLength(1);
    await warmList(me, "?limit=5");

    await redis("SET", `${prefix}:entry:p2:4:`, `${version}\n{"unexpected":"shape"}`);
    expect((await list(me, "?limit=4")).headers.get("x-cache")).toBe("MISS");
  });

  it("never serves a page stored in another format (an older deploy's key)", async () => {
    const me = await createSession();
    const room = await newChatroom(me, "current");
    await warmList(me, "?limit=8");
    const prefix = `cache:chatrooms:${me.user.id}`;
    const version = ((await redis("GET", `${prefix}:ver`)) as string | null) ?? "0";
    // Well formed, under the current version, but at the key an unformatted page had.
    await redis("SET", `${prefix}:entry:9:`, `${version}\n{"chatrooms":[],"next_cursor":null}`);
    const res = await list(me, "?limit=9");
    expect(res.headers.get("x-cache")).toBe("MISS");
    expect(res.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([room.id]);
  });

  it("never serves an old page after its version key expired and the list changed", async () => {
    const me = await createSession();
    await newChatroom(me, "before");
    await warmList(me, "?limit=6");
    const prefix = `cache:chatrooms:${me.user.id}`;
    // The version key expires (a day without changes) while the page, written later, survives.
    await redis("DEL", `${prefix}:ver`);
    await newChatroom(me, "after");
    const res = await list(me, "?limit=6");
    expect(res.headers.get("x-cache")).toBe("MISS");
    expect(res.body.chatrooms.map((r: { title: string }) => r.title)).toEqual(["after", "before"]);
  });

  it("expires cached pages after CHATROOM_CACHE_TTL_SECONDS", async () => {
    const me = await createSession();
    await newChatroom(me);
    await warmList(me, "?limit=3");
    const ttl = (await redis("TTL", `cache:chatrooms:${me.user.id}:entry:p2:3:`)) as number;
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(600);
  });
});
