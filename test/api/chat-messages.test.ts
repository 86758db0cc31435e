import { beforeAll, describe, expect, it } from "vitest";
import { call, control, testEnv, waitFor } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  callbackBody,
  createProSession,
  flushQStash,
  geminiCalls,
  marker,
  newChatroom,
  postCallback,
  qstashMessages,
  remainingAfterOnePrompt,
  sendPrompt,
  settledReply,
  signQStash,
  sql,
} from "./chat-support.ts";

let session: TestSession;
beforeAll(async () => {
  session = await createSession();
});

describe("POST /chatroom/:id/message (queued through QStash)", () => {
  it("saves the prompt, answers 202 with a pending reply, and QStash's callback completes it", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = `Tell me about ${marker("happy")}`;
    const res = await sendPrompt(me, room.id, content);

    expect(res.status).toBe(202);
    expect(res.body.message).toMatchObject({
      chatroom_id: room.id,
      role: "user",
      content,
      status: "complete",
      error: null,
      usage: null,
    });
    expect(res.body.reply).toMatchObject({
      chatroom_id: room.id,
      role: "model",
      content: "",
      status: "pending",
      error: null,
      usage: null,
      completed_at: null,
    });
    expect(res.headers.get("location")).toBe(`/chatroom/${room.id}/messages/${res.body.reply.id}`);
    expect(res.headers.get("ratelimit-limit")).toBe("5");
    expect(res.headers.get("ratelimit-remaining")).toBe("4");
    const reset = Number(res.headers.get("ratelimit-reset"));
    const untilMidnight = Math.ceil(
      (Math.ceil(Date.now() / 86_400_000) * 86_400_000 - Date.now()) / 1000,
    );
    expect(Math.abs(reset - untilMidnight)).toBeLessThanOrEqual(2);

    const reply = await settledReply(me, room.id, res.body.reply.id);
    expect(reply.status).toBe("complete");
    expect(reply.content).toContain("local Gemini");
    expect(reply.content).toContain(content);
    // The stand-in thinks 4 tokens at the Basic default level LOW; thinking is in the total.
    expect(reply.usage).toEqual({
      prompt_tokens: expect.any(Number),
      reply_tokens: expect.any(Number),
      thought_tokens: 4,
      cached_tokens: 0,
      total_tokens: expect.any(Number),
      model: "gemini-3.8-flash",
    });
    const usage = reply.usage as NonNullable<typeof reply.usage>;
    expect(usage.reply_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.reply_tokens + 4);
    expect(reply.finish_reason).toBe("STOP");
    expect(reply.completed_at).not.toBeNull();

    const calls = await geminiCalls(content);
    expect(calls.map((c) => [c.method, c.status])).toEqual([["generateContent", 200]]);
  });

  it("hands QStash a Gemini generateContent request with the key forwarded and redacted", async () => {
    const room = await newChatroom(session);
    const content = marker("wire");
    const res = await sendPrompt(session, room.id, content);
    expect(res.status).toBe(202);
    const replyId = res.body.reply.id as string;
    await flushQStash(content);

    const [published] = await qstashMessages(content, "publish");
    expect(published?.url).toBe(
      `${testEnv.GEMINI_BASE_URL}/v1beta/models/gemini-3.8-flash:generateContent`,
    );
    expect(published?.deduplication_id).toBe(replyId);
    expect(published?.max_retries).toBe(3);
    // Upstash-Timeout fits the longest allowed generation (GEMINI_TIMEOUT_SECONDS).
    expect(published?.timeout_ms).toBe(300_000);
    const keyHeader = Object.entries(published?.header ?? {}).find(
      ([name]) => name.toLowerCase() === "x-goog-api-key",
    );
    expect(keyHeader?.[1]).toEqual([expect.stringMatching(/^REDACTED:[0-9a-f]{64}$/)]);
    expect(JSON.stringify(published?.header)).not.toContain(testEnv.GEMINI_API_KEY);
    const body = JSON.parse(published?.body ?? "{}");
    expect(body.systemInstruction.parts[0].text).toEqual(expect.any(String));
    expect(body.contents).toEqual([{ role: "user", parts: [{ text: content }] }]);
    // Bounded cost: the Basic output bound and the one thinking field a 3.x model takes.
    expect(body.generationConfig).toEqual({
      maxOutputTokens: 2048,
      thinkingConfig: { thinkingLevel: "LOW" },
    });

    const callbacks = await qstashMessages(content, "callback");
    expect(callbacks.map((c) => c.url)).toEqual([
      `${testEnv.APP_URL}/webhook/qstash/reply?reply_id=${replyId}`,
    ]);
    // Delivered once; a callback that outran the commit of its reply row gets 404 and is retried.
    const statuses = callbacks[0]?.attempts.map((a) => a.status) ?? [];
    expect(statuses.at(-1)).toBe(200);
    expect(statuses.slice(0, -1).every((s) => s === 404)).toBe(true);

    // The QStash message id is recorded on the reply once the publish answered, in the
    // background and possibly after the callback already completed the reply.
    const jobId = await waitFor(async () => {
      const rows = await sql().query("select job_id from messages where id = $1", [replyId]);
      return rows[0]?.job_id as string | null;
    });
    expect(jobId).toBe(published?.message_id);
  });

  it("sends the conversation so far (prompts and completed replies) with the next prompt", async () => {
    const room = await newChatroom(session);
    const first = marker("first");
    const r1 = await sendPrompt(session, room.id, first);
    const reply1 = await settledReply(session, room.id, r1.body.reply.id);
    const second = marker("second");
    const r2 = await sendPrompt(session, room.id, second);
    expect(r2.status).toBe(202);
    await flushQStash(second);
    const [published] = await qstashMessages(second, "publish");
    const body = JSON.parse(published?.body ?? "{}");
    expect(body.contents).toEqual([
      { role: "user", parts: [{ text: first }] },
      { role: "model", parts: [{ text: reply1.content }] },
      { role: "user", parts: [{ text: second }] },
    ]);
  });

  it.each([
    ["no content", {}],
    ["empty content", { content: "" }],
    ["blank content", { content: " \n\t " }],
    ["4,001 characters", { content: "x".repeat(4001) }],
    ["a NUL character", { content: "a\u0000b" }],
    ["a client-chosen role", { content: "hi", role: "model" }],
    ["a client-chosen model", { content: "hi", model: "gemini-ultra" }],
  ])("refuses %s with 400 and uses no quota", async (_, body) => {
    const me = await createSession();
    const room = await newChatroom(me);
    const res = await call("POST", `/chatroom/${room.id}/message`, { token: me.token, body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(4);
  });

  it("accepts exactly 4,000 characters", async () => {
    const room = await newChatroom(session);
    const content = `${marker("long")} ${"z".repeat(4000)}`.slice(0, 4000);
    const res = await sendPrompt(session, room.id, content);
    expect(res.status).toBe(202);
    await flushQStash(content.slice(0, 20));
  });

  it("refuses a body that is not JSON with 415", async () => {
    const room = await newChatroom(session);
    const res = await call("POST", `/chatroom/${room.id}/message`, {
      token: session.token,
      rawBody: "content=hi",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).toBe(415);
  });
});

describe("bounded cost per reply (generationConfig per tier)", () => {
  it("a Pro prompt carries the Pro bounds: 8192 output tokens, thinking level MEDIUM", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const content = marker("pro-bounds");
    const res = await sendPrompt(pro, room.id, content);
    expect(res.status).toBe(202);
    await flushQStash(content);
    const [published] = await qstashMessages(content, "publish");
    expect(JSON.parse(published?.body ?? "{}").generationConfig).toEqual({
      maxOutputTokens: 8192,
      thinkingConfig: { thinkingLevel: "MEDIUM" },
    });
    const reply = await settledReply(pro, room.id, res.body.reply.id);
    expect(reply.usage?.thought_tokens).toBe(16);
  });

  it("a reply cut at MAX_TOKENS is complete, with its finish_reason", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("max-tokens");
    // No real job for this prompt: the publish fails, and the callback below is the only answer.
    await control("qstash/publish-fault", { match: content, mode: "error" });
    const res = await sendPrompt(me, room.id, content);
    const replyId = res.body.reply.id as string;
    // Answer the job ourselves, as QStash would relay a truncated Gemini answer.
    const path = `/webhook/qstash/reply?reply_id=${replyId}`;
    const body = callbackBody({
      candidates: [
        { content: { role: "model", parts: [{ text: "Cut sh" }] }, finishReason: "MAX_TOKENS" },
      ],
      usageMetadata: {
        promptTokenCount: 3,
        candidatesTokenCount: 2,
        thoughtsTokenCount: 5,
        totalTokenCount: 10,
      },
      modelVersion: "gemini-3.8-flash",
    });
    const answered = await postCallback(
      path,
      body,
      await signQStash(`${testEnv.APP_URL}${path}`, body),
    );
    expect(answered.status).toBe(200);
    const reply = await settledReply(me, room.id, replyId);
    await control("qstash/publish-fault", { match: content, mode: "none" });
    expect(reply).toMatchObject({ status: "complete", finish_reason: "MAX_TOKENS" });
    expect(reply.usage).toEqual({
      prompt_tokens: 3,
      reply_tokens: 2,
      thought_tokens: 5,
      cached_tokens: 0,
      total_tokens: 10,
      model: "gemini-3.8-flash",
    });
  });
});
