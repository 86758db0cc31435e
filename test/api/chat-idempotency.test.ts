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
  quotaCounter,
  redis,
  sendPrompt,
} from "./chat-support.ts";

/**
 * Another request's claim on the user's Idempotency-Key, as the Worker writes it
 * (src/lib/in-flight-claims.ts): in flight, or `held` while its write's outcome is unknown. Set
 * straight in Redis, so the claim stands for exactly `ms` and no write of it ever lands.
 */
async function claimKey(userId: string, key: string, as: "in_flight" | "held", ms: number) {
  const owner = `${as === "held" ? "held:" : ""}${randomUUID()}`;
  await redis("SET", `claim:prompt:${userId}:${key}`, owner, "PX", ms);
}

/** The Retry-After of a response, as a number of seconds (NaN when absent). */
const retryAfter = (res: { headers: Headers }) => Number(res.headers.get("retry-after") ?? NaN);

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

describe("409 idempotency_in_progress", () => {
  it("names a Retry-After: until the key's hold ends, at most 5 s; uses no quota; only for its user", async () => {
    const [me, stranger] = await Promise.all([createSession(), createSession()]);
    const [room, strangerRoom] = await Promise.all([newChatroom(me), newChatroom(stranger)]);
    const [longKey, shortKey] = [randomUUID(), randomUUID()];
    await claimKey(me.user.id, longKey, "held", 60_000);
    await claimKey(me.user.id, shortKey, "held", 2_500);

    const long = await sendPrompt(me, room.id, marker("held-long"), { "idempotency-key": longKey });
    expect(long.status, long.text).toBe(409);
    expect(long.body.error.code).toBe("idempotency_in_progress");
    expect(retryAfter(long)).toBe(5);

    const short = await sendPrompt(me, room.id, marker("held-short"), {
      "idempotency-key": shortKey,
    });
    expect(short.status, short.text).toBe(409);
    expect(retryAfter(short)).toBeGreaterThanOrEqual(1);
    expect(retryAfter(short)).toBeLessThanOrEqual(3);
    expect(await quotaCounter(me.user.id)).toBe(0);

    // Sent again after its Retry-After, the short one finds the key free and goes ahead.
    await new Promise((r) => setTimeout(r, retryAfter(short) * 1000));
    const again = await sendPrompt(me, room.id, marker("held-short"), {
      "idempotency-key": shortKey,
    });
    expect(again.status, again.text).toBe(202);

    // Another user's prompt with the same key is neither refused nor told to wait.
    const theirs = await sendPrompt(stranger, strangerRoom.id, marker("not-held"), {
      "idempotency-key": longKey,
    });
    expect(theirs.status, theirs.text).toBe(202);
    expect(theirs.headers.get("retry-after")).toBeNull();
  });

  it("names a Retry-After when a repeat at the daily limit outwaits the first request's claim", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    for (let i = 0; i < 5; i++) {
      expect((await sendPrompt(me, room.id, marker(`spend-${i}`))).status).toBe(202);
    }
    // Two first requests that never write: the repeats wait for a record (6.3 s), then answer
    // 409, one while its claim has a minute left (the cap), one with ~2 s left.
    const [longKey, shortKey] = [randomUUID(), randomUUID()];
    await claimKey(me.user.id, longKey, "in_flight", 60_000);
    await claimKey(me.user.id, shortKey, "in_flight", 9_000);
    const [long, short] = await Promise.all([
      sendPrompt(me, room.id, marker("repeat-long"), { "idempotency-key": longKey }),
      sendPrompt(me, room.id, marker("repeat-short"), { "idempotency-key": shortKey }),
    ]);
    expect(long.status, long.text).toBe(409);
    expect(long.body.error.code).toBe("idempotency_in_progress");
    expect(retryAfter(long)).toBe(5);
    expect(short.status, short.text).toBe(409);
    expect(short.body.error.code).toBe("idempotency_in_progress");
    expect(retryAfter(short)).toBeGreaterThanOrEqual(1);
    expect(retryAfter(short)).toBeLessThanOrEqual(3);
  });
});
