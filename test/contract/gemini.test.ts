import { randomUUID } from "node:crypto";
import { ApiError, type GenerateContentResponse, GoogleGenAI, ThinkingLevel } from "@google/genai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { createGeminiService } from "../../local/gemini/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";
import {
  buildGenerateContentBody,
  createGeminiStreamer,
  GeminiCallError,
  generationConfigFor,
  readGenerateContentResponse,
  retryDelaySeconds,
} from "../../src/lib/gemini.ts";

const MODEL = "gemini-3.8-flash";
const SUFFIX = "This reply comes from the local Gemini stand-in.";

let cloud: LocalCloud;
let ai: GoogleGenAI;

function marker(): string {
  return `m-${randomUUID()}`;
}

function clientWithKey(apiKey: string): GoogleGenAI {
  return new GoogleGenAI({ apiKey, httpOptions: { baseUrl: `${cloud.url}/gemini` } });
}

async function control(path: string, init?: { method?: string; body?: unknown }) {
  const res = await fetch(`${cloud.url}/_control/gemini${path}`, {
    method: init?.method ?? "GET",
    headers: { "Content-Type": "application/json" },
    body: init?.body === undefined ? undefined : JSON.stringify(init.body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function addFault(fault: Record<string, unknown>): Promise<void> {
  const res = await control("/faults", { method: "POST", body: fault });
  expect(res.status).toBe(201);
}

interface CallSeen {
  model: string;
  method: string;
  prompt: string;
  generationConfig: Record<string, unknown> | null;
  status: number;
  fault: string | null;
}

async function callsFor(match: string): Promise<CallSeen[]> {
  const res = await control(`/calls?match=${encodeURIComponent(match)}`);
  return res.body.calls as CallSeen[];
}

async function rawGenerate(
  text: string,
  opts: { key?: string | null; query?: string } = {},
): Promise<Response> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (opts.key !== null) headers["x-goog-api-key"] = opts.key ?? TEST_KEYS.geminiApiKey;
  return fetch(`${cloud.url}/gemini/v1beta/models/${MODEL}:generateContent${opts.query ?? ""}`, {
    method: "POST",
    headers,
    body: JSON.stringify({ contents: [{ role: "user", parts: [{ text }] }] }),
  });
}

async function rejection(promise: Promise<unknown>): Promise<ApiError> {
  const err = await promise.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

async function collect(stream: AsyncGenerator<GenerateContentResponse>) {
  const chunks: GenerateContentResponse[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

beforeAll(async () => {
  cloud = await startLocalCloud(testCloudConfig(), [createGeminiService]);
  ai = clientWithKey(TEST_KEYS.geminiApiKey);
});

afterAll(async () => {
  await cloud?.close();
});

describe("local Gemini generateContent", () => {
  it("echoes the last user turn with word-count usage and records the call", async () => {
    const m = marker();
    const res = await ai.models.generateContent({
      model: MODEL,
      contents: [
        { role: "user", parts: [{ text: "first question" }] },
        { role: "model", parts: [{ text: "an answer" }] },
        { role: "user", parts: [{ text: `hello ${m}` }] },
      ],
      config: { systemInstruction: "be brief", temperature: 0.2, maxOutputTokens: 500 },
    });

    expect(res.text).toBe(`Echo: hello ${m}\n\n${SUFFIX}`);
    expect(res.candidates?.[0]?.finishReason).toBe("STOP");
    expect(res.candidates?.[0]?.content?.role).toBe("model");
    // "be brief" + "first question" + "an answer" + "hello <m>" = 8 words.
    expect(res.usageMetadata?.promptTokenCount).toBe(8);
    expect(res.usageMetadata?.candidatesTokenCount).toBe(11);
    expect(res.usageMetadata?.totalTokenCount).toBe(19);
    expect(res.modelVersion).toBe(MODEL);
    expect(res.responseId).toMatch(/^[\w-]{10,}$/);

    const calls = await callsFor(m);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ model: MODEL, method: "generateContent", status: 200 });
    expect(calls[0]?.prompt).toBe(`be brief\nfirst question\nan answer\nhello ${m}`);
  });

  it("serves v1beta too, the path the QStash chain posts to", async () => {
    const m = marker();
    const beta = new GoogleGenAI({
      apiKey: TEST_KEYS.geminiApiKey,
      httpOptions: { baseUrl: `${cloud.url}/gemini`, apiVersion: "v1beta" },
    });
    const res = await beta.models.generateContent({ model: MODEL, contents: m });
    expect(res.text).toBe(`Echo: ${m}\n\n${SUFFIX}`);
  });

  it("gives the same text for the same prompt", async () => {
    const m = marker();
    const a = await ai.models.generateContent({ model: MODEL, contents: `same ${m}` });
    const b = await ai.models.generateContent({ model: MODEL, contents: `same ${m}` });
    expect(a.text).toBe(`Echo: same ${m}\n\n${SUFFIX}`);
    expect(b.text).toBe(a.text);
  });

  it("cuts the reply at maxOutputTokens and reports MAX_TOKENS", async () => {
    const m = marker();
    const res = await ai.models.generateContent({
      model: MODEL,
      contents: `long ${m}`,
      config: { maxOutputTokens: 3 },
    });
    expect(res.text).toBe(`Echo: long ${m}`);
    expect(res.candidates?.[0]?.finishReason).toBe("MAX_TOKENS");
    expect(res.usageMetadata?.candidatesTokenCount).toBe(3);
  });

  it("streams the same text over several SSE chunks, the last carrying finishReason and usage", async () => {
    const m = marker();
    const stream = await ai.models.generateContentStream({
      model: MODEL,
      contents: `stream this please ${m}`,
    });
    const chunks = await collect(stream);

    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks.map((c) => c.text).join("")).toBe(`Echo: stream this please ${m}\n\n${SUFFIX}`);
    const last = chunks[chunks.length - 1];
    expect(last?.candidates?.[0]?.finishReason).toBe("STOP");
    expect(last?.usageMetadata?.promptTokenCount).toBe(4);
    expect(last?.usageMetadata?.candidatesTokenCount).toBe(13);
    for (const early of chunks.slice(0, -1)) {
      expect(early.candidates?.[0]?.finishReason).toBeUndefined();
    }
    const calls = await callsFor(m);
    expect(calls.map((c) => [c.method, c.status])).toEqual([["streamGenerateContent", 200]]);
  });
});

describe("local Gemini generationConfig (what the Worker sends)", () => {
  const basic = { maxOutputTokens: 2048, thinkingBudget: 512, thinkingLevel: "LOW" } as const;

  async function rawRequest(model: string, body: unknown, method = "generateContent") {
    const sse = method === "streamGenerateContent" ? "?alt=sse" : "";
    return fetch(`${cloud.url}/gemini/v1beta/models/${model}:${method}${sse}`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "x-goog-api-key": TEST_KEYS.geminiApiKey },
      body: JSON.stringify(body),
    });
  }

  it("records the model and generationConfig of the Worker's REST body, and thinks within it", async () => {
    const m = marker();
    const body = buildGenerateContentBody(
      [{ role: "user", text: `bounded ${m}` }],
      "be brief",
      generationConfigFor(MODEL, basic),
    );
    const res = await rawRequest(MODEL, body);
    expect(res.status).toBe(200);
    const json = (await res.json()) as Record<string, unknown>;
    const answer = readGenerateContentResponse(json);
    expect(answer).toMatchObject({
      kind: "text",
      finishReason: "STOP",
      usage: { thoughtTokens: 4, model: MODEL },
    });
    // thoughtsTokenCount is billed output and counted in the total.
    const u = answer?.usage;
    expect(u?.totalTokens).toBe((u?.promptTokens ?? 0) + (u?.replyTokens ?? 0) + 4);

    const [call] = await callsFor(m);
    expect(call).toMatchObject({
      model: MODEL,
      generationConfig: { maxOutputTokens: 2048, thinkingConfig: { thinkingLevel: "LOW" } },
    });
  });

  it("takes the SDK's flat config the same way (thinkingLevel for 3.x)", async () => {
    const m = marker();
    const res = await ai.models.generateContent({
      model: MODEL,
      contents: `sdk ${m}`,
      config: { maxOutputTokens: 100, thinkingConfig: { thinkingLevel: ThinkingLevel.HIGH } },
    });
    expect(res.usageMetadata?.thoughtsTokenCount).toBe(64);
    expect(res.usageMetadata?.totalTokenCount).toBe(
      (res.usageMetadata?.promptTokenCount ?? 0) +
        (res.usageMetadata?.candidatesTokenCount ?? 0) +
        64,
    );
    const [call] = await callsFor(m);
    expect(call?.generationConfig).toEqual({
      maxOutputTokens: 100,
      thinkingConfig: { thinkingLevel: "HIGH" },
    });
  });

  it("counts thinking against maxOutputTokens: MAX_TOKENS cuts the visible text", async () => {
    const m = marker();
    const body = buildGenerateContentBody(
      [{ role: "user", text: `tight ${m}` }],
      "",
      generationConfigFor(MODEL, { ...basic, maxOutputTokens: 7 }),
    );
    const res = await rawRequest(MODEL, body);
    const answer = readGenerateContentResponse(await res.json());
    // 7 tokens - 4 thinking = 3 words of text.
    expect(answer).toMatchObject({
      kind: "text",
      text: `Echo: tight ${m}`,
      finishReason: "MAX_TOKENS",
    });
    expect(answer?.usage).toMatchObject({ replyTokens: 3, thoughtTokens: 4 });
  });

  it("answers 400 to both thinking fields at once, as Gemini does", async () => {
    const m = marker();
    const res = await rawRequest(MODEL, {
      contents: [{ role: "user", parts: [{ text: m }] }],
      generationConfig: {
        maxOutputTokens: 100,
        thinkingConfig: { thinkingBudget: 100, thinkingLevel: "LOW" },
      },
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 400, status: "INVALID_ARGUMENT" } });
  });

  it("answers 400 to a thinkingLevel on a 2.5 model and to a level the model does not take", async () => {
    const contents = [{ role: "user", parts: [{ text: marker() }] }];
    const onBudgetModel = await rawRequest("gemini-2.5-flash-lite", {
      contents,
      generationConfig: { maxOutputTokens: 100, thinkingConfig: { thinkingLevel: "LOW" } },
    });
    expect(onBudgetModel.status).toBe(400);
    const minimal = await rawRequest(MODEL, {
      contents,
      generationConfig: { maxOutputTokens: 100, thinkingConfig: { thinkingLevel: "MINIMAL" } },
    });
    expect(minimal.status).toBe(400);
    const budget = await rawRequest("gemini-2.5-flash-lite", {
      contents,
      generationConfig: generationConfigFor("gemini-2.5-flash-lite", basic),
    });
    expect(budget.status).toBe(200);
  });

  it("answers 404 for a model Google has shut down", async () => {
    const res = await rawRequest("gemini-2.5-flash", {
      contents: [{ role: "user", parts: [{ text: marker() }] }],
    });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { code: 404, status: "NOT_FOUND" } });
  });

  it("streams the Worker's body with thoughtsTokenCount in the last chunk's usage", async () => {
    const m = marker();
    const streamer = createGeminiStreamer({
      apiKey: TEST_KEYS.geminiApiKey,
      baseUrl: `${cloud.url}/gemini`,
      model: MODEL,
      timeoutMs: 5000,
    });
    const body = buildGenerateContentBody(
      [{ role: "user", text: `streamed ${m}` }],
      "",
      generationConfigFor(MODEL, basic),
    );
    const events = [];
    for await (const e of streamer.stream(body)) events.push(e);
    const end = events.at(-1);
    expect(end).toMatchObject({
      type: "end",
      answer: { kind: "text", finishReason: "STOP", usage: { thoughtTokens: 4, model: MODEL } },
    });
    const [call] = await callsFor(m);
    expect(call).toMatchObject({
      method: "streamGenerateContent",
      generationConfig: { maxOutputTokens: 2048, thinkingConfig: { thinkingLevel: "LOW" } },
    });
  });
});

describe("local Gemini vendor failures, through the Worker's streamer", () => {
  const streamer = () =>
    createGeminiStreamer({
      apiKey: TEST_KEYS.geminiApiKey,
      baseUrl: `${cloud.url}/gemini`,
      model: MODEL,
      timeoutMs: 5000,
    });

  async function run(text: string) {
    const deltas: string[] = [];
    let end: unknown = null;
    let error: unknown = null;
    try {
      for await (const e of streamer().stream({
        contents: [{ role: "user", parts: [{ text }] }],
      })) {
        if (e.type === "delta") deltas.push(e.text);
        else end = e.answer;
      }
    } catch (err) {
      error = err;
    }
    return { deltas, end, error };
  }

  it("blocked prompt: promptFeedback.blockReason and no candidates (SDK and REST)", async () => {
    const m = marker();
    await addFault({ match: m, kind: "blocked_prompt", times: 2 });
    const res = await ai.models.generateContent({ model: MODEL, contents: m });
    expect(res.candidates).toBeUndefined();
    expect(res.promptFeedback?.blockReason).toBe("SAFETY");
    const raw = await rawGenerate(m);
    expect(readGenerateContentResponse(await raw.json())).toMatchObject({
      kind: "blocked",
      finishReason: "SAFETY",
    });
  });

  it("blocked prompt on a stream ends as blocked, with no text", async () => {
    const m = marker();
    await addFault({ match: m, kind: "blocked_prompt", times: 1 });
    const r = await run(m);
    expect(r.error).toBeNull();
    expect(r.deltas).toEqual([]);
    expect(r.end).toMatchObject({ kind: "blocked", finishReason: "SAFETY" });
  });

  it("an error object inside a 200 stream after text: the SDK raises it, after the text", async () => {
    const m = marker();
    await addFault({ match: m, kind: "stream_error", times: 2 });
    const stream = await ai.models.generateContentStream({
      model: MODEL,
      contents: `a long enough answer ${m}`,
    });
    const seen: string[] = [];
    const err = await (async () => {
      try {
        for await (const c of stream) seen.push(c.text ?? "");
      } catch (e) {
        return e;
      }
      return null;
    })();
    expect(seen.join("")).not.toBe("");
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(500);

    const r = await run(`a long enough answer ${m}`);
    expect(r.deltas.join("")).toMatch(/^Echo: a long/);
    expect(r.error).toBeInstanceOf(GeminiCallError);
    expect((r.error as GeminiCallError).status).toBe(500);
  });

  it("a stream that ends without a finishReason after text is not complete", async () => {
    const m = marker();
    await addFault({ match: m, kind: "stream_cut", times: 1 });
    const r = await run(`cut me off please ${m}`);
    expect(r.deltas.join("")).toMatch(/^Echo: cut/);
    expect(r.end).toBeNull();
    expect(r.error).toBeInstanceOf(GeminiCallError);
  });

  it("a late SAFETY stop after text ends as blocked; the text was already delivered", async () => {
    const m = marker();
    await addFault({ match: m, kind: "late_safety", times: 1 });
    const r = await run(`say something risky ${m}`);
    expect(r.deltas.join("")).toMatch(/^Echo: say/);
    expect(r.end).toMatchObject({ kind: "blocked", finishReason: "SAFETY" });
  });

  it("a 429 on the stream carries RetryInfo's wait into the call error", async () => {
    const m = marker();
    await addFault({ match: m, kind: "rate_limit", times: 1, retry_after: 2.5 });
    const r = await run(m);
    expect(r.error).toBeInstanceOf(GeminiCallError);
    expect(r.error).toMatchObject({ status: 429, retryAfterSeconds: 3 });
  });
});

describe("local Gemini API key", () => {
  it("rejects a wrong key with 400 INVALID_ARGUMENT API_KEY_INVALID, as the real API does", async () => {
    const m = marker();
    const err = await rejection(
      clientWithKey("not-the-key").models.generateContent({ model: MODEL, contents: m }),
    );
    expect(err.status).toBe(400);
    const body = JSON.parse(err.message) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: 400, status: "INVALID_ARGUMENT" });
    expect(JSON.stringify(body.error.details)).toContain("API_KEY_INVALID");
    expect((await callsFor(m)).map((c) => c.status)).toEqual([400]);
  });

  it("rejects a missing key with 403 PERMISSION_DENIED", async () => {
    const res = await rawGenerate(marker(), { key: null });
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: 403, status: "PERMISSION_DENIED" } });
  });

  it("accepts the key as the key query parameter", async () => {
    const m = marker();
    const res = await rawGenerate(m, {
      key: null,
      query: `?key=${encodeURIComponent(TEST_KEYS.geminiApiKey)}`,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as {
      candidates: { content: { parts: { text: string }[] } }[];
    };
    expect(body.candidates[0]?.content.parts[0]?.text).toBe(`Echo: ${m}\n\n${SUFFIX}`);
  });

  it("answers 404 NOT_FOUND for a model that does not exist", async () => {
    const err = await rejection(
      ai.models.generateContent({ model: "no-such-model", contents: "x" }),
    );
    expect(err.status).toBe(404);
    expect(err.message).toContain("NOT_FOUND");
  });
});

describe("local Gemini faults", () => {
  it("rate_limit answers 429 RESOURCE_EXHAUSTED as the real API: no Retry-After, the wait only in RetryInfo", async () => {
    const m = marker();
    await addFault({ match: m, kind: "rate_limit", times: 2 });

    const err = await rejection(ai.models.generateContent({ model: MODEL, contents: m }));
    expect(err.status).toBe(429);
    const body = JSON.parse(err.message) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: 429, status: "RESOURCE_EXHAUSTED" });
    const details = body.error.details as Record<string, unknown>[];
    expect(details.map((d) => d["@type"])).toEqual([
      "type.googleapis.com/google.rpc.QuotaFailure",
      "type.googleapis.com/google.rpc.Help",
      "type.googleapis.com/google.rpc.RetryInfo",
    ]);
    expect(details[2]).toMatchObject({ retryDelay: "45.837906927s" });
    // What the Worker reads from it: whole seconds, rounded up.
    expect(retryDelaySeconds(body)).toBe(46);

    const raw = await rawGenerate(m);
    expect(raw.status).toBe(429);
    expect(raw.headers.get("retry-after")).toBeNull();

    const ok = await ai.models.generateContent({ model: MODEL, contents: m });
    expect(ok.text).toBe(`Echo: ${m}\n\n${SUFFIX}`);
    expect((await callsFor(m)).map((c) => [c.status, c.fault])).toEqual([
      [429, "rate_limit"],
      [429, "rate_limit"],
      [200, null],
    ]);
  });

  it("applies a fault only to prompts containing its match", async () => {
    const hit = marker();
    const miss = marker();
    await addFault({ match: hit, kind: "server_error" });
    const ok = await ai.models.generateContent({ model: MODEL, contents: miss });
    expect(ok.text).toBe(`Echo: ${miss}\n\n${SUFFIX}`);
    const err = await rejection(ai.models.generateContent({ model: MODEL, contents: `x ${hit}` }));
    expect(err.status).toBe(500);
  });

  it("server_error answers 500 INTERNAL until the fault is deleted", async () => {
    const m = marker();
    await addFault({ match: m, kind: "server_error" });
    for (let i = 0; i < 2; i++) {
      const err = await rejection(ai.models.generateContent({ model: MODEL, contents: m }));
      expect(err.status).toBe(500);
      expect(JSON.parse(err.message)).toMatchObject({ error: { code: 500, status: "INTERNAL" } });
    }
    const del = await control(`/faults?match=${encodeURIComponent(m)}`, { method: "DELETE" });
    expect(del.body.deleted).toBe(1);
    const ok = await ai.models.generateContent({ model: MODEL, contents: m });
    expect(ok.candidates?.[0]?.finishReason).toBe("STOP");
  });

  it("unavailable answers 503 UNAVAILABLE, also on the streaming endpoint", async () => {
    const m = marker();
    await addFault({ match: m, kind: "unavailable", times: 2 });
    const err = await rejection(ai.models.generateContent({ model: MODEL, contents: m }));
    expect(err.status).toBe(503);
    expect(JSON.parse(err.message)).toMatchObject({ error: { code: 503, status: "UNAVAILABLE" } });
    const streamErr = await rejection(
      ai.models.generateContentStream({ model: MODEL, contents: m }).then(collect),
    );
    expect(streamErr.status).toBe(503);
  });

  it("slow delays the answer by `ms` and then answers normally", async () => {
    const m = marker();
    await addFault({ match: m, kind: "slow", ms: 400, times: 1 });
    const started = performance.now();
    const res = await ai.models.generateContent({ model: MODEL, contents: m });
    expect(performance.now() - started).toBeGreaterThanOrEqual(390);
    expect(res.text).toBe(`Echo: ${m}\n\n${SUFFIX}`);
    await ai.models.generateContent({ model: MODEL, contents: m });
    expect((await callsFor(m)).map((c) => c.fault)).toEqual(["slow", null]);
  });

  it("safety answers 200 with finishReason SAFETY and no text", async () => {
    const m = marker();
    await addFault({ match: m, kind: "safety", times: 1 });
    const res = await ai.models.generateContent({ model: MODEL, contents: m });
    expect(res.candidates?.[0]?.finishReason).toBe("SAFETY");
    expect(res.candidates?.[0]?.content).toBeUndefined();
    expect(res.text).toBeUndefined();
    expect(res.usageMetadata?.candidatesTokenCount).toBeUndefined();
  });

  it("safety on a stream yields one SAFETY chunk", async () => {
    const m = marker();
    await addFault({ match: m, kind: "safety", times: 1 });
    const chunks = await collect(
      await ai.models.generateContentStream({ model: MODEL, contents: m }),
    );
    expect(chunks).toHaveLength(1);
    expect(chunks[0]?.candidates?.[0]?.finishReason).toBe("SAFETY");
  });

  it("malformed answers 200 with a body that is not JSON, which the SDK cannot parse", async () => {
    const m = marker();
    await addFault({ match: m, kind: "malformed", times: 1 });
    const err = await ai.models.generateContent({ model: MODEL, contents: m }).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(SyntaxError);
    expect((await callsFor(m)).map((c) => [c.status, c.fault])).toEqual([[200, "malformed"]]);
  });

  it("empty answers 200 without candidates", async () => {
    const m = marker();
    await addFault({ match: m, kind: "empty", times: 1 });
    const res = await ai.models.generateContent({ model: MODEL, contents: m });
    expect(res.candidates).toBeUndefined();
    expect(res.text).toBeUndefined();
    expect(res.usageMetadata?.promptTokenCount).toBe(1);
  });

  it("rejects an unknown fault kind", async () => {
    const res = await control("/faults", { method: "POST", body: { match: "x", kind: "nope" } });
    expect(res.status).toBe(400);
  });
});

describe("local Gemini call record cursor", () => {
  it("reads only the calls after `since`, with the cursor for the next read", async () => {
    const m = marker();
    const { body: before } = await control(`/calls?since=0&match=${m}`);
    const cursor = before.next_since as number;
    await ai.models.generateContent({ model: MODEL, contents: `${m} one` });
    await ai.models.generateContent({ model: MODEL, contents: `${m} two` });
    const first = await control(`/calls?since=${cursor}&match=${encodeURIComponent(m)}`);
    const calls = first.body.calls as (CallSeen & { seq: number })[];
    expect(calls.map((c) => c.prompt)).toEqual([`${m} one`, `${m} two`]);
    expect(calls[1]?.seq).toBe((calls[0]?.seq ?? 0) + 1);
    expect(first.body.next_since).toBe(calls[1]?.seq);
    expect(first.body.lost).toBe(0);

    await ai.models.generateContent({ model: MODEL, contents: `${m} three` });
    const next = await control(`/calls?since=${first.body.next_since}&match=${m}`);
    expect((next.body.calls as CallSeen[]).map((c) => c.prompt)).toEqual([`${m} three`]);
  });

  it("says how many calls after `since` the full record dropped before they were read", async () => {
    const small = await startLocalCloud(testCloudConfig(), [
      (config) => createGeminiService(config, { maxCallsKept: 3 }),
    ]);
    try {
      const gen = new GoogleGenAI({
        apiKey: TEST_KEYS.geminiApiKey,
        httpOptions: { baseUrl: `${small.url}/gemini` },
      });
      const read = async (since: number) => {
        const res = await fetch(`${small.url}/_control/gemini/calls?since=${since}`);
        return (await res.json()) as { calls: { seq: number }[]; next_since: number; lost: number };
      };
      for (let i = 1; i <= 3; i++)
        await gen.models.generateContent({ model: MODEL, contents: `c${i}` });
      const kept = await read(0);
      expect(kept.calls.map((c) => c.seq)).toEqual([1, 2, 3]);
      expect(kept.lost).toBe(0);
      // Five more calls before the next read: the record keeps 6, 7, 8; 4 and 5 are gone unread.
      for (let i = 4; i <= 8; i++)
        await gen.models.generateContent({ model: MODEL, contents: `c${i}` });
      const late = await read(kept.next_since);
      expect(late.calls.map((c) => c.seq)).toEqual([6, 7, 8]);
      expect(late.lost).toBe(2);
      expect(late.next_since).toBe(8);
      // A reader that kept up is told nothing was lost, though older calls were dropped.
      expect((await read(5)).lost).toBe(0);
      expect((await read(7)).calls.map((c) => c.seq)).toEqual([8]);
    } finally {
      await small.close();
    }
  });

  it("rejects a `since` that is not a call's seq", async () => {
    for (const since of ["-1", "abc", "1.5"]) {
      expect((await control(`/calls?since=${since}`)).status).toBe(400);
    }
  });
});
