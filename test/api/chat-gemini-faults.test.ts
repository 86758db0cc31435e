import { describe, expect, it } from "vitest";
import { control } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  flushQStash,
  geminiCalls,
  geminiFault,
  getMessage,
  marker,
  newChatroom,
  qstashMessages,
  remainingAfterOnePrompt,
  sendPrompt,
  settledReply,
} from "./chat-support.ts";

/** A fresh user and chatroom, one prompt carrying `tag` with a Gemini fault switched on. */
async function promptWithFault(kind: string, opts: { times?: number; ms?: number } = {}) {
  const me = await createSession();
  const room = await newChatroom(me);
  const tag = marker(kind);
  await geminiFault({ match: tag, kind, retry_after: 0, ...opts });
  const res = await sendPrompt(me, room.id, `Question ${tag}`);
  expect(res.status).toBe(202);
  expect(res.headers.get("ratelimit-remaining")).toBe("4");
  return { me, room, tag, replyId: res.body.reply.id as string };
}

describe("Gemini failure modes on the queued path", () => {
  it("a 429 then success: QStash retries and the reply completes once", async () => {
    const { me, room, tag, replyId } = await promptWithFault("rate_limit", { times: 1 });
    const reply = await settledReply(me, room.id, replyId);
    expect(reply.status).toBe("complete");
    expect(reply.content).toContain(tag);
    expect((await geminiCalls(tag)).map((c) => c.status)).toEqual([429, 200]);
    await flushQStash(tag);
    // The failed attempt's callback left the reply pending; nothing was refunded.
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(3);
  });

  it("500 until retries run out: the reply fails with upstream_error and the prompt is refunded", async () => {
    const { me, room, tag, replyId } = await promptWithFault("server_error");
    try {
      const reply = await settledReply(me, room.id, replyId);
      expect(reply).toMatchObject({ status: "failed", error: "upstream_error", content: "" });
      expect((await geminiCalls(tag)).map((c) => c.status)).toEqual([500, 500, 500, 500]);
      await flushQStash(tag);
      // Both the last regular callback and the failure callback report the final failure;
      // only one of them changed the reply, so the quota came back exactly once.
      const failures = await qstashMessages(tag, "failure_callback");
      expect(failures).toHaveLength(1);
      expect(failures[0]?.attempts.at(-1)?.status).toBe(200);
      expect(await remainingAfterOnePrompt(me, room.id)).toBe(4);
    } finally {
      await control(`gemini/faults?match=${encodeURIComponent(tag)}`, undefined, "DELETE");
    }
  });

  it("429 until retries run out: the reply fails with rate_limited", async () => {
    const { me, room, tag, replyId } = await promptWithFault("rate_limit");
    try {
      const reply = await settledReply(me, room.id, replyId);
      expect(reply).toMatchObject({ status: "failed", error: "rate_limited" });
    } finally {
      await control(`gemini/faults?match=${encodeURIComponent(tag)}`, undefined, "DELETE");
    }
  });

  it("a SAFETY block fails the reply with safety_blocked and refunds the prompt", async () => {
    const { me, room, tag, replyId } = await promptWithFault("safety", { times: 1 });
    const reply = await settledReply(me, room.id, replyId);
    expect(reply).toMatchObject({ status: "failed", error: "safety_blocked", usage: null });
    expect((await geminiCalls(tag)).length).toBe(1);
    await flushQStash(tag);
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(4);
  });

  it("a malformed 200 body fails the reply with upstream_error and refunds the prompt", async () => {
    const { me, room, tag, replyId } = await promptWithFault("malformed", { times: 1 });
    const reply = await settledReply(me, room.id, replyId);
    expect(reply).toMatchObject({ status: "failed", error: "upstream_error" });
    await flushQStash(tag);
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(4);
  });

  it("an empty 200 answer (no candidates) fails the reply with upstream_error", async () => {
    const { me, room, replyId } = await promptWithFault("empty", { times: 1 });
    const reply = await settledReply(me, room.id, replyId);
    expect(reply).toMatchObject({ status: "failed", error: "upstream_error" });
  });

  it("a slow Gemini keeps the reply pending, then completes it", async () => {
    const { me, room, tag, replyId } = await promptWithFault("slow", { times: 1, ms: 1500 });
    await new Promise((r) => setTimeout(r, 500));
    expect((await getMessage(me, room.id, replyId)).status).toBe("pending");
    const reply = await settledReply(me, room.id, replyId);
    expect(reply.status).toBe("complete");
    expect(reply.content).toContain(tag);
  });
});

describe("duplicate QStash deliveries", () => {
  it("a message delivered twice calls back twice but completes the reply once", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const tag = marker("dup");
    await control("qstash/duplicate", { match: tag });
    const res = await sendPrompt(me, room.id, tag);
    expect(res.status).toBe(202);
    await flushQStash(tag);
    const reply = await settledReply(me, room.id, res.body.reply.id);
    expect(reply.status).toBe("complete");

    const [published] = await qstashMessages(tag, "publish");
    expect(published?.attempts.map((a) => a.duplicate)).toEqual([false, true]);
    expect((await geminiCalls(tag)).length).toBe(2);
    const callbacks = await qstashMessages(tag, "callback");
    expect(callbacks).toHaveLength(2);
    for (const cb of callbacks) expect(cb.attempts.at(-1)?.status).toBe(200);

    const again = await getMessage(me, room.id, res.body.reply.id);
    expect(again.completed_at).toBe(reply.completed_at);
    const detail = await sendPrompt(me, room.id, marker("after-dup"));
    expect(detail.headers.get("ratelimit-remaining")).toBe("3");
  });
});
