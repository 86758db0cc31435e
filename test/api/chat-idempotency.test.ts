import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { call } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  flushQStash,
  geminiCalls,
  marker,
  newChatroom,
  qstashMessages,
  sendPrompt,
} from "./chat-support.ts";

async function messageCount(token: string, roomId: string) {
  const res = await call("GET", `/chatroom/${roomId}`, { token });
  return res.body.chatroom.message_count as number;
}

describe("Idempotency-Key on POST /chatroom/:id/message", () => {
  it("replays the first response for the same key: same ids, nothing created, no quota used", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const key = randomUUID();
    const content = marker("idem");
    const first = await sendPrompt(me, room.id, content, { "idempotency-key": key });
    expect(first.status).toBe(202);
    expect(first.headers.get("ratelimit-remaining")).toBe("4");

    const again = await sendPrompt(me, room.id, content, { "idempotency-key": key });
    expect(again.status).toBe(202);
    expect(again.body).toEqual(first.body);
    expect(again.headers.get("location")).toBe(first.headers.get("location"));
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.headers.get("ratelimit-remaining")).toBe("4");

    expect(await messageCount(me.token, room.id)).toBe(2);
    await flushQStash(content);
    expect(await qstashMessages(content, "publish")).toHaveLength(1);
    const next = await sendPrompt(me, room.id, marker("after"));
    expect(next.headers.get("ratelimit-remaining")).toBe("3");
  });

  it("refuses the same key with a different body: 409 idempotency_key_reused", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const key = randomUUID();
    const first = await sendPrompt(me, room.id, marker("one"), { "idempotency-key": key });
    expect(first.status).toBe(202);
    const other = await sendPrompt(me, room.id, marker("two"), { "idempotency-key": key });
    expect(other.status).toBe(409);
    expect(other.body.error.code).toBe("idempotency_key_reused");
    expect(await messageCount(me.token, room.id)).toBe(2);
  });

  it("creates one exchange when the same request arrives five times in parallel", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const key = randomUUID();
    const content = marker("parallel");
    const results = await Promise.all(
      Array.from({ length: 5 }, () => sendPrompt(me, room.id, content, { "idempotency-key": key })),
    );
    for (const r of results) expect(r.status).toBe(202);
    const replyIds = new Set(results.map((r) => r.body.reply.id));
    expect(replyIds.size).toBe(1);
    expect(await messageCount(me.token, room.id)).toBe(2);
    // Exactly one Gemini call: only the request whose batch committed publishes a job.
    await flushQStash(content);
    expect(await qstashMessages(content, "publish")).toHaveLength(1);
    expect((await geminiCalls(content)).map((c) => c.method)).toEqual(["generateContent"]);
    const next = await sendPrompt(me, room.id, marker("after-parallel"));
    expect(next.headers.get("ratelimit-remaining")).toBe("3");
  });

  it("scopes keys to the user: another user's identical key is a separate request", async () => {
    const [a, b] = await Promise.all([createSession(), createSession()]);
    const [roomA, roomB] = await Promise.all([newChatroom(a), newChatroom(b)]);
    const key = randomUUID();
    const ra = await sendPrompt(a, roomA.id, "same words", { "idempotency-key": key });
    const rb = await sendPrompt(b, roomB.id, "same words", { "idempotency-key": key });
    expect(ra.status).toBe(202);
    expect(rb.status).toBe(202);
    expect(rb.body.reply.id).not.toBe(ra.body.reply.id);
  });

  it.each(["", "has space", "x".repeat(256)])(
    "refuses a malformed key (%j) with 400",
    async (key) => {
      const me = await createSession();
      const room = await newChatroom(me);
      const res = await sendPrompt(me, room.id, "hi", { "idempotency-key": key });
      expect(res.status).toBe(400);
    },
  );
});
