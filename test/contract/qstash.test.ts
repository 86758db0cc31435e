import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Client, QstashError, Receiver, SignatureError } from "@upstash/qstash";
import { Hono } from "hono";
import { decodeJwt } from "jose";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { createGeminiService } from "../../local/gemini/service.ts";
import { createQStashService } from "../../local/qstash/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";

/** One request the receiving server saw. */
interface Seen {
  path: string;
  url: string;
  method: string;
  headers: Headers;
  body: string;
  at: number;
}

type Behaviour = (req: Seen, index: number) => Response;

let cloud: LocalCloud;
let qstash: Client;
let receiverServer: ReturnType<typeof serve>;
let receiverBase: string;
const seen: Seen[] = [];
const behaviours = new Map<string, Behaviour>();

const receiver = new Receiver({
  currentSigningKey: TEST_KEYS.qstashCurrentSigningKey,
  nextSigningKey: TEST_KEYS.qstashNextSigningKey,
});

interface CallbackBody {
  status: number;
  header: Record<string, string[]>;
  body: string;
  retried: number;
  maxRetries: number;
  dlqId?: string;
  sourceMessageId: string;
  url: string;
  method: string;
  sourceHeader: Record<string, string[]>;
  sourceBody: string;
  notBefore: string;
  createdAt: string;
  callerIP: string;
}

interface AttemptView {
  retried: number;
  status: number | null;
  duplicate: boolean;
  next_delay_ms: number | null;
}

interface MessageView {
  message_id: string;
  kind: string;
  state: string;
  retried: number;
  max_retries: number;
  dlq_id: string | null;
  deliveries: number;
  attempts: AttemptView[];
  header: Record<string, string[]>;
  callbacks: { message_id: string; kind: string; url: string; state: string }[];
}

/** A fresh path on the receiving server; its behaviour defaults to 200 "ok". */
function endpoint(name: string, behaviour?: Behaviour): { path: string; url: string } {
  const path = `/${name}/${randomUUID()}`;
  if (behaviour) behaviours.set(path, behaviour);
  return { path, url: `${receiverBase}${path}` };
}

function requestsTo(path: string): Seen[] {
  return seen.filter((s) => s.path === path);
}

async function control(path: string, body?: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${cloud.url}/_control/qstash${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Waits until every message whose URL or body contains `match` (and their callbacks) settled. */
async function flush(match: string, timeoutMs = 15_000): Promise<void> {
  const res = await control("/flush", { match, timeout_ms: timeoutMs });
  expect(res.body).toMatchObject({ settled: true });
}

async function message(id: string): Promise<MessageView> {
  const res = await control(`/messages/${id}`);
  expect(res.status).toBe(200);
  return res.body as MessageView;
}

function callbackBody(req: Seen): CallbackBody {
  return JSON.parse(req.body) as CallbackBody;
}

function decodeBase64(value: string): string {
  return Buffer.from(value, "base64").toString("utf8");
}

async function verify(req: Seen, url: string): Promise<boolean> {
  return receiver.verify({
    signature: req.headers.get("upstash-signature") ?? "",
    body: req.body,
    url,
  });
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

beforeAll(async () => {
  const app = new Hono();
  app.all("*", async (c) => {
    const req: Seen = {
      path: c.req.path,
      url: c.req.url,
      method: c.req.method,
      headers: new Headers(c.req.raw.headers),
      body: await c.req.text(),
      at: performance.now(),
    };
    seen.push(req);
    const behaviour = behaviours.get(req.path);
    const index = requestsTo(req.path).length - 1;
    return behaviour ? behaviour(req, index) : c.text("ok");
  });
  receiverServer = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => receiverServer.once("listening", () => resolve()));
  receiverBase = `http://127.0.0.1:${(receiverServer.address() as AddressInfo).port}`;

  cloud = await startLocalCloud(testCloudConfig(), [createQStashService, createGeminiService]);
  qstash = new Client({ baseUrl: `${cloud.url}/qstash`, token: TEST_KEYS.qstashToken });
});

beforeEach(async () => {
  await control("/reset", {});
});

afterAll(async () => {
  await cloud?.close();
  await new Promise<void>((resolve) => receiverServer?.close(() => resolve()));
});

describe("local QStash publish and delivery", () => {
  it("delivers the body with forwarded headers, its message id and a signature bound to its URL", async () => {
    const dest = endpoint("deliver");
    const res = await qstash.publishJSON({
      url: dest.url,
      body: { hello: dest.path },
      headers: { "X-Custom": "v1", "Upstash-Forward-X-Explicit": "v2" },
    });
    expect(res.messageId).toMatch(/^msg_/);
    expect(res.url).toBe(dest.url);
    await flush(dest.path);

    const [req] = requestsTo(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(1);
    expect(req?.method).toBe("POST");
    expect(req?.body).toBe(JSON.stringify({ hello: dest.path }));
    expect(req?.headers.get("content-type")).toBe("application/json");
    expect(req?.headers.get("x-custom")).toBe("v1");
    expect(req?.headers.get("x-explicit")).toBe("v2");
    expect(req?.headers.get("upstash-message-id")).toBe(res.messageId);
    expect(req?.headers.get("upstash-retried")).toBe("0");
    expect(req?.headers.get("authorization")).toBeNull();
    expect(req?.headers.get("upstash-forward-x-custom")).toBeNull();

    if (!req) throw new Error("no delivery");
    await expect(verify(req, dest.url)).resolves.toBe(true);
    await expect(verify(req, `${dest.url}/other`)).rejects.toBeInstanceOf(SignatureError);
    await expect(
      receiver.verify({
        signature: req.headers.get("upstash-signature") ?? "",
        body: `${req.body} `,
        url: dest.url,
      }),
    ).rejects.toBeInstanceOf(SignatureError);

    const claims = decodeJwt(req.headers.get("upstash-signature") ?? "");
    expect(claims.iss).toBe("Upstash");
    expect(claims.sub).toBe(dest.url);
    expect((claims.exp ?? 0) - (claims.iat ?? 0)).toBe(300);
    expect(claims.nbf).toBe(claims.iat);
    expect(typeof claims.jti).toBe("string");
    // QStash pads the body hash; Receiver strips the padding before comparing.
    expect(claims.body).toMatch(/^[\w-]{43}=$/);
  });

  it("uses Upstash-Method and keeps the destination's query string", async () => {
    const dest = endpoint("method");
    const url = `${dest.url}?a=1&b=two`;
    await qstash.publish({ url, body: "plain text", method: "PUT" });
    await flush(dest.path);
    const [req] = requestsTo(dest.path);
    expect(req?.method).toBe("PUT");
    expect(req?.url).toBe(url);
    expect(req?.body).toBe("plain text");
    if (req) await expect(verify(req, url)).resolves.toBe(true);
  });

  it("answers publish with 201 and accepts a URL-encoded destination", async () => {
    const dest = endpoint("encoded");
    const res = await fetch(`${cloud.url}/qstash/v2/publish/${encodeURIComponent(dest.url)}`, {
      method: "POST",
      headers: { Authorization: `Bearer ${TEST_KEYS.qstashToken}`, "Content-Type": "text/plain" },
      body: "encoded",
    });
    expect(res.status).toBe(201);
    const body = (await res.json()) as { messageId: string };
    await flush(dest.path);
    expect(requestsTo(dest.path).map((r) => r.headers.get("upstash-message-id"))).toEqual([
      body.messageId,
    ]);
  });

  it("rejects publish with a wrong token with 401 and delivers nothing", async () => {
    const dest = endpoint("unauthorized");
    const bad = new Client({ baseUrl: `${cloud.url}/qstash`, token: "wrong", retry: false });
    const err = await rejection(bad.publishJSON({ url: dest.url, body: {} }));
    expect(err).toBeInstanceOf(QstashError);
    expect((err as QstashError).status).toBe(401);
    const list = await control(`/messages?match=${encodeURIComponent(dest.path)}`);
    expect((list.body as { messages: unknown[] }).messages).toHaveLength(0);
  });

  it("answers a duplicate deduplication id with 202 and the same id, and delivers once", async () => {
    const dest = endpoint("dedup");
    const dedupId = randomUUID();
    const first = await qstash.publishJSON({
      url: dest.url,
      body: { n: 1 },
      deduplicationId: dedupId,
    });
    const second = await qstash.publishJSON({
      url: dest.url,
      body: { n: 2 },
      deduplicationId: dedupId,
    });
    expect(second.messageId).toBe(first.messageId);
    expect(second.deduplicated).toBe(true);
    const raw = await fetch(`${cloud.url}/qstash/v2/publish/${dest.url}`, {
      method: "POST",
      headers: {
        Authorization: `Bearer ${TEST_KEYS.qstashToken}`,
        "Upstash-Deduplication-Id": dedupId,
      },
      body: "{}",
    });
    expect(raw.status).toBe(202);
    await flush(dest.path);
    expect(requestsTo(dest.path).map((r) => r.body)).toEqual([JSON.stringify({ n: 1 })]);
  });

  it("deduplicates on content when asked, and only on identical content", async () => {
    const dest = endpoint("content-dedup");
    const a = await qstash.publishJSON({
      url: dest.url,
      body: { same: 1 },
      contentBasedDeduplication: true,
    });
    const b = await qstash.publishJSON({
      url: dest.url,
      body: { same: 1 },
      contentBasedDeduplication: true,
    });
    const c = await qstash.publishJSON({
      url: dest.url,
      body: { same: 2 },
      contentBasedDeduplication: true,
    });
    expect(b.messageId).toBe(a.messageId);
    expect(c.messageId).not.toBe(a.messageId);
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(2);
  });

  it("delays the first delivery by Upstash-Delay on the scaled clock", async () => {
    const dest = endpoint("delay");
    const started = performance.now();
    await qstash.publishJSON({ url: dest.url, body: {}, delay: 300 });
    await flush(dest.path);
    const [req] = requestsTo(dest.path);
    // 300 s × time scale 0.001 = 300 ms.
    expect((req?.at ?? 0) - started).toBeGreaterThanOrEqual(295);
  });

  it("cancels a pending message through the messages API", async () => {
    const dest = endpoint("cancel");
    const { messageId } = await qstash.publishJSON({ url: dest.url, body: {}, delay: 2000 });
    expect((await qstash.messages.get(messageId)).url).toBe(dest.url);
    expect(await qstash.messages.cancel(messageId)).toEqual({ cancelled: 1 });
    await flush(dest.path);
    expect((await message(messageId)).state).toBe("CANCELLED");
    expect(requestsTo(dest.path)).toHaveLength(0);
  });
});

describe("local QStash retries", () => {
  it("retries non-2xx answers with scaled e^(2.5n) backoff and counts them in Upstash-Retried", async () => {
    const dest = endpoint("retry", (_req, i) => new Response("no", { status: i < 2 ? 500 : 200 }));
    const { messageId } = await qstash.publishJSON({ url: dest.url, body: {}, retries: 3 });
    await flush(dest.path);

    const reqs = requestsTo(dest.path);
    expect(reqs.map((r) => r.headers.get("upstash-retried"))).toEqual(["0", "1", "2"]);
    expect(new Set(reqs.map((r) => r.headers.get("upstash-message-id")))).toEqual(
      new Set([messageId]),
    );
    const view = await message(messageId);
    expect(view.state).toBe("DELIVERED");
    expect(view.attempts.map((a) => a.status)).toEqual([500, 500, 200]);
    const delays = view.attempts.map((a) => a.next_delay_ms);
    expect(delays[0]).toBeCloseTo(Math.exp(2.5) * 1000 * 0.001, 5);
    expect(delays[1]).toBeCloseTo(Math.exp(5) * 1000 * 0.001, 5);
    expect(delays[2]).toBeNull();
    expect((reqs[2]?.at ?? 0) - (reqs[1]?.at ?? 0)).toBeGreaterThanOrEqual((delays[1] ?? 0) - 2);
  });

  it("retries 3 times by default, then fails the message into the DLQ", async () => {
    const dest = endpoint("default-retries", () => new Response("down", { status: 503 }));
    const { messageId } = await qstash.publishJSON({ url: dest.url, body: {} });
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(4);
    const view = await message(messageId);
    expect(view).toMatchObject({ state: "FAILED", max_retries: 3, retried: 3 });
    expect(view.attempts.map((a) => a.next_delay_ms?.toFixed(2) ?? null)).toEqual([
      "12.18",
      "148.41",
      "1808.04",
      null,
    ]);
    const dlq = await qstash.dlq.listMessages();
    expect(dlq.messages.find((m) => m.messageId === messageId)?.dlqId).toBe(view.dlq_id);
  });

  it("honours the destination's Retry-After, scaled, instead of the backoff", async () => {
    const dest = endpoint("retry-after", (_req, i) =>
      i === 0
        ? new Response("slow down", { status: 429, headers: { "Retry-After": "400" } })
        : new Response("ok"),
    );
    const { messageId } = await qstash.publishJSON({ url: dest.url, body: {}, retries: 2 });
    await flush(dest.path);
    const reqs = requestsTo(dest.path);
    expect(reqs).toHaveLength(2);
    expect((await message(messageId)).attempts[0]?.next_delay_ms).toBe(400);
    expect((reqs[1]?.at ?? 0) - (reqs[0]?.at ?? 0)).toBeGreaterThanOrEqual(395);
  });

  it("falls back to the backoff when Retry-After asks for more than a day", async () => {
    const dest = endpoint("retry-after-long", (_req, i) =>
      i === 0
        ? new Response("", { status: 503, headers: { "Retry-After": "90000" } })
        : new Response("ok"),
    );
    const { messageId } = await qstash.publishJSON({ url: dest.url, body: {}, retries: 1 });
    await flush(dest.path);
    expect((await message(messageId)).attempts[0]?.next_delay_ms).toBeCloseTo(12.1825, 3);
  });

  it("uses an Upstash-Retry-Delay expression when given", async () => {
    const dest = endpoint(
      "retry-delay",
      (_req, i) => new Response("", { status: i < 2 ? 500 : 200 }),
    );
    const { messageId } = await qstash.publishJSON({
      url: dest.url,
      body: {},
      retries: 2,
      retryDelay: "pow(2, retried) * 100000",
    });
    await flush(dest.path);
    // 100 s, then 200 s, scaled by 0.001.
    expect((await message(messageId)).attempts.map((a) => a.next_delay_ms)).toEqual([
      100,
      200,
      null,
    ]);
  });

  it("stops at once on 489 with Upstash-NonRetryable-Error and calls the failure callback", async () => {
    const dest = endpoint(
      "non-retryable",
      () =>
        new Response("bad job", { status: 489, headers: { "Upstash-NonRetryable-Error": "true" } }),
    );
    const failure = endpoint("non-retryable-failure");
    const { messageId } = await qstash.publishJSON({
      url: dest.url,
      body: {},
      retries: 3,
      failureCallback: failure.url,
    });
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(1);
    const view = await message(messageId);
    expect(view.state).toBe("FAILED");
    const [cb] = requestsTo(failure.path);
    expect(requestsTo(failure.path)).toHaveLength(1);
    if (!cb) throw new Error("no failure callback");
    await expect(verify(cb, failure.url)).resolves.toBe(true);
    expect(callbackBody(cb)).toMatchObject({
      status: 489,
      retried: 0,
      maxRetries: 3,
      dlqId: view.dlq_id,
      sourceMessageId: messageId,
    });
    expect(decodeBase64(callbackBody(cb).body)).toBe("bad job");
  });

  it("keeps retrying a 489 that lacks Upstash-NonRetryable-Error", async () => {
    const dest = endpoint("489-plain", () => new Response("", { status: 489 }));
    await qstash.publishJSON({ url: dest.url, body: {}, retries: 1 });
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(2);
  });

  it("retries after a network error", async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = serve({ fetch: () => new Response(""), port: 0, hostname: "127.0.0.1" });
      probe.once("listening", () => {
        const p = (probe.address() as AddressInfo).port;
        probe.close(() => resolve(p));
      });
    });
    const url = `http://127.0.0.1:${port}/closed/${randomUUID()}`;
    const { messageId } = await qstash.publishJSON({ url, body: {}, retries: 1 });
    await flush(url);
    const view = await message(messageId);
    expect(view.state).toBe("FAILED");
    expect(view.attempts.map((a) => a.status)).toEqual([null, null]);
  });
});

describe("local QStash callbacks", () => {
  it("calls the callback with QStash's body: status, header, base64 body, source fields", async () => {
    const dest = endpoint(
      "cb-dest",
      () => new Response('{"ok":true}', { status: 201, headers: { "X-Reply": "yes" } }),
    );
    const cb = endpoint("cb");
    const published = { question: dest.path };
    const { messageId } = await qstash.publishJSON({
      url: dest.url,
      body: published,
      headers: { "X-Custom": "c1", "Upstash-Callback-Forward-X-Cb-Token": "secret-cb" },
      callback: cb.url,
    });
    await flush(dest.path);

    const calls = requestsTo(cb.path);
    expect(calls).toHaveLength(1);
    const [call] = calls;
    if (!call) throw new Error("no callback");
    await expect(verify(call, cb.url)).resolves.toBe(true);
    await expect(verify(call, dest.url)).rejects.toBeInstanceOf(SignatureError);
    expect(call.headers.get("x-cb-token")).toBe("secret-cb");
    expect(call.headers.get("upstash-message-id")).toMatch(/^msg_/);
    expect(call.headers.get("upstash-message-id")).not.toBe(messageId);
    expect(requestsTo(dest.path)[0]?.headers.get("x-cb-token")).toBeNull();

    const body = callbackBody(call);
    expect(body).toMatchObject({
      status: 201,
      retried: 0,
      maxRetries: 3,
      sourceMessageId: messageId,
      url: dest.url,
      method: "POST",
      callerIP: "127.0.0.1",
    });
    expect(body.dlqId).toBeUndefined();
    expect(body.header["X-Reply"]).toEqual(["yes"]);
    expect(decodeBase64(body.body)).toBe('{"ok":true}');
    expect(body.sourceHeader["Content-Type"]).toEqual(["application/json"]);
    expect(body.sourceHeader["X-Custom"]).toEqual(["c1"]);
    expect(JSON.parse(decodeBase64(body.sourceBody))).toEqual(published);
    expect(Number(body.createdAt)).toBeGreaterThan(Date.now() - 60_000);
    expect(Number(body.notBefore)).toBeGreaterThanOrEqual(Number(body.createdAt));

    const view = await message(messageId);
    expect(view.callbacks).toEqual([
      expect.objectContaining({ kind: "callback", url: cb.url, state: "DELIVERED" }),
    ]);
  });

  it("calls the callback after every attempt and the failure callback once retries run out", async () => {
    const dest = endpoint("exhaust", () => new Response("boom", { status: 500 }));
    const cb = endpoint("exhaust-cb");
    const failure = endpoint("exhaust-failure");
    const { messageId } = await qstash.publishJSON({
      url: dest.url,
      body: {},
      retries: 2,
      callback: cb.url,
      failureCallback: failure.url,
    });
    await flush(dest.path);

    expect(requestsTo(dest.path)).toHaveLength(3);
    const perAttempt = requestsTo(cb.path).map(callbackBody);
    expect(perAttempt.map((b) => [b.status, b.retried, b.maxRetries])).toEqual([
      [500, 0, 2],
      [500, 1, 2],
      [500, 2, 2],
    ]);
    expect(perAttempt.every((b) => decodeBase64(b.body) === "boom")).toBe(true);

    const failures = requestsTo(failure.path);
    expect(failures).toHaveLength(1);
    const [fail] = failures;
    if (!fail) throw new Error("no failure callback");
    await expect(verify(fail, failure.url)).resolves.toBe(true);
    const view = await message(messageId);
    expect(view.dlq_id).toMatch(/^\d+-\d+$/);
    expect(callbackBody(fail)).toMatchObject({
      status: 500,
      retried: 2,
      maxRetries: 2,
      dlqId: view.dlq_id,
      sourceMessageId: messageId,
    });
  });

  it("retries a callback whose endpoint fails, keeping its message id", async () => {
    const dest = endpoint("cb-retry-dest");
    const cb = endpoint("cb-retry", (_req, i) => new Response("", { status: i === 0 ? 502 : 200 }));
    await qstash.publishJSON({
      url: dest.url,
      body: {},
      callback: cb.url,
      headers: { "Upstash-Callback-Retries": "2" },
    });
    await flush(dest.path);
    const calls = requestsTo(cb.path);
    expect(calls.map((r) => r.headers.get("upstash-retried"))).toEqual(["0", "1"]);
    expect(calls[1]?.headers.get("upstash-message-id")).toBe(
      calls[0]?.headers.get("upstash-message-id"),
    );
    expect(calls[1]?.body).toBe(calls[0]?.body);
  });
});

describe("local QStash control switches", () => {
  it("delivers the next matching message twice with the same id when the duplicate switch is on", async () => {
    const dest = endpoint("dup");
    await control("/duplicate", { match: dest.path });
    const { messageId } = await qstash.publishJSON({ url: dest.url, body: {} });
    await flush(dest.path);
    const reqs = requestsTo(dest.path);
    expect(reqs.map((r) => r.headers.get("upstash-message-id"))).toEqual([messageId, messageId]);
    for (const r of reqs) await expect(verify(r, dest.url)).resolves.toBe(true);
    expect((await message(messageId)).attempts.map((a) => a.duplicate)).toEqual([false, true]);

    await qstash.publishJSON({ url: dest.url, body: { again: true } });
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(3);
  });

  it("makes publish answer 500 for matching destinations while the publish fault is on", async () => {
    const hit = endpoint("publish-fault");
    const miss = endpoint("publish-ok");
    await control("/publish-fault", { mode: "error", match: hit.path });
    const noRetry = new Client({
      baseUrl: `${cloud.url}/qstash`,
      token: TEST_KEYS.qstashToken,
      retry: false,
    });
    const err = await rejection(noRetry.publishJSON({ url: hit.url, body: {} }));
    expect(err).toBeInstanceOf(QstashError);
    expect((err as QstashError).status).toBe(500);
    await expect(noRetry.publishJSON({ url: miss.url, body: {} })).resolves.toHaveProperty(
      "messageId",
    );

    await control("/publish-fault", { mode: "none", match: hit.path });
    await expect(noRetry.publishJSON({ url: hit.url, body: {} })).resolves.toHaveProperty(
      "messageId",
    );
    await flush(hit.path);
    expect(requestsTo(hit.path)).toHaveLength(1);
  });

  it("signs with the next signing key when switched, which Receiver accepts as the next key", async () => {
    const dest = endpoint("next-key");
    expect((await control("/signing-key", { use: "next" })).status).toBe(200);
    await qstash.publishJSON({ url: dest.url, body: {} });
    await flush(dest.path);
    const [req] = requestsTo(dest.path);
    if (!req) throw new Error("no delivery");
    await expect(verify(req, dest.url)).resolves.toBe(true);
    const currentOnly = new Receiver({
      currentSigningKey: TEST_KEYS.qstashCurrentSigningKey,
      nextSigningKey: "sig_not_the_next_key",
    });
    await expect(
      currentOnly.verify({ signature: req.headers.get("upstash-signature") ?? "", body: req.body }),
    ).rejects.toBeInstanceOf(SignatureError);
  });

  it("shows redacted fields as REDACTED:<sha256> in the message view but delivers them", async () => {
    const dest = endpoint("redact");
    const { messageId } = await qstash.publishJSON({
      url: dest.url,
      body: {},
      headers: { "X-Goog-Api-Key": "the-secret" },
      redact: { header: ["X-Goog-Api-Key"] },
    });
    await flush(dest.path);
    expect(requestsTo(dest.path)[0]?.headers.get("x-goog-api-key")).toBe("the-secret");
    const shown = (await message(messageId)).header["X-Goog-Api-Key"]?.[0];
    expect(shown).toMatch(/^REDACTED:[0-9a-f]{64}$/);
  });
});

describe("QStash → local Gemini → callback chain", () => {
  const geminiUrl = () => `${cloud.url}/gemini/v1beta/models/gemini-3.8-flash:generateContent`;

  async function geminiCalls(match: string): Promise<{ status: number }[]> {
    const res = await fetch(
      `${cloud.url}/_control/gemini/calls?match=${encodeURIComponent(match)}`,
    );
    return ((await res.json()) as { calls: { status: number }[] }).calls;
  }

  it("delivers a generateContent request to Gemini and calls back with Gemini's reply", async () => {
    const marker = `chain-${randomUUID()}`;
    const cb = endpoint("chain-cb");
    const { messageId } = await qstash.publishJSON({
      url: geminiUrl(),
      body: { contents: [{ role: "user", parts: [{ text: `hello ${marker}` }] }] },
      headers: { "Upstash-Forward-x-goog-api-key": TEST_KEYS.geminiApiKey },
      callback: cb.url,
    });
    await flush(marker);

    const [call] = requestsTo(cb.path);
    expect(requestsTo(cb.path)).toHaveLength(1);
    if (!call) throw new Error("no callback");
    await expect(verify(call, cb.url)).resolves.toBe(true);
    const body = callbackBody(call);
    expect(body).toMatchObject({ status: 200, sourceMessageId: messageId, url: geminiUrl() });
    const reply = JSON.parse(decodeBase64(body.body)) as {
      candidates: { content: { parts: { text: string }[] }; finishReason: string }[];
    };
    expect(reply.candidates[0]?.content.parts[0]?.text).toBe(
      `Echo: hello ${marker}\n\nThis reply comes from the local Gemini stand-in.`,
    );
    expect(reply.candidates[0]?.finishReason).toBe("STOP");
    expect(await geminiCalls(marker)).toHaveLength(1);
  });

  it("retries Gemini's 429 on QStash's own backoff (Gemini sends no Retry-After) and calls back for both", async () => {
    const marker = `chain-429-${randomUUID()}`;
    await fetch(`${cloud.url}/_control/gemini/faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ match: marker, kind: "rate_limit", times: 1, retry_after: 30 }),
    });
    const cb = endpoint("chain-429-cb");
    const { messageId } = await qstash.publishJSON({
      url: geminiUrl(),
      body: { contents: [{ role: "user", parts: [{ text: marker }] }] },
      headers: { "Upstash-Forward-x-goog-api-key": TEST_KEYS.geminiApiKey },
      callback: cb.url,
    });
    await flush(marker);
    expect((await geminiCalls(marker)).map((c) => c.status)).toEqual([429, 200]);
    // The wait is only in the body's RetryInfo, which QStash does not read: e^2.5 s, scaled.
    expect((await message(messageId)).attempts[0]?.next_delay_ms).toBeCloseTo(12.1825, 3);
    const bodies = requestsTo(cb.path).map(callbackBody);
    expect(bodies.map((b) => [b.status, b.retried])).toEqual([
      [429, 0],
      [200, 1],
    ]);
  });

  it("fails without retrying forever when the forwarded Gemini key is wrong", async () => {
    const marker = `chain-badkey-${randomUUID()}`;
    const failure = endpoint("chain-badkey-failure");
    await qstash.publishJSON({
      url: geminiUrl(),
      body: { contents: [{ role: "user", parts: [{ text: marker }] }] },
      headers: { "Upstash-Forward-x-goog-api-key": "wrong" },
      retries: 1,
      failureCallback: failure.url,
    });
    await flush(marker);
    expect((await geminiCalls(marker)).map((c) => c.status)).toEqual([400, 400]);
    const [fail] = requestsTo(failure.path);
    expect(fail && callbackBody(fail).status).toBe(400);
  });
});

describe("local QStash chaos switch (soak runs)", () => {
  it("duplicates every matching callback when asked, each copy with the callback's own id", async () => {
    const dest = endpoint("chaos-dest");
    const cb = endpoint("chaos-cb");
    await control("/chaos", { duplicate: 1, kinds: ["callback"], match: cb.path, seed: 7 });
    await qstash.publishJSON({ url: dest.url, body: {}, callback: cb.url });
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(1);
    const calls = requestsTo(cb.path);
    expect(calls).toHaveLength(2);
    expect(calls[1]?.headers.get("upstash-message-id")).toBe(
      calls[0]?.headers.get("upstash-message-id"),
    );
    for (const r of calls) await expect(verify(r, cb.url)).resolves.toBe(true);
    expect((await control("/chaos")).body).toMatchObject({ duplicated: 1 });
  });

  it("holds a message back so one published later overtakes it", async () => {
    const dest = endpoint("chaos-order");
    // The first publish is held (probability 1, up to 400 ms scaled by the seeded draw); then the
    // switch is off and the second goes at once.
    await control("/chaos", {
      hold: 1,
      hold_ms: 400,
      kinds: ["publish"],
      match: dest.path,
      seed: 3,
    });
    await qstash.publishJSON({ url: dest.url, body: { n: 1 } });
    await control("/chaos", {});
    await qstash.publishJSON({ url: dest.url, body: { n: 2 } });
    await flush(dest.path);
    expect(requestsTo(dest.path).map((r) => JSON.parse(r.body).n)).toEqual([2, 1]);
  });

  it("refuses settings that are not probabilities, and reset switches it off", async () => {
    expect((await control("/chaos", { duplicate: 2 })).status).toBe(400);
    expect((await control("/chaos", { kinds: ["nope"] })).status).toBe(400);
    await control("/chaos", { duplicate: 1 });
    await control("/reset", {});
    expect((await control("/chaos")).body).toMatchObject({ duplicate: 0, hold: 0 });
    const dest = endpoint("chaos-off");
    await qstash.publishJSON({ url: dest.url, body: {} });
    await flush(dest.path);
    expect(requestsTo(dest.path)).toHaveLength(1);
  });
});
