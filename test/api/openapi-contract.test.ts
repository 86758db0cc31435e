// The document tells the truth: every documented operation is driven against the real Worker
// (success and every reachable documented error), and each real response must have a documented
// status, a body matching the documented schema exactly (no undocumented field), a documented
// error code and documented headers. A final test fails if an operation or status went unexercised.

import { Validator } from "@seriousme/openapi-schema-validator";
import { v7 } from "uuid";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { ERROR_CODES } from "../../src/errors/index.ts";
import {
  type ApiResponse,
  type CallOptions,
  call,
  testEnv,
  uniqueMobileNumber,
  waitFor,
  workerUrl,
} from "../support/api.ts";
import { createSession, type TestSession, uniqueClientIp } from "../support/session.ts";
import { envelope, nowSeconds, paidUser, stripe } from "./billing-support.ts";
import {
  callbackBody,
  createProSession,
  geminiAnswer,
  geminiFault,
  marker,
  redis,
  settledReply,
  signQStash,
  sql,
} from "./chat-support.ts";
import { rawHead, rawRequest } from "./fuzz-support.ts";
import {
  allRefs,
  compileSchema,
  exampleFor,
  findOperation,
  hasExample,
  type Json,
  leaves,
  operations,
  resolveRef,
  responseProblems,
} from "./openapi-support.ts";

let doc: Json;
/** "METHOD /path/{template}" → statuses the Worker answered during this file. */
const exercised = new Map<string, Set<number>>();

/**
 * Documented statuses no test here can reach without breaking a shared dependency: 503s are
 * driven by the fault suites (test/api/faults), which switch the database or Redis off.
 */
// Billing writes' 404 user_not_found: a deleted user's sessions go with it (cascade), so the
// auth middleware answers 401 first; the 404 remains only for a deletion racing the request.
const UNREACHABLE_HERE = (key: string, status: number) =>
  status === 503 || (status === 404 && /subscri/.test(key));

/** Calls the Worker and fails the test if the response disagrees with the document. */
async function hit(method: string, path: string, opts: CallOptions = {}): Promise<ApiResponse> {
  const res = await call(method, path, opts);
  const found = findOperation(doc, method, path);
  expect(found, `${method} ${path} is not a documented operation`).toBeDefined();
  if (!found) return res;
  const statuses = exercised.get(found.key) ?? new Set<number>();
  statuses.add(res.status);
  exercised.set(found.key, statuses);
  expect(responseProblems(doc, found.op, res), `${method} ${path} → ${res.status}`).toEqual([]);
  return res;
}

async function expectStatus(status: number, method: string, path: string, opts: CallOptions = {}) {
  const res = await hit(method, path, opts);
  expect(res.status, `${method} ${path}: ${res.text.slice(0, 300)}`).toBe(status);
  return res;
}

/** Calls until `status` comes back (bounded), e.g. to run a limiter out. */
async function until(status: number, times: number, send: () => Promise<ApiResponse>) {
  for (let i = 0; i < times; i++) {
    const res = await send();
    if (res.status === status) return res;
  }
  throw new Error(`no ${status} after ${times} calls`);
}

/** Puts a number at the OTP lockout: its wrong-code counter (kept by the Worker) at the limit. */
async function lockOtp(mobileNumber: string) {
  await redis("SET", `otp:v1:failures:${mobileNumber}`, 100, "EX", 600);
}

const tooLarge = (field: string, bytes = 70 * 1024) => ({
  rawBody: JSON.stringify({ [field]: "x".repeat(bytes) }),
  headers: { "content-type": "application/json" },
});
const plainText = { rawBody: "hello", headers: { "content-type": "text/plain" } };
/** The common 400/413/415 trio for a JSON body route. */
async function bodyErrors(
  method: string,
  path: string,
  token?: string,
  bad: unknown = { nope: 1 },
) {
  const auth = token ? { token } : {};
  await expectStatus(400, method, path, { ...auth, body: bad });
  await expectStatus(413, method, path, { ...auth, ...tooLarge("title") });
  await expectStatus(415, method, path, { ...auth, ...plainText });
}

beforeAll(async () => {
  const res = await call("GET", "/openapi.json");
  expect(res.status).toBe(200);
  doc = res.body;
});

describe("the OpenAPI document", () => {
  it("is a valid OpenAPI 3.1 document whose references all resolve", async () => {
    const Response = z.object({
      description: z.string().min(1),
      headers: z.record(z.string(), z.object({ schema: z.object({}).loose() }).loose()).optional(),
      content: z.record(z.string(), z.object({ schema: z.unknown() }).loose()).optional(),
    });
    const Operation = z.object({
      summary: z.string().min(1),
      tags: z.array(z.string()).min(1),
      parameters: z
        .array(
          z.object({
            name: z.string(),
            in: z.enum(["path", "query", "header", "cookie"]),
            required: z.boolean().optional(),
            schema: z.unknown(),
          }),
        )
        .optional(),
      requestBody: z
        .object({ content: z.record(z.string(), z.object({ schema: z.unknown() }).loose()) })
        .loose()
        .optional(),
      responses: z.record(z.string().regex(/^[1-5]\d\d$|^[1-5]XX$|^default$/), Response),
      security: z.array(z.record(z.string(), z.array(z.string()))).optional(),
    });
    const Document = z.object({
      openapi: z.string().regex(/^3\.1\.\d+$/),
      info: z.object({ title: z.string().min(1), version: z.string().min(1) }).loose(),
      paths: z.record(z.string().regex(/^\//), z.record(z.string(), Operation)),
      components: z.object({
        schemas: z.record(z.string(), z.object({}).loose()),
        securitySchemes: z.record(z.string(), z.object({ type: z.string() }).loose()),
      }),
      tags: z.array(z.object({ name: z.string(), description: z.string().min(1) })),
    });
    const parsed = Document.safeParse(doc);
    const official = await new Validator().validate(structuredClone(doc));
    expect(official.errors ?? [], "@seriousme/openapi-schema-validator").toEqual([]);
    expect(official.valid).toBe(true);
    expect(parsed.success, JSON.stringify(parsed.error?.issues.slice(0, 5))).toBe(true);

    for (const ref of allRefs(doc)) expect(() => resolveRef(doc, ref), ref).not.toThrow();
    for (const { key, path, op } of operations(doc)) {
      // Path templates and path parameters agree, and path parameters are required.
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]).sort();
      const declared = (op.parameters ?? [])
        .filter((p: Json) => p.in === "path")
        .map((p: Json) => {
          expect(p.required, `${key} path parameter ${p.name}`).toBe(true);
          return p.name;
        })
        .sort();
      expect(declared, key).toEqual(templated);
      for (const s of op.security ?? []) {
        for (const scheme of Object.keys(s)) {
          expect(doc.components.securitySchemes[scheme], `${key} uses ${scheme}`).toBeDefined();
        }
      }
    }
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    // Every component schema compiles as JSON Schema.
    for (const name of Object.keys(doc.components.schemas)) {
      expect(
        () => compileSchema(doc, { $ref: `#/components/schemas/${name}` }),
        name,
      ).not.toThrow();
    }
  });

  it("declares every tag its operations use, each with a description", () => {
    const declared = new Set(doc.tags.map((t: Json) => t.name));
    const used = new Set(operations(doc).flatMap((o) => o.op.tags));
    expect([...used].filter((t) => !declared.has(t))).toEqual([]);
    expect([...declared].filter((t) => !used.has(t))).toEqual([]);
  });

  it("marks exactly the operations that refuse an anonymous caller with 401 as bearer-secured", async () => {
    for (const { method, path, key, op } of operations(doc)) {
      const concrete = path.replace(/\{[^}]+\}/g, "01936f4e-1c2d-7b3a-9f00-123456789abc");
      const res = await hit(method.toUpperCase(), concrete);
      const refused = res.status === 401 && res.body?.error?.code === "unauthorized";
      const secured = (op.security ?? []).some((s: Json) => "bearerAuth" in s);
      expect(secured, `${key} answered ${res.status} ${res.text.slice(0, 120)}`).toBe(refused);
      if (secured) expect(Object.keys(op.responses), key).toContain("401");
    }
  });

  it("gives an example for every request and success-response field, and the examples validate", () => {
    for (const { key, op } of operations(doc)) {
      const body = op.requestBody?.content?.["application/json"]?.schema;
      if (body) {
        const missing = leaves(doc, body).filter(([, s]) => !hasExample(s));
        expect(
          missing.map(([p]) => p),
          `${key} request fields without an example`,
        ).toEqual([]);
        const example = exampleFor(doc, body);
        expect(compileSchema(doc, body)(example), `${key} request example`).toEqual([]);
      }
      for (const [status, response] of Object.entries<Json>(op.responses)) {
        if (Number(status) >= 300) continue;
        for (const [type, media] of Object.entries<Json>(response.content ?? {})) {
          const missing = leaves(doc, media.schema).filter(([, s]) => !hasExample(s));
          expect(
            missing.map(([p]) => p),
            `${key} ${status} ${type} fields without an example`,
          ).toEqual([]);
          if (!type.endsWith("json")) continue;
          const example = exampleFor(doc, media.schema);
          expect(compileSchema(doc, media.schema)(example), `${key} ${status} example`).toEqual([]);
        }
      }
    }
  });

  it("answers every error status with the Error schema and a valid named example per code", () => {
    const validError = compileSchema(doc, { $ref: "#/components/schemas/Error" });
    expect(doc.components.schemas.Error.properties.error.properties.code.enum).toEqual([
      ...ERROR_CODES,
    ]);
    for (const { key, op } of operations(doc)) {
      for (const [status, response] of Object.entries<Json>(op.responses)) {
        // Successes, including a range such as 2XX (NaN here), carry their own schemas.
        if (!(Number(status) >= 400) || key === "GET /health") continue;
        const media = response.content?.["application/json"];
        expect(media?.schema, `${key} ${status}`).toEqual({ $ref: "#/components/schemas/Error" });
        const examples = Object.entries<Json>(media.examples ?? {});
        expect(examples.length, `${key} ${status} names no error code`).toBeGreaterThan(0);
        for (const [code, example] of examples) {
          expect(ERROR_CODES, `${key} ${status}`).toContain(code);
          expect(example.value.error.code).toBe(code);
          expect(validError(example.value), `${key} ${status} ${code}`).toEqual([]);
        }
      }
    }
  });

  it("is rejected by the response check when a field is undocumented (the check can fail)", () => {
    const op = doc.paths["/user/me"].get;
    const headers = new Headers({ "content-type": "application/json" });
    const user = exampleFor(doc, op.responses["200"].content["application/json"].schema);
    const ok = { status: 200, headers, body: user, text: JSON.stringify(user) };
    expect(responseProblems(doc, op, ok)).toEqual([]);
    const leaky = { ...ok, body: { user: { ...user.user, password_hash: "x" } } };
    expect(responseProblems(doc, op, leaky).join()).toMatch(/password_hash/);
    expect(responseProblems(doc, op, { ...ok, status: 418 }).join()).toMatch(/418/);
    const withHeader = {
      ...ok,
      headers: new Headers({ ...Object.fromEntries(headers), "x-cache": "HIT" }),
    };
    expect(responseProblems(doc, op, withHeader).join()).toMatch(/x-cache/);
  });
  it("is rejected by the response check for an extra field on a composed (allOf) schema", () => {
    const op = doc.paths["/auth/verify-otp"].post;
    const session = exampleFor(doc, op.responses["200"].content["application/json"].schema);
    const res = (body: unknown) => ({
      status: 200,
      headers: new Headers({ "content-type": "application/json" }),
      body,
      text: JSON.stringify(body),
    });
    expect(responseProblems(doc, op, res(session))).toEqual([]);
    expect(responseProblems(doc, op, res({ ...session, otp_mac: "x" })).join()).toMatch(/otp_mac/);
  });
});

describe("every documented operation against the Worker", () => {
  it("System: GET /health", async () => {
    await expectStatus(200, "GET", "/health");
    // The body limit runs before any route, for a GET too (fetch cannot send one: raw socket).
    const body = "x".repeat(70 * 1024);
    const raw = await rawRequest(
      rawHead("GET", "/health", [`Content-Length: ${body.length}`]),
      body,
    );
    const res = { ...raw, body: JSON.parse(raw.text) };
    expect(res.status).toBe(413);
    const found = findOperation(doc, "GET", "/health")!;
    exercised.get(found.key)?.add(413);
    expect(responseProblems(doc, found.op, res)).toEqual([]);
  });

  it("Auth: signup, codes, login, refresh, logout and passwords answer as documented", async () => {
    const mobile = uniqueMobileNumber();
    const password = "first password 1";
    const signedUp = await expectStatus(201, "POST", "/auth/signup", {
      body: { mobile_number: mobile, password },
    });
    await expectStatus(409, "POST", "/auth/signup", { body: { mobile_number: mobile } });
    await bodyErrors("POST", "/auth/signup", undefined, { mobile_number: "nope" });
    const signupIp = { "cf-connecting-ip": uniqueClientIp() };
    await until(429, 25, () =>
      hit("POST", "/auth/signup", {
        body: { mobile_number: uniqueMobileNumber() },
        headers: signupIp,
      }),
    );

    const ip = { "cf-connecting-ip": uniqueClientIp() };
    const sent = await expectStatus(200, "POST", "/auth/send-otp", {
      body: { mobile_number: mobile },
      headers: ip,
    });
    await expectStatus(429, "POST", "/auth/send-otp", {
      body: { mobile_number: mobile },
      headers: ip,
    });
    await expectStatus(404, "POST", "/auth/send-otp", {
      body: { mobile_number: uniqueMobileNumber() },
      headers: ip,
    });
    await bodyErrors("POST", "/auth/send-otp");

    const wrong = sent.body.otp === "000000" ? "111111" : "000000";
    await expectStatus(401, "POST", "/auth/verify-otp", {
      body: { mobile_number: mobile, otp: wrong },
      headers: ip,
    });
    const session = await expectStatus(200, "POST", "/auth/verify-otp", {
      body: {
        mobile_number: mobile,
        otp: sent.body.otp,
        challenge_id: sent.body.challenge_id,
        signup_token: signedUp.body.signup_token,
      },
    });
    await bodyErrors("POST", "/auth/verify-otp");
    // 100 wrong codes in a row lock a number (429). Sending 20 codes 30 s apart to get there is
    // too slow for a test, so the failure counter is set to the limit.
    const victim = await createSession();
    await lockOtp(victim.mobile_number);
    await expectStatus(429, "POST", "/auth/verify-otp", {
      body: { mobile_number: victim.mobile_number, otp: wrong },
    });

    await expectStatus(200, "POST", "/auth/login", { body: { mobile_number: mobile, password } });
    await expectStatus(401, "POST", "/auth/login", {
      body: { mobile_number: mobile, password: "wrong" },
    });
    await bodyErrors("POST", "/auth/login");
    const guesser = { "cf-connecting-ip": uniqueClientIp() };
    await until(429, 30, () =>
      hit("POST", "/auth/login", {
        body: { mobile_number: victim.mobile_number, password: "wrong" },
        headers: guesser,
      }),
    );

    const pair = await expectStatus(200, "POST", "/auth/refresh", {
      body: { refresh_token: session.body.refresh_token },
    });
    await expectStatus(401, "POST", "/auth/refresh", { body: { refresh_token: "rt_not.a-token" } });
    await bodyErrors("POST", "/auth/refresh");

    await expectStatus(200, "POST", "/auth/change-password", {
      token: pair.body.token,
      body: { current_password: password, new_password: "second password 2" },
    });
    const withPassword = await createSession({ password: "their password 1" });
    await expectStatus(401, "POST", "/auth/change-password", {
      token: withPassword.token,
      body: { current_password: "not it", new_password: "second password 2" },
    });
    await bodyErrors("POST", "/auth/change-password", victim.token, { new_password: "short" });
    // A first password needs a fresh code, never the bearer token alone.
    await expectStatus(403, "POST", "/auth/change-password", {
      token: victim.token,
      body: { new_password: "second password 2" },
    });
    await until(429, 30, () =>
      hit("POST", "/auth/change-password", {
        token: withPassword.token,
        body: { current_password: "still not it", new_password: "second password 2" },
        headers: guesser,
      }),
    );

    const reset = await expectStatus(200, "POST", "/auth/forgot-password", {
      body: { mobile_number: mobile },
      headers: ip,
    });
    await expectStatus(429, "POST", "/auth/forgot-password", {
      body: { mobile_number: mobile },
      headers: ip,
    });
    await bodyErrors("POST", "/auth/forgot-password");
    const resetWrong = reset.body.otp === "000000" ? "111111" : "000000";
    const resetBody = (otp: string) => ({
      mobile_number: mobile,
      otp,
      challenge_id: reset.body.challenge_id,
      new_password: "third password 3",
    });
    await expectStatus(401, "POST", "/auth/reset-password", { body: resetBody(resetWrong) });
    await expectStatus(200, "POST", "/auth/reset-password", { body: resetBody(reset.body.otp) });
    await bodyErrors("POST", "/auth/reset-password");
    const other = await createSession();
    await lockOtp(other.mobile_number);
    await expectStatus(429, "POST", "/auth/reset-password", {
      body: {
        mobile_number: other.mobile_number,
        otp: resetWrong,
        new_password: "third password 3",
      },
    });

    const fresh = await createSession();
    await bodyErrors("POST", "/auth/logout", fresh.token, { refresh_token: 42 });
    await expectStatus(401, "POST", "/auth/logout", {
      headers: { authorization: "Bearer a.b.c" },
    });
    await expectStatus(204, "POST", "/auth/logout", {
      token: fresh.token,
      body: { refresh_token: fresh.refresh_token },
    });
  });

  it("User: reads and updates the profile as documented", async () => {
    const session = await createSession();
    await expectStatus(200, "GET", "/user/me", { token: session.token });
    await expectStatus(200, "PATCH", "/user/me", {
      token: session.token,
      body: { name: "Ada Lovelace", email: null },
    });
    await bodyErrors("PATCH", "/user/me", session.token, {});
    await expectStatus(401, "PATCH", "/user/me", { body: { name: "x" } });
  });

  let chatUser: TestSession;
  let queuedReply: { chatroomId: string; replyId: string };

  it("Chat: reply control answers as documented", async () => {
    const { token, user } = await createProSession();
    const room = await expectStatus(201, "POST", "/chatroom", { token, body: {} });
    const id = room.body.chatroom.id as string;
    const content = marker("cancel");
    await geminiFault({ match: content, kind: "slow", times: 1, ms: 2_000 });
    const sent = await expectStatus(202, "POST", `/chatroom/${id}/message`, {
      token,
      body: { content },
    });
    const replyPath = `/chatroom/${id}/messages/${sent.body.reply.id}`;
    await expectStatus(200, "POST", `${replyPath}/cancel`, { token });
    await expectStatus(404, "POST", `/chatroom/${id}/messages/${v7()}/cancel`, { token });
    await expectStatus(401, "POST", `${replyPath}/cancel`, {});
    const done = await expectStatus(202, "POST", `/chatroom/${id}/message`, {
      token,
      body: { content: marker("done") },
    });
    const donePath = `/chatroom/${id}/messages/${done.body.reply.id}`;
    await waitFor(async () => {
      const res = await expectStatus(200, "GET", donePath, { token });
      return res.body.message.status !== "pending";
    });
    await expectStatus(409, "POST", `${donePath}/cancel`, { token });
    // Resume: a settled reply answers its one terminal event.
    const followed = await expectStatus(200, "GET", `${donePath}/stream`, { token });
    expect(followed.text).toContain("event: done");
    await expectStatus(400, "GET", `${donePath}/stream`, {
      token,
      headers: { "last-event-id": "not-a-number" },
    });
    await expectStatus(404, "GET", `/chatroom/${id}/messages/${v7()}/stream`, { token });
    await expectStatus(401, "GET", `${donePath}/stream`, {});
    // Four follows already open (their entries, as the Worker writes them): the fifth is 429.
    const gate = `follow:open:${user.id}`;
    const until = Date.now() + 60_000;
    await redis("ZADD", gate, until, "f1", until, "f2", until, "f3", until, "f4");
    await expectStatus(429, "GET", `${donePath}/stream`, { token });
    await redis("DEL", gate);
    const key = { "idempotency-key": marker("regen") };
    await expectStatus(202, "POST", `${donePath}/regenerate`, { token, headers: key });
    await expectStatus(409, "POST", `${replyPath}/regenerate`, { token, headers: key });
    await expectStatus(400, "POST", `${donePath}/regenerate`, {
      token,
      headers: { "idempotency-key": "has space" },
    });
    await expectStatus(404, "POST", `/chatroom/${id}/messages/${v7()}/regenerate`, { token });
    await expectStatus(401, "POST", `${donePath}/regenerate`, {});
  });

  it("Chat: chatrooms and messages answer as documented", async () => {
    chatUser = await createSession();
    const token = chatUser.token;
    const room = await expectStatus(201, "POST", "/chatroom", {
      token,
      body: { title: marker("c") },
    });
    const id = room.body.chatroom.id as string;
    await bodyErrors("POST", "/chatroom", token, { title: "" });
    const createKey = { "idempotency-key": marker("create") };
    await expectStatus(201, "POST", "/chatroom", {
      token,
      body: { title: "keyed" },
      headers: createKey,
    });
    const replayed = await expectStatus(201, "POST", "/chatroom", {
      token,
      body: { title: "keyed" },
      headers: createKey,
    });
    expect(replayed.headers.get("idempotent-replayed")).toBe("true");
    await expectStatus(409, "POST", "/chatroom", {
      token,
      body: { title: "other" },
      headers: createKey,
    });

    const first = await expectStatus(200, "GET", "/chatroom", { token });
    expect(first.headers.get("x-cache")).toBe("MISS");
    await expectStatus(200, "GET", "/chatroom?limit=1", { token });
    await expectStatus(400, "GET", "/chatroom?limit=0", { token });

    await expectStatus(200, "GET", `/chatroom/${id}`, { token });
    await expectStatus(404, "GET", `/chatroom/${crypto.randomUUID()}`, { token });
    await expectStatus(200, "PATCH", `/chatroom/${id}`, { token, body: { title: "Renamed" } });
    await expectStatus(404, "PATCH", `/chatroom/${crypto.randomUUID()}`, {
      token,
      body: { title: "x" },
    });
    await bodyErrors("PATCH", `/chatroom/${id}`, token, { title: "" });
    await expectStatus(200, "GET", "/models", { token });
    const notInPlan = { settings: { model: "gemini-3.1-pro-preview" } };
    await expectStatus(422, "POST", "/chatroom", { token, body: notInPlan });
    await expectStatus(422, "PATCH", `/chatroom/${id}`, { token, body: notInPlan });

    const key = { "idempotency-key": marker("key") };
    const accepted = await expectStatus(202, "POST", `/chatroom/${id}/message`, {
      token,
      body: { content: marker("hello") },
      headers: key,
    });
    const replyId = accepted.body.reply.id as string;
    queuedReply = { chatroomId: id, replyId };
    await expectStatus(409, "POST", `/chatroom/${id}/message`, {
      token,
      body: { content: "another body" },
      headers: key,
    });
    const streamed = await expectStatus(200, "POST", `/chatroom/${id}/message`, {
      token,
      body: { content: marker("stream") },
      headers: { accept: "text/event-stream" },
    });
    expect(streamed.text).toContain("event: done");
    await expectStatus(404, "POST", `/chatroom/${crypto.randomUUID()}/message`, {
      token,
      body: { content: "hi" },
    });
    await bodyErrors("POST", `/chatroom/${id}/message`, token, { content: " " });
    await until(429, 10, () =>
      hit("POST", `/chatroom/${id}/message`, { token, body: { content: marker("spend") } }),
    );

    await settledReply(chatUser, id, replyId);
    await expectStatus(429, "POST", `/chatroom/${id}/messages/${replyId}/regenerate`, { token });
    await expectStatus(200, "GET", "/usage", { token });
    await expectStatus(200, "GET", "/usage?from=2026-01-01&to=2026-01-31", { token });
    await expectStatus(400, "GET", "/usage?from=2026-01-01&to=2026-12-31", { token });
    await expectStatus(200, "GET", `/chatroom/${id}/messages/${replyId}`, { token });
    await expectStatus(404, "GET", `/chatroom/${id}/messages/${crypto.randomUUID()}`, { token });
    await expectStatus(200, "GET", `/chatroom/${id}/messages?limit=2`, { token });
    await expectStatus(200, "GET", "/chatroom", { token });
    // The cache write runs after the response: read until the page comes from Redis.
    const cached = await waitFor(async () => {
      const res = await expectStatus(200, "GET", "/chatroom", { token });
      return res.headers.get("x-cache") === "HIT" && res;
    });
    expect(cached.headers.get("x-cache")).toBe("HIT");
    await expectStatus(400, "GET", `/chatroom/${id}/messages?limit=1000`, { token });
    await expectStatus(404, "GET", `/chatroom/${crypto.randomUUID()}/messages`, { token });

    // Another room goes: the queued reply above must outlive this test for the webhook checks.
    const doomed = await expectStatus(201, "POST", "/chatroom", {
      token,
      body: { title: marker("d") },
    });
    const doomedId = doomed.body.chatroom.id as string;
    await expectStatus(204, "DELETE", `/chatroom/${doomedId}`, { token });
    await expectStatus(404, "DELETE", `/chatroom/${doomedId}`, { token });
  });

  it("Subscriptions: checkout, portal, cancel and status answer as documented", async () => {
    const s = await createSession();
    const token = s.token;
    await expectStatus(200, "GET", "/subscription/status", { token });
    await expectStatus(409, "POST", "/subscription/portal", { token });
    await expectStatus(409, "POST", "/subscription/cancel", { token });
    await expectStatus(400, "POST", "/subscribe/pro", {
      token,
      body: { success_url: "https://evil.example/steal" },
    });
    await expectStatus(413, "POST", "/subscribe/pro", { token, ...tooLarge("success_url") });
    await expectStatus(415, "POST", "/subscribe/pro", { token, ...plainText });
    await expectStatus(200, "POST", "/subscribe/pro", { token });
    await expectStatus(200, "POST", "/subscription/portal", { token, body: {} });
    await expectStatus(400, "POST", "/subscription/portal", {
      token,
      body: { return_url: "https://evil.example/" },
    });
    await expectStatus(413, "POST", "/subscription/portal", { token, ...tooLarge("return_url") });
    await expectStatus(415, "POST", "/subscription/portal", { token, ...plainText });
    await expectStatus(409, "POST", "/subscription/cancel", { token, body: {} });
    await expectStatus(400, "POST", "/subscription/cancel", { token, body: { at_once: true } });
    // Each Stripe-calling write allows 10 valid requests per user per 10 minutes.
    for (const path of ["/subscribe/pro", "/subscription/portal", "/subscription/cancel"]) {
      const limited = await until(429, 12, () => hit("POST", path, { token }));
      expect(limited.body.error.code).toBe("rate_limited");
    }

    const paid = await paidUser();
    await expectStatus(409, "POST", "/subscribe/pro", { token: paid.session.token });
    await expectStatus(200, "POST", "/subscription/cancel", { token: paid.session.token });

    // A valid token whose user is gone: its session went with it, so every call answers 401;
    // the read's own 404 waits for the session check like a 200 (a 404 against a 200 would be
    // an existence oracle for a revoked token, ADR 8 §4).
    const gone = await createSession();
    await sql().query("delete from users where id = $1", [gone.user.id]);
    for (const [method, path] of [
      ["POST", "/subscribe/pro"],
      ["POST", "/subscription/cancel"],
      ["POST", "/subscription/portal"],
      ["GET", "/subscription/status"],
    ] as const) {
      const res = await expectStatus(401, method, path, { token: gone.token });
      expect(res.body.error.code).toBe("unauthorized");
    }
  });

  it("Webhooks: Stripe and QStash deliveries answer as documented", async () => {
    // An event type the Worker ignores, signed for real: acknowledged without effect.
    const event = JSON.stringify(
      envelope("customer.created", { id: "cus_contract", object: "customer" }),
    );
    const signature = await stripe.webhooks.generateTestHeaderStringAsync({
      payload: event,
      secret: testEnv.STRIPE_WEBHOOK_SECRET as string,
      timestamp: nowSeconds(),
    });
    await expectStatus(200, "POST", "/webhook/stripe", {
      rawBody: event,
      headers: { "content-type": "application/json", "stripe-signature": signature },
    });
    await expectStatus(400, "POST", "/webhook/stripe", {
      rawBody: event,
      headers: { "content-type": "application/json", "stripe-signature": "t=1,v1=bad" },
    });
    await expectStatus(413, "POST", "/webhook/stripe", tooLarge("data", 1100 * 1024));

    for (const path of ["/webhook/qstash/reply", "/webhook/qstash/reply-failed"]) {
      const url = `${path}?reply_id=${queuedReply.replyId}`;
      const body = callbackBody(geminiAnswer("late duplicate"));
      const signed = await signQStash(`${workerUrl}${url}`, body);
      await expectStatus(200, "POST", url, {
        rawBody: body,
        headers: { "content-type": "application/json", "upstash-signature": signed },
      });
      await expectStatus(401, "POST", url, {
        rawBody: body,
        headers: { "content-type": "application/json" },
      });
      // A reply that does not exist (yet): 404, so QStash retries a callback that outran the commit.
      // A reply id made just now: its row may still be committing, so the answer is 404.
      const unknownUrl = `${path}?reply_id=${v7()}`;
      await expectStatus(404, "POST", unknownUrl, {
        rawBody: body,
        headers: {
          "content-type": "application/json",
          "upstash-signature": await signQStash(`${workerUrl}${unknownUrl}`, body),
        },
      });
      const badUrl = `${path}?reply_id=not-an-id`;
      await expectStatus(400, "POST", badUrl, {
        rawBody: body,
        headers: {
          "content-type": "application/json",
          "upstash-signature": await signQStash(`${workerUrl}${badUrl}`, body),
        },
      });
      await expectStatus(413, "POST", url, tooLarge("body", 4200 * 1024));
    }

    // The title job's callback: a usable answer for a chatroom that is not (or no longer) auto
    // titled changes nothing and is acknowledged.
    const titleUrl = `/webhook/qstash/title?chatroom_id=${v7()}`;
    const titleBody = callbackBody(geminiAnswer("Cat names"));
    await expectStatus(200, "POST", titleUrl, {
      rawBody: titleBody,
      headers: {
        "content-type": "application/json",
        "upstash-signature": await signQStash(`${workerUrl}${titleUrl}`, titleBody),
      },
    });
    await expectStatus(401, "POST", titleUrl, {
      rawBody: titleBody,
      headers: { "content-type": "application/json" },
    });
    const badTitleUrl = "/webhook/qstash/title?chatroom_id=not-an-id";
    await expectStatus(400, "POST", badTitleUrl, {
      rawBody: titleBody,
      headers: {
        "content-type": "application/json",
        "upstash-signature": await signQStash(`${workerUrl}${badTitleUrl}`, titleBody),
      },
    });
    await expectStatus(413, "POST", titleUrl, tooLarge("body", 4200 * 1024));
  });
});

describe("coverage", () => {
  it("exercised every documented operation and every documented status reachable here", () => {
    const missing: string[] = [];
    for (const { key, op } of operations(doc)) {
      const answered = [...(exercised.get(key) ?? [])];
      for (const status of Object.keys(op.responses)) {
        // A range (2XX) is covered by a status in it that has no explicit entry of its own.
        const covered = /^\dXX$/.test(status)
          ? answered.some((s) => String(s)[0] === status[0] && !(String(s) in op.responses))
          : answered.includes(Number(status));
        if (!covered && !UNREACHABLE_HERE(key, Number(status))) missing.push(`${key} ${status}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
