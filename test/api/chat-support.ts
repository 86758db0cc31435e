import { createHash, randomUUID } from "node:crypto";
import { neon, neonConfig } from "@neondatabase/serverless";
import { SignJWT } from "jose";
import { expect } from "vitest";
import {
  type ApiResponse,
  call,
  cloudUrl,
  control,
  testEnv,
  waitFor,
  workerUrl,
} from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";

/** A marker unique to one test, put in prompts so local-cloud faults and lookups stay scoped. */
export const marker = (label: string) => `mk-${label}-${randomUUID().slice(0, 8)}`;

export async function newChatroom(session: TestSession, title = marker("room")) {
  const res = await call("POST", "/chatroom", { token: session.token, body: { title } });
  expect(res.status).toBe(201);
  return res.body.chatroom as { id: string; title: string; message_count: number };
}

export async function sendPrompt(
  session: TestSession,
  chatroomId: string,
  content: string,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  return call("POST", `/chatroom/${chatroomId}/message`, {
    token: session.token,
    body: { content },
    headers,
  });
}

export async function getMessage(session: TestSession, chatroomId: string, messageId: string) {
  const res = await call("GET", `/chatroom/${chatroomId}/messages/${messageId}`, {
    token: session.token,
  });
  expect(res.status).toBe(200);
  return res.body.message as {
    id: string;
    status: "pending" | "complete" | "failed";
    content: string;
    error: string | null;
    finish_reason: string | null;
    usage: {
      prompt_tokens: number;
      reply_tokens: number;
      thought_tokens: number;
      cached_tokens: number;
      total_tokens: number;
      model: string | null;
    } | null;
    completed_at: string | null;
  };
}

/**
 * Reads a chatroom list page until it is served from the cache: the cache write runs in the
 * background after the response, so one read does not guarantee the next one hits.
 */
export async function warmList(session: TestSession, query = "") {
  const first = await call("GET", `/chatroom${query}`, { token: session.token });
  expect(first.status).toBe(200);
  const hit = await waitFor(
    async () => {
      const res = await call("GET", `/chatroom${query}`, { token: session.token });
      expect(res.status).toBe(200);
      return res.headers.get("x-cache") === "HIT" && res;
    },
    5_000,
    25,
  );
  return { first, hit };
}

/**
 * A prompt whose reply never reaches QStash (its publish fails): the reply stays pending until
 * something ends it (a cancel, a callback, the sweep). Answers the 202.
 */
export async function unpublishedPrompt(session: TestSession, chatroomId: string, label: string) {
  const content = marker(label);
  await control("qstash/publish-fault", { match: content, mode: "error" });
  try {
    const res = await sendPrompt(session, chatroomId, content);
    expect(res.status).toBe(202);
    return res;
  } finally {
    await control("qstash/publish-fault", { match: content, mode: "none" });
  }
}

/** The reply's mark of a refund still owed (ADR 3), null once paid. */
export async function refundOwedAt(replyId: string): Promise<string | null> {
  const rows = await sql().query("select refund_owed_at from messages where id = $1", [replyId]);
  expect(rows).toHaveLength(1);
  return (rows[0]?.refund_owed_at as string | null) ?? null;
}

/** Polls a reply until it leaves `pending`. */
export async function settledReply(
  session: TestSession,
  chatroomId: string,
  replyId: string,
  timeoutMs = 15_000,
) {
  return waitFor(async () => {
    const m = await getMessage(session, chatroomId, replyId);
    return m.status === "pending" ? undefined : m;
  }, timeoutMs);
}

/** Prompts left today, read from the headers of a prompt to the user's own chatroom. */
export async function remainingAfterOnePrompt(session: TestSession, chatroomId: string) {
  const res = await sendPrompt(session, chatroomId, marker("probe"));
  expect(res.status).toBe(202);
  return Number(res.headers.get("ratelimit-remaining"));
}

/** SQL straight against the local Neon, with the vendor's driver (for tier changes and checks). */
export function sql() {
  neonConfig.fetchEndpoint = () => `${cloudUrl}/neon/sql`;
  return neon(testEnv.DATABASE_URL as string);
}

export async function createProSession(): Promise<TestSession> {
  const session = await createSession();
  await sql().query("update users set tier = 'pro' where id = $1", [session.user.id]);
  return session;
}

/** Redis straight through the local Upstash REST endpoint. */
export async function redis(...command: (string | number)[]): Promise<unknown> {
  const res = await fetch(`${cloudUrl}/redis`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${testEnv.UPSTASH_REDIS_REST_TOKEN}`,
      "content-type": "application/json",
    },
    body: JSON.stringify(command),
  });
  const json = (await res.json()) as { result?: unknown; error?: string };
  if (json.error) throw new Error(json.error);
  return json.result;
}

/** The user's daily prompt counter in Redis today (ADR 3: `quota:prompts:<user>:<UTC day>`). */
export async function quotaCounter(userId: string): Promise<number> {
  const day = Math.floor(Date.now() / 86_400_000);
  return Number((await redis("GET", `quota:prompts:${userId}:${day}`)) ?? 0);
}

/** How many prompts (user messages) a chatroom holds, read straight from the database. */
export async function promptRows(chatroomId: string): Promise<number> {
  const rows = await sql().query(
    "select count(*)::int as n from messages where chatroom_id = $1 and role = 'user'",
    [chatroomId],
  );
  return rows[0]?.n as number;
}

export async function geminiCalls(match: string) {
  const res = await control(`gemini/calls?match=${encodeURIComponent(match)}`);
  return res.body.calls as {
    status: number;
    fault: string | null;
    method: string;
    prompt: string;
  }[];
}

export async function geminiFault(fault: {
  match: string;
  kind: string;
  times?: number;
  ms?: number;
  retry_after?: number;
}) {
  const res = await control("gemini/faults", fault);
  expect(res.status).toBe(201);
}

export interface QStashView {
  message_id: string;
  kind: "publish" | "callback" | "failure_callback";
  url: string;
  state: string;
  deduplication_id: string | null;
  max_retries: number;
  timeout_ms: number;
  header: Record<string, string[]>;
  body: string;
  deliveries: number;
  attempts: { status: number | null; duplicate: boolean }[];
}

export async function qstashMessages(match: string, kind?: QStashView["kind"]) {
  const q = new URLSearchParams({ match, ...(kind ? { kind } : {}) });
  const res = await control(`qstash/messages?${q}`);
  return res.body.messages as QStashView[];
}

/** Waits until QStash has settled every message (and callback) whose lineage mentions `match`. */
export async function flushQStash(match: string, timeoutMs = 15_000) {
  const res = await control("qstash/flush", { match, timeout_ms: timeoutMs });
  expect(res.status).toBe(200);
}

const base64url = (bytes: Buffer) => bytes.toString("base64url");

/** Signs an Upstash-Signature JWT exactly as QStash does; every claim can be overridden. */
export async function signQStash(
  url: string,
  body: string,
  opts: { key?: string; claims?: Record<string, unknown> } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: "Upstash",
    sub: url,
    iat: now,
    nbf: now,
    exp: now + 300,
    jti: `jwt_${randomUUID()}`,
    body: base64url(createHash("sha256").update(body).digest()),
    ...opts.claims,
  })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .sign(new TextEncoder().encode(opts.key ?? (testEnv.QSTASH_CURRENT_SIGNING_KEY as string)));
}

/** A QStash callback body carrying a Gemini answer. */
export function callbackBody(gemini: unknown, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    status: 200,
    header: { "Content-Type": ["application/json"] },
    body: Buffer.from(typeof gemini === "string" ? gemini : JSON.stringify(gemini)).toString(
      "base64",
    ),
    retried: 0,
    maxRetries: 3,
    sourceMessageId: `msg_${randomUUID()}`,
    url: "http://gemini.invalid",
    method: "POST",
    createdAt: String(Date.now()),
    ...over,
  });
}

export const geminiAnswer = (text: string) => ({
  candidates: [{ content: { role: "model", parts: [{ text }] }, finishReason: "STOP", index: 0 }],
  usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 2, totalTokenCount: 5 },
});

/** Posts a raw callback to the Worker (the path includes ?reply_id=). */
export async function postCallback(path: string, body: string, signature?: string) {
  const res = await fetch(`${workerUrl}${path}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(signature ? { "upstash-signature": signature } : {}),
    },
    body,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}

/** Runs the Worker's scheduled handler (the reply sweep) as if the cron fired at `timeMs`. */
export async function runSweep(timeMs = Date.now()) {
  const res = await fetch(
    `${workerUrl}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent("* * * * *")}&time=${timeMs}&format=json`,
  );
  const text = await res.text();
  if (!res.ok) throw new Error(`scheduled handler answered ${res.status}: ${text}`);
  return text;
}

export interface SseEvent {
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: event payloads are asserted field by field.
  data: any;
}

/** Splits an SSE body into its events (each `data:` payload parsed as JSON). */
export function parseSse(text: string): SseEvent[] {
  return text
    .split("\n\n")
    .filter((block) => block.trim() !== "")
    .map((block) => {
      const lines = block.split("\n");
      const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
      const data = lines
        .filter((l) => l.startsWith("data: "))
        .map((l) => l.slice(6))
        .join("\n");
      return { event, data: JSON.parse(data) };
    });
}

/** A prompt sent with `Accept: text/event-stream`; the raw response, to read as a stream. */
export function streamPrompt(
  session: TestSession,
  roomId: string,
  content: string,
  signal?: AbortSignal,
) {
  return fetch(`${workerUrl}/chatroom/${roomId}/message`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${session.token}`,
      "content-type": "application/json",
      accept: "text/event-stream",
    },
    body: JSON.stringify({ content }),
    signal,
  });
}
