import { describe, expect, it } from "vitest";
import {
  GeminiCallError,
  generationConfigFor,
  readGenerateContentResponse,
  storableText,
} from "../../src/lib/gemini.ts";
import { parseQueueCallback, type QueueCallback } from "../../src/lib/queue.ts";
import type { ChatConfig } from "../../src/services/chat/deps.ts";
import {
  interpretCallback,
  outcomeOfStreamError,
  replyJob,
} from "../../src/services/chat/replies.ts";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

const geminiText = (text: string, finishReason = "STOP") =>
  JSON.stringify({
    candidates: [{ content: { role: "model", parts: [{ text }] }, finishReason, index: 0 }],
    usageMetadata: { promptTokenCount: 12, candidatesTokenCount: 7, totalTokenCount: 19 },
  });

const callback = (over: Partial<QueueCallback>): QueueCallback => ({
  status: 200,
  body: b64(geminiText("Hello there")),
  retried: 0,
  maxRetries: 3,
  sourceMessageId: "msg_1",
  dlqId: null,
  ...over,
});

const regular = { failureCallback: false, defaultMaxRetries: 3 };
const failure = { failureCallback: true, defaultMaxRetries: 3 };

describe("interpretCallback", () => {
  it("completes a reply from a 2xx Gemini answer with text, finish reason and usage", () => {
    expect(interpretCallback(callback({}), regular)).toEqual({
      kind: "complete",
      text: "Hello there",
      finishReason: "STOP",
      usage: {
        promptTokens: 12,
        replyTokens: 7,
        thoughtTokens: null,
        cachedTokens: null,
        totalTokens: 19,
        model: null,
      },
    });
  });

  it("joins every text part of the first candidate", () => {
    const body = JSON.stringify({
      candidates: [{ content: { parts: [{ text: "a" }, { text: "b" }] }, finishReason: "STOP" }],
    });
    const outcome = interpretCallback(callback({ body: b64(body) }), regular);
    expect(outcome).toMatchObject({ kind: "complete", text: "ab", usage: { promptTokens: null } });
  });

  it("fails with safety_blocked when Gemini stops for SAFETY", () => {
    const body = JSON.stringify({ candidates: [{ finishReason: "SAFETY", index: 0 }] });
    expect(interpretCallback(callback({ body: b64(body) }), regular)).toMatchObject({
      kind: "failed",
      error: "safety_blocked",
      finishReason: "SAFETY",
      // Nothing was produced: the prompt is refunded.
      charged: false,
    });
  });

  it("counts (does not refund) a blocked answer Gemini billed output for", () => {
    const body = JSON.stringify({
      candidates: [{ finishReason: "RECITATION", index: 0 }],
      usageMetadata: { promptTokenCount: 4, candidatesTokenCount: 0, thoughtsTokenCount: 30 },
    });
    expect(interpretCallback(callback({ body: b64(body) }), regular)).toMatchObject({
      kind: "failed",
      error: "safety_blocked",
      charged: true,
    });
  });

  it("keeps a MAX_TOKENS answer as complete, with thought tokens and the model version", () => {
    const body = JSON.stringify({
      candidates: [{ content: { parts: [{ text: "Cut" }] }, finishReason: "MAX_TOKENS" }],
      usageMetadata: {
        promptTokenCount: 4,
        candidatesTokenCount: 1,
        thoughtsTokenCount: 9,
        cachedContentTokenCount: 2,
        totalTokenCount: 14,
      },
      modelVersion: "gemini-3.8-flash-001",
    });
    expect(interpretCallback(callback({ body: b64(body) }), regular)).toEqual({
      kind: "complete",
      text: "Cut",
      finishReason: "MAX_TOKENS",
      usage: {
        promptTokens: 4,
        replyTokens: 1,
        thoughtTokens: 9,
        cachedTokens: 2,
        totalTokens: 14,
        model: "gemini-3.8-flash-001",
      },
    });
  });

  it("fails with safety_blocked when the prompt itself is blocked", () => {
    const body = JSON.stringify({ promptFeedback: { blockReason: "PROHIBITED_CONTENT" } });
    expect(interpretCallback(callback({ body: b64(body) }), regular)).toMatchObject({
      kind: "failed",
      error: "safety_blocked",
    });
  });

  it.each([
    ["truncated JSON", b64('{"candidates": [{"content": {"parts": [{"text": "Echo')],
    ["base64 of non-JSON", b64("<html>bad gateway</html>")],
    ["not base64", "%%%not-base64%%%"],
    ["an empty body", ""],
    ["JSON that is not a Gemini answer", b64('{"hello":"world"}')],
    ["an answer without text", b64('{"candidates":[],"usageMetadata":{"promptTokenCount":3}}')],
  ])("fails with upstream_error on a 2xx with %s (QStash will not retry a 2xx)", (_, body) => {
    expect(interpretCallback(callback({ body }), regular)).toMatchObject({
      kind: "failed",
      error: "upstream_error",
    });
  });

  it("keeps the reply pending while QStash still has retries left", () => {
    expect(interpretCallback(callback({ status: 500, retried: 0 }), regular)).toEqual({
      kind: "retrying",
    });
    expect(interpretCallback(callback({ status: 429, retried: 2 }), regular)).toEqual({
      kind: "retrying",
    });
  });

  it("fails on the last attempt of the regular callback (retried == maxRetries)", () => {
    expect(interpretCallback(callback({ status: 500, retried: 3 }), regular)).toMatchObject({
      kind: "failed",
      error: "upstream_error",
    });
    expect(interpretCallback(callback({ status: 429, retried: 3 }), regular)).toMatchObject({
      kind: "failed",
      error: "rate_limited",
    });
  });

  it("treats every failure callback as final, whatever its counters say", () => {
    expect(
      interpretCallback(callback({ status: 503, retried: 0, dlqId: "dlq_1" }), failure),
    ).toMatchObject({ kind: "failed", error: "upstream_error" });
  });

  it("maps a destination that never answered (status 0) or a gateway timeout to timeout", () => {
    expect(interpretCallback(callback({ status: 0 }), failure)).toMatchObject({ error: "timeout" });
    expect(interpretCallback(callback({ status: 504 }), failure)).toMatchObject({
      error: "timeout",
    });
  });

  it("uses the configured retries when the callback omits maxRetries", () => {
    const cb = callback({ status: 500, retried: 1, maxRetries: null });
    expect(interpretCallback(cb, { failureCallback: false, defaultMaxRetries: 1 })).toMatchObject({
      kind: "failed",
    });
    expect(interpretCallback(cb, { failureCallback: false, defaultMaxRetries: 3 })).toEqual({
      kind: "retrying",
    });
  });
});

describe("parseQueueCallback", () => {
  it("reads QStash's callback body, accepting numbers sent as strings", () => {
    const parsed = parseQueueCallback(
      JSON.stringify({ status: "500", body: "e30=", retried: "1", maxRetries: 3, dlqId: "d" }),
    );
    expect(parsed).toEqual({
      status: 500,
      body: "e30=",
      retried: 1,
      maxRetries: 3,
      sourceMessageId: null,
      dlqId: "d",
    });
  });

  it.each(["", "not json", "[]", "null", '{"body":"e30="}', '{"status":"abc"}'])(
    "rejects %j",
    (raw) => {
      expect(parseQueueCallback(raw)).toBeNull();
    },
  );
});

describe("readGenerateContentResponse", () => {
  it("ignores thought parts", () => {
    const answer = readGenerateContentResponse({
      candidates: [{ content: { parts: [{ text: "thinking", thought: true }, { text: "ok" }] } }],
    });
    expect(answer).toMatchObject({ kind: "text", text: "ok" });
  });

  it("returns null for something that is not a response", () => {
    expect(readGenerateContentResponse("text")).toBeNull();
    expect(readGenerateContentResponse({ error: { code: 500 } })).toBeNull();
  });
});

describe("outcomeOfStreamError", () => {
  it("maps the streaming call's failures to reply error codes", () => {
    expect(outcomeOfStreamError(new GeminiCallError("x", 429, false))).toMatchObject({
      error: "rate_limited",
    });
    expect(outcomeOfStreamError(new GeminiCallError("x", 500, false))).toMatchObject({
      error: "upstream_error",
    });
    expect(outcomeOfStreamError(new GeminiCallError("x", null, true))).toMatchObject({
      error: "timeout",
    });
    expect(outcomeOfStreamError(new Error("boom"))).toMatchObject({ error: "upstream_error" });
  });
});

describe("replyJob", () => {
  const config: ChatConfig = {
    appUrl: "https://chat.example.com/",
    geminiBaseUrl: "https://generativelanguage.googleapis.com",
    geminiModel: "gemini-3.8-flash",
    geminiApiKey: "secret-key",
    systemPrompt: "Be brief.",
    historyMaxMessages: 20,
    historyMaxChars: 16000,
    replyDeadlineSeconds: 3600,
    qstashRetries: 3,
    replyBudgets: {
      basic: { maxOutputTokens: 2048, thinkingBudget: 512, thinkingLevel: "LOW" },
      pro: { maxOutputTokens: 8192, thinkingBudget: 2048, thinkingLevel: "MEDIUM" },
    },
    geminiTimeoutSeconds: 300,
    maxPendingReplies: { basic: 1, pro: 3 },
    streamGraceMs: 20_000,
  };

  it("sends Gemini's generateContent with a forwarded, redacted API key and our callbacks", () => {
    const replyId = "01936f4e-1c2d-7b3a-9f00-123456789abc";
    const job = replyJob(config, replyId, { model: "gemini-3.8-flash", body: { contents: [] } });
    expect(job).toEqual({
      url: "https://generativelanguage.googleapis.com/v1beta/models/gemini-3.8-flash:generateContent",
      body: { contents: [] },
      forwardHeaders: { "x-goog-api-key": "secret-key" },
      redactHeaders: ["x-goog-api-key"],
      deduplicationId: replyId,
      retries: 3,
      timeoutSeconds: 300,
      callback: `https://chat.example.com/webhook/qstash/reply?reply_id=${replyId}`,
      failureCallback: `https://chat.example.com/webhook/qstash/reply-failed?reply_id=${replyId}`,
    });
  });
});

describe("generationConfigFor", () => {
  const budget = { maxOutputTokens: 1000, thinkingBudget: 200, thinkingLevel: "LOW" } as const;
  it("bounds output and thinking with the one field each model family takes, never both", () => {
    expect(generationConfigFor("gemini-3.8-flash", budget)).toEqual({
      maxOutputTokens: 1000,
      thinkingConfig: { thinkingLevel: "LOW" },
    });
    expect(generationConfigFor("gemini-2.5-flash-lite", budget)).toEqual({
      maxOutputTokens: 1000,
      thinkingConfig: { thinkingBudget: 200 },
    });
    expect(generationConfigFor("gemma-3-27b-it", budget)).toEqual({ maxOutputTokens: 1000 });
  });
});

describe("storableText", () => {
  it("drops NUL and replaces lone surrogates, keeping pairs and everything else", () => {
    expect(storableText("a\u0000b")).toBe("ab");
    expect(storableText("x\uD800y\uDFFFz")).toBe("x\uFFFDy\uFFFDz");
    expect(storableText("end\uD83D")).toBe("end\uFFFD");
    expect(storableText("emoji \uD83D\uDE00 ok, é, 中文")).toBe("emoji \uD83D\uDE00 ok, é, 中文");
  });

  it("applies to Gemini's answer, and an answer of only NULs is empty", () => {
    const read = (text: string) =>
      readGenerateContentResponse(JSON.parse(geminiText(text)) as unknown);
    expect(read("hi\u0000 there")).toMatchObject({ kind: "text", text: "hi there" });
    expect(read("\u0000\u0000")).toMatchObject({ kind: "empty" });
  });
});
