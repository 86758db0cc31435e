import { beforeAll, describe, expect, it } from "vitest";
import { call } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  flushQStash,
  marker,
  newChatroom,
  remainingAfterOnePrompt,
  sendPrompt,
  settledReply,
} from "./chat-support.ts";

let owner: TestSession;
let stranger: TestSession;

beforeAll(async () => {
  [owner, stranger] = await Promise.all([createSession(), createSession()]);
});

describe("POST /chatroom", () => {
  it("creates a chatroom owned by the caller", async () => {
    const res = await call("POST", "/chatroom", {
      token: owner.token,
      body: { title: "  Trip  " },
    });
    expect(res.status).toBe(201);
    expect(res.body.chatroom).toEqual({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      title: "Trip",
      title_source: "user",
      description: null,
      settings: {},
      created_at: expect.any(String),
      updated_at: res.body.chatroom.created_at,
      last_message_at: null,
      message_count: 0,
    });
  });

  it.each([
    ["a null title", { title: null }],
    ["an empty title", { title: "" }],
    ["a blank title", { title: "   " }],
    ["a 101-character title", { title: "x".repeat(101) }],
    ["a number", { title: 42 }],
    ["a lone surrogate", { title: "bad \ud800 title" }],
    ["a client-chosen owner", { title: "ok", user_id: "someone" }],
    ["a client-chosen id", { title: "ok", id: "01936f4e-1c2d-7b3a-9f00-123456789abc" }],
  ])("refuses %s with 400 invalid_request", async (_, body) => {
    const res = await call("POST", "/chatroom", { token: owner.token, body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });

  it("accepts a 100-character title", async () => {
    const res = await call("POST", "/chatroom", {
      token: owner.token,
      body: { title: "y".repeat(100) },
    });
    expect(res.status).toBe(201);
  });

  it("requires a token", async () => {
    const res = await call("POST", "/chatroom", { body: { title: "x" } });
    expect(res.status).toBe(401);
  });
});

describe("GET /chatroom", () => {
  it("lists only the caller's chatrooms, newest activity first, page by page", async () => {
    const me = await createSession();
    const a = await newChatroom(me, "A");
    const b = await newChatroom(me, "B");
    const c = await newChatroom(me, "C");
    await newChatroom(stranger, "not mine");

    const first = await call("GET", "/chatroom?limit=2", { token: me.token });
    expect(first.status).toBe(200);
    expect(first.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([c.id, b.id]);
    expect(first.body.next_cursor).toEqual(expect.any(String));

    const second = await call(
      "GET",
      `/chatroom?limit=2&cursor=${encodeURIComponent(first.body.next_cursor)}`,
      { token: me.token },
    );
    expect(second.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([a.id]);
    expect(second.body.next_cursor).toBeNull();

    // Activity reorders the list: a prompt to A moves it to the top.
    const content = marker("activity");
    const sent = await sendPrompt(me, a.id, content);
    expect(sent.status).toBe(202);
    const after = await call("GET", "/chatroom", { token: me.token });
    expect(after.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([a.id, c.id, b.id]);
    expect(after.body.chatrooms[0].message_count).toBe(2);
    await flushQStash(content);
  });

  it.each(["limit=0", "limit=101", "limit=abc", "limit=-1", "cursor=not-a-cursor", "cursor=Zm9v"])(
    "refuses %s with 400",
    async (query) => {
      const res = await call("GET", `/chatroom?${query}`, { token: owner.token });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    },
  );

  // Dates JavaScript round-trips but Postgres refuses (year 0, signed years): a 500 before.
  it.each([
    "0000-01-01T00:00:00.000Z",
    "+010000-01-01T00:00:00.000Z",
    "-000001-01-01T00:00:00.000Z",
  ])("refuses a cursor dated %s with 400, not 500", async (iso) => {
    const cursor = Buffer.from(`${iso}|01936f4e-1c2d-7b3a-9f00-123456789abc`).toString("base64url");
    const res = await call("GET", `/chatroom?cursor=${cursor}`, { token: owner.token });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });
});

describe("GET/PATCH/DELETE /chatroom/:id", () => {
  it("returns the chatroom with its messages, oldest first", async () => {
    const room = await newChatroom(owner);
    const content = marker("detail");
    const sent = await sendPrompt(owner, room.id, content);
    await settledReply(owner, room.id, sent.body.reply.id);
    const res = await call("GET", `/chatroom/${room.id}`, { token: owner.token });
    expect(res.status).toBe(200);
    expect(res.body.chatroom).toMatchObject({ id: room.id, message_count: 2 });
    expect(res.body.messages.map((m: { role: string }) => m.role)).toEqual(["user", "model"]);
    expect(res.body.messages[0].content).toBe(content);
    expect(res.body.has_more).toBe(false);
  });

  it("renames a chatroom", async () => {
    const room = await newChatroom(owner);
    const res = await call("PATCH", `/chatroom/${room.id}`, {
      token: owner.token,
      body: { title: "Renamed" },
    });
    expect(res.status).toBe(200);
    expect(res.body.chatroom.title).toBe("Renamed");
    expect(res.body.chatroom.updated_at > res.body.chatroom.created_at).toBe(true);
    const bad = await call("PATCH", `/chatroom/${room.id}`, {
      token: owner.token,
      body: { title: "" },
    });
    expect(bad.status).toBe(400);
  });

  it("deletes a chatroom and its messages", async () => {
    const room = await newChatroom(owner);
    const content = marker("delete");
    const sent = await sendPrompt(owner, room.id, content);
    await settledReply(owner, room.id, sent.body.reply.id);
    const res = await call("DELETE", `/chatroom/${room.id}`, { token: owner.token });
    expect(res.status).toBe(204);
    expect((await call("GET", `/chatroom/${room.id}`, { token: owner.token })).status).toBe(404);
    const msg = await call("GET", `/chatroom/${room.id}/messages/${sent.body.message.id}`, {
      token: owner.token,
    });
    expect(msg.status).toBe(404);
    expect((await call("DELETE", `/chatroom/${room.id}`, { token: owner.token })).status).toBe(404);
  });
});

describe("ownership", () => {
  it("answers 404 (never 403) for another user's chatroom on every route, and changes nothing", async () => {
    const room = await newChatroom(owner, "private");
    const content = marker("owned");
    const sent = await sendPrompt(owner, room.id, content);
    const msgId = sent.body.message.id;
    const t = stranger.token;
    const attempts = await Promise.all([
      call("GET", `/chatroom/${room.id}`, { token: t }),
      call("PATCH", `/chatroom/${room.id}`, { token: t, body: { title: "hijacked" } }),
      call("GET", `/chatroom/${room.id}/messages`, { token: t }),
      call("GET", `/chatroom/${room.id}/messages/${msgId}`, { token: t }),
      call("POST", `/chatroom/${room.id}/message`, { token: t, body: { content: "hi" } }),
      call("DELETE", `/chatroom/${room.id}`, { token: t }),
    ]);
    for (const res of attempts) {
      expect(res.status).toBe(404);
      expect(res.body.error.code).toBe("not_found");
    }
    const mine = await call("GET", `/chatroom/${room.id}`, { token: owner.token });
    expect(mine.status).toBe(200);
    expect(mine.body.chatroom.title).toBe("private");
    expect(mine.body.chatroom.message_count).toBe(2);
    await flushQStash(content);
  });

  it("gives the quota token back when the chatroom is not the caller's", async () => {
    const me = await createSession();
    const myRoom = await newChatroom(me);
    const theirs = await newChatroom(owner);
    for (let i = 0; i < 3; i++) {
      const res = await sendPrompt(me, theirs.id, "not yours");
      expect(res.status).toBe(404);
    }
    // Three refused prompts used nothing: the first real one leaves 4 of 5.
    expect(await remainingAfterOnePrompt(me, myRoom.id)).toBe(4);
  });

  it.each(["abc", "0", "-1", "01936F4E-1C2D-7B3A-9F00-123456789ABC", "a%2e%2e", "null"])(
    "answers a malformed id (%s) like an unknown one: 404",
    async (id) => {
      const res = await call("GET", `/chatroom/${id}`, { token: owner.token });
      expect(res.status).toBe(404);
      const msg = await call("GET", `/chatroom/${id}/messages/${id}`, { token: owner.token });
      expect(msg.status).toBe(404);
    },
  );
});

describe("GET /chatroom/:id/messages", () => {
  it("pages back through older messages with next_cursor", async () => {
    const me = await createSession({});
    const room = await newChatroom(me);
    const prompts = [marker("p1"), marker("p2")];
    for (const p of prompts) {
      const r = await sendPrompt(me, room.id, p);
      expect(r.status).toBe(202);
      await settledReply(me, room.id, r.body.reply.id);
    }
    const latest = await call("GET", `/chatroom/${room.id}/messages?limit=2`, { token: me.token });
    expect(latest.status).toBe(200);
    expect(latest.body.messages.map((m: { content: string; role: string }) => m.role)).toEqual([
      "user",
      "model",
    ]);
    expect(latest.body.messages[0].content).toBe(prompts[1]);
    const older = await call(
      "GET",
      `/chatroom/${room.id}/messages?limit=2&before=${latest.body.next_cursor}`,
      { token: me.token },
    );
    expect(older.body.messages[0].content).toBe(prompts[0]);
    expect(older.body.next_cursor).toBeNull();
    const bad = await call("GET", `/chatroom/${room.id}/messages?before=xyz`, { token: me.token });
    expect(bad.status).toBe(400);
  });
});

describe("OpenAPI document", () => {
  it("describes every chat endpoint and the QStash callbacks", async () => {
    const res = await call("GET", "/openapi.json");
    expect(res.status).toBe(200);
    const paths = res.body.paths as Record<string, Record<string, unknown>>;
    expect(Object.keys(paths["/chatroom"] ?? {}).sort()).toEqual(["get", "post"]);
    expect(Object.keys(paths["/chatroom/{id}"] ?? {}).sort()).toEqual(["delete", "get", "patch"]);
    expect(Object.keys(paths["/chatroom/{id}/messages"] ?? {})).toEqual(["get"]);
    expect(Object.keys(paths["/chatroom/{id}/messages/{message_id}"] ?? {})).toEqual(["get"]);
    expect(Object.keys(paths["/chatroom/{id}/message"] ?? {})).toEqual(["post"]);
    expect(Object.keys(paths["/webhook/qstash/reply"] ?? {})).toEqual(["post"]);
    expect(Object.keys(paths["/webhook/qstash/reply-failed"] ?? {})).toEqual(["post"]);
    expect(res.body.components.schemas).toHaveProperty("Message");
    expect(res.body.components.schemas).toHaveProperty("Chatroom");
  });
});
