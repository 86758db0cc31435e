import { randomUUID } from "node:crypto";
import { ApiError, type GenerateContentResponse, GoogleGenAI } from "@google/genai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { createGeminiService } from "../../local/gemini/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";

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
  it("rate_limit answers 429 RESOURCE_EXHAUSTED with Retry-After, for `times` calls only", async () => {
    const m = marker();
    await addFault({ match: m, kind: "rate_limit", times: 2, retry_after: 7 });

    const err = await rejection(ai.models.generateContent({ model: MODEL, contents: m }));
    expect(err.status).toBe(429);
    const body = JSON.parse(err.message) as { error: Record<string, unknown> };
    expect(body.error).toMatchObject({ code: 429, status: "RESOURCE_EXHAUSTED" });
    expect(JSON.stringify(body.error.details)).toContain('"retryDelay":"7s"');

    const raw = await rawGenerate(m);
    expect(raw.status).toBe(429);
    expect(raw.headers.get("retry-after")).toBe("7");

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
