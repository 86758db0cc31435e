// Helpers for the fuzz suite: the error-shape assertion every bad input must meet, a raw HTTP
// client for requests fetch refuses to send, the OpenAPI operations to walk, and a snapshot of
// a user's state to prove rejected requests changed nothing.
import { connect } from "node:net";
import { afterAll, beforeAll, expect } from "vitest";
import { ERROR_CODES } from "../../src/errors/index.ts";
import { type ApiResponse, call, workerUrl } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { newChatroom, sendPrompt, settledReply } from "./chat-support.ts";

/** No single fuzz request may take longer than this (a hang fails the test, it does not stall it). */
export const REQUEST_BOUND_MS = 5_000;

const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/**
 * The one promise every rejected request keeps: a 4xx (never a 500), JSON with the error shape,
 * a code from the closed list, the request id echoed in the header, and no stack trace.
 */
export function expectClientError(
  res: { status: number; headers: Headers; text: string },
  label: string,
  statuses?: number[],
): void {
  const where = `${label} → ${res.status} ${res.text.slice(0, 300)}`;
  if (statuses) expect(statuses, where).toContain(res.status);
  expect(res.status, where).toBeGreaterThanOrEqual(400);
  expect(res.status, where).toBeLessThan(500);
  expect(res.headers.get("content-type") ?? "", where).toContain("application/json");
  let body: { error?: { code?: unknown; message?: unknown; request_id?: unknown } };
  try {
    body = JSON.parse(res.text);
  } catch {
    throw new Error(`${where}: the body is not JSON`);
  }
  expect(Object.keys(body), where).toEqual(["error"]);
  expect(ERROR_CODES as readonly unknown[], where).toContain(body.error?.code);
  expect(typeof body.error?.message, where).toBe("string");
  expect(typeof body.error?.request_id, where).toBe("string");
  expect(res.headers.get("x-request-id"), where).toBe(body.error?.request_id);
  expect(res.text, where).not.toMatch(/\bat [\w.<>]+ \(|node_modules|\.ts:\d+/);
}

/** `call` with a deadline, so a hanging request fails fast instead of timing the test out. */
export async function boundedCall(
  method: string,
  path: string,
  opts: Parameters<typeof call>[2] & { timeoutMs?: number } = {},
): Promise<ApiResponse> {
  const timeout = opts.timeoutMs ?? REQUEST_BOUND_MS;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${method} ${path} did not answer within ${timeout} ms`)),
      timeout,
    );
  });
  try {
    return await Promise.race([call(method, path, opts), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

export interface RawResponse {
  status: number;
  headers: Headers;
  text: string;
}

function decodeChunked(body: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = body.indexOf("\r\n", at);
    if (lineEnd < 0) break;
    const size = Number.parseInt(body.subarray(at, lineEnd).toString("latin1"), 16);
    if (!Number.isFinite(size) || size === 0) break;
    parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}

/**
 * Sends bytes exactly as given over one TCP connection and reads the answer: for what fetch
 * will not send (two Authorization headers, Content-Length with Transfer-Encoding, hand-made
 * chunks). The request should carry `Connection: close`; the answer ends when the socket does.
 */
export function rawRequest(
  head: string,
  body: Buffer | string = "",
  opts: { timeoutMs?: number; chunks?: (Buffer | string)[] } = {},
): Promise<RawResponse> {
  const url = new URL(workerUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    const received: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new Error(`raw request did not answer within ${opts.timeoutMs ?? REQUEST_BOUND_MS} ms`),
      );
    }, opts.timeoutMs ?? REQUEST_BOUND_MS);
    socket.on("connect", async () => {
      socket.write(head);
      if (body.length > 0) socket.write(body);
      for (const chunk of opts.chunks ?? []) {
        // A server that rejects early may close mid-stream; that is a fine answer.
        if (socket.destroyed || !socket.writable) break;
        socket.write(chunk);
        await new Promise((r) => setImmediate(r));
      }
    });
    socket.on("data", (d) => received.push(d));
    socket.on("error", (err) => {
      // A reset after the answer arrived (we were still writing) still leaves a full answer.
      if (received.length === 0) {
        clearTimeout(timer);
        reject(err);
      }
    });
    socket.on("close", () => {
      clearTimeout(timer);
      const all = Buffer.concat(received);
      const split = all.indexOf("\r\n\r\n");
      if (split < 0) {
        reject(new Error(`no HTTP answer (${all.length} bytes)`));
        return;
      }
      const [statusLine = "", ...lines] = all.subarray(0, split).toString("latin1").split("\r\n");
      const headers = new Headers();
      for (const line of lines) {
        const colon = line.indexOf(":");
        if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
      }
      let rest: Buffer = all.subarray(split + 4);
      if ((headers.get("transfer-encoding") ?? "").includes("chunked")) rest = decodeChunked(rest);
      const status = Number(statusLine.split(" ")[1]);
      resolve({ status, headers, text: rest.toString("utf8") });
    });
  });
}

/** The request head for `rawRequest`: host, close, then the given header lines. */
export function rawHead(method: string, path: string, headerLines: string[]): string {
  const host = new URL(workerUrl).host;
  return [
    `${method} ${path} HTTP/1.1`,
    `Host: ${host}`,
    "Connection: close",
    ...headerLines,
    "",
    "",
  ].join("\r\n");
}

// ---- the OpenAPI document ------------------------------------------------------------------

// biome-ignore lint/suspicious/noExplicitAny: JSON Schema from the document, walked generically.
export type JsonSchema = any;

export interface Operation {
  method: string;
  /** OpenAPI template, e.g. /chatroom/{id}. */
  path: string;
  operationId: string;
  secured: boolean;
  body: JsonSchema | null;
  bodyRequired: boolean;
  query: { name: string; schema: JsonSchema; required: boolean }[];
  pathParams: string[];
}

export async function loadOperations(): Promise<{
  operations: Operation[];
  resolve: (s: JsonSchema) => JsonSchema;
}> {
  const res = await call("GET", "/openapi.json");
  expect(res.status).toBe(200);
  const doc = res.body as {
    paths: Record<string, Record<string, JsonSchema>>;
    components?: { schemas?: Record<string, JsonSchema> };
  };
  const resolve = (s: JsonSchema): JsonSchema => {
    if (s && typeof s === "object" && typeof s.$ref === "string") {
      const name = s.$ref.split("/").pop() as string;
      return resolve(doc.components?.schemas?.[name]);
    }
    return s;
  };
  const operations: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!["get", "post", "put", "patch", "delete"].includes(method)) continue;
      const params = (op.parameters ?? []) as {
        in: string;
        name: string;
        required?: boolean;
        schema: JsonSchema;
      }[];
      const json = op.requestBody?.content?.["application/json"]?.schema;
      operations.push({
        method: method.toUpperCase(),
        path,
        operationId: `${method.toUpperCase()} ${path}`,
        secured: Array.isArray(op.security) && op.security.length > 0,
        body: json ? withResolvedProperties(resolve(json), resolve) : null,
        bodyRequired: op.requestBody?.required === true,
        query: params
          .filter((p) => p.in === "query")
          .map((p) => ({ name: p.name, schema: resolve(p.schema), required: p.required === true })),
        pathParams: params.filter((p) => p.in === "path").map((p) => p.name),
      });
    }
  }
  return { operations, resolve };
}

/**
 * The body schema with each property's `$ref` resolved, so a generator sees the property's real
 * type (a `settings` object named by reference is an object, and `{}` is not a wrong type for it).
 */
function withResolvedProperties(
  body: JsonSchema,
  resolve: (s: JsonSchema) => JsonSchema,
): JsonSchema {
  if (!body?.properties) return body;
  const properties = Object.fromEntries(
    Object.entries(body.properties as Record<string, JsonSchema>).map(([k, v]) => [k, resolve(v)]),
  );
  return { ...body, properties };
}

// ---- fixtures and state ------------------------------------------------------------------

export interface Fixture {
  me: TestSession;
  other: TestSession;
  roomId: string;
  messageId: string;
  otherRoomId: string;
}

/** Two users; `me` owns a chatroom with one settled exchange, `other` owns one chatroom. */
async function createFixture(): Promise<Fixture> {
  const [me, other] = await Promise.all([createSession(), createSession()]);
  const [room, otherRoom] = await Promise.all([newChatroom(me), newChatroom(other)]);
  const sent = await sendPrompt(me, room.id, "fuzz fixture prompt");
  expect(sent.status).toBe(202);
  await settledReply(me, room.id, sent.body.reply.id);
  return {
    me,
    other,
    roomId: room.id,
    messageId: sent.body.message.id,
    otherRoomId: otherRoom.id,
  };
}

/** Fills an OpenAPI path template with the fixture's own ids. */
export function concretePath(op: Operation, f: Fixture): string {
  return op.path.replace("{id}", f.roomId).replace("{message_id}", f.messageId);
}

/**
 * What a rejected request could have changed for a user: profile, tier, today's quota use, the
 * chatrooms with their message counts and titles, and the fixture room's messages.
 */
export async function userState(s: TestSession, roomId?: string) {
  const [me, sub, list, room] = await Promise.all([
    call("GET", "/user/me", { token: s.token }),
    call("GET", "/subscription/status", { token: s.token }),
    call("GET", "/chatroom?limit=100", { token: s.token }),
    roomId ? call("GET", `/chatroom/${roomId}`, { token: s.token }) : null,
  ]);
  for (const r of [me, sub, list, room]) if (r) expect(r.status, r.text).toBe(200);
  return {
    user: me.body.user,
    tier: sub.body.tier,
    status: sub.body.status,
    used_today: sub.body.usage.used_today,
    chatrooms: (list.body.chatrooms as { id: string; title: string; message_count: number }[]).map(
      (c) => ({ id: c.id, title: c.title, message_count: c.message_count }),
    ),
    messages: room
      ? (room.body.messages as { id: string; status: string; content: string }[]).map((m) => ({
          id: m.id,
          status: m.status,
          content: m.content,
        }))
      : null,
  };
}

export const isId = (s: string) => UUID_V7.test(s);

/**
 * Sets up a fuzz file: builds the fixture and loads the operations before its tests (handed to
 * `ready`), and after them checks that neither user's state changed, since every request a fuzz
 * file sends must be refused.
 */
export function useGuardedFixture(ready: (f: Fixture, operations: Operation[]) => void): void {
  let f: Fixture;
  let before: { me: unknown; other: unknown };
  beforeAll(async () => {
    f = await createFixture();
    ready(f, (await loadOperations()).operations);
    before = { me: await userState(f.me, f.roomId), other: await userState(f.other) };
  });
  afterAll(async () => {
    expect(await userState(f.me, f.roomId)).toEqual(before.me);
    expect(await userState(f.other)).toEqual(before.other);
  });
}
