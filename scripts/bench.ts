// `npm run bench`: what each endpoint spends its time on. Self-hosts the local cloud and the
// Worker, then for LOCAL_LATENCY_MS = 0 and 50 (set through /_control/latency: a fixed delay on
// every vendor call, imitating an edge location far from the database) measures p50/p95 of every
// endpoint and derives its sequential vendor round trips as round((p50@50 − p50@0) / 50).
// Exits 1 when an endpoint exceeds its target, or the bundle its gzip budget.
//
//   npm run bench                         # 25 samples per endpoint and latency, 3 warm-ups
//   npm run bench -- --samples 40 --json bench.json --markdown bench.md
//   npm run bench -- --only "GET /user/me"      # endpoints whose label contains the text
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { neon, neonConfig } from "@neondatabase/serverless";
import Stripe from "stripe";
import { signDelivery } from "../local/qstash/signature.ts";
import {
  type BundleReport,
  measureBundle,
  measureStartup,
  type StartupReport,
} from "./check-bundle.ts";
import {
  ms1,
  type Reply,
  type RequestOptions,
  randomClientIp,
  randomMobileNumber,
  summarize,
  table,
  timedRequest,
} from "./support/http.ts";
import { selfHost } from "./support/self-host.ts";

const { values: args } = parseArgs({
  options: {
    samples: { type: "string", default: "25" },
    warmup: { type: "string", default: "3" },
    latency: { type: "string", default: "50" },
    only: { type: "string" },
    json: { type: "string" },
    markdown: { type: "string" },
    "skip-bundle": { type: "boolean", default: false },
  },
});
const SAMPLES = Math.min(200, Math.max(5, Number(args.samples)));
const WARMUP = Math.min(20, Math.max(1, Number(args.warmup)));
const LATENCY = Math.min(500, Math.max(10, Number(args.latency)));

const started = performance.now();
// The bench switches faults on purpose (a failing QStash publish); the Worker's logs of them
// would only bury the table.
// Prompts are timed back to back: MAX_PENDING_REPLIES would answer most of them 409.
const host = await selfHost({
  logLevel: "none",
  vars: { MAX_PENDING_REPLIES_BASIC: "1000", MAX_PENDING_REPLIES_PRO: "1000" },
});
const W = host.workerUrl;
const vars = host.vars;
neonConfig.fetchEndpoint = () => `${host.cloudUrl}/neon/sql`;
const sql = neon(vars.DATABASE_URL as string);
const cloud = new URL(host.cloudUrl);
const stripe = new Stripe(vars.STRIPE_SECRET_KEY as string, {
  host: cloud.hostname,
  port: cloud.port,
  protocol: "http",
  httpClient: Stripe.createFetchHttpClient(),
});

// ---- helpers (all fixture work runs at latency 0) ---------------------------------------------

/** Each benchmark request comes from its own client address: per-IP limits never trip it. */
const call = (method: string, path: string, opts: RequestOptions = {}) =>
  timedRequest(W, method, path, {
    ...opts,
    headers: { "cf-connecting-ip": randomClientIp(), ...opts.headers },
  });

function must(res: Reply, status: number, step: string): Reply {
  if (res.status !== status) {
    throw new Error(
      `${step} answered ${res.status} (expected ${status}): ${res.text.slice(0, 300)}`,
    );
  }
  return res;
}

async function control(path: string, body?: unknown): Promise<void> {
  const res = await fetch(`${host.cloudUrl}/_control/${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body ?? {}),
  });
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
}

const setLatency = (ms: number) => control("latency", { ms });

interface Session {
  userId: string;
  mobile: string;
  token: string;
  refresh: string;
  password?: string;
}

async function signUp(password?: string): Promise<string> {
  const mobile = randomMobileNumber();
  must(
    await call("POST", "/auth/signup", {
      body: { mobile_number: mobile, ...(password ? { password } : {}) },
    }),
    201,
    "signup",
  );
  // A signup password works only once the number is proved by a code; the fixture proves it
  // directly, so password logins are measured without a send-otp/verify-otp per user.
  if (password) {
    await sql.query("update users set mobile_verified_at = now() where mobile_number = $1", [
      mobile,
    ]);
  }
  return mobile;
}

/** A login code and its challenge id (codes are bound to the asking client's network). */
async function loginCode(mobile: string): Promise<{ otp: string; challenge_id: string }> {
  const res = must(
    await call("POST", "/auth/send-otp", {
      body: { mobile_number: mobile },
    }),
    200,
    "send-otp",
  );
  return { otp: res.body.otp as string, challenge_id: res.body.challenge_id as string };
}

async function session(opts: { password?: string; pro?: boolean } = {}): Promise<Session> {
  const mobile = await signUp(opts.password);
  const code = await loginCode(mobile);
  const res = must(
    await call("POST", "/auth/verify-otp", {
      body: { mobile_number: mobile, ...code },
    }),
    200,
    "verify-otp",
  );
  const s: Session = {
    userId: res.body.user.id,
    mobile,
    token: res.body.token,
    refresh: res.body.refresh_token,
    ...(opts.password ? { password: opts.password } : {}),
  };
  if (opts.pro) await sql.query("update users set tier = 'pro' where id = $1", [s.userId]);
  return s;
}

async function chatroom(s: Session, title = `bench ${randomUUID().slice(0, 8)}`): Promise<string> {
  const res = must(
    await call("POST", "/chatroom", { token: s.token, body: { title } }),
    201,
    "room",
  );
  return res.body.chatroom.id as string;
}

async function settle(marker: string): Promise<void> {
  await control("qstash/flush", { match: marker, timeout_ms: 30_000 });
}

/** A prompt whose reply has completed; returns the reply id. */
async function exchange(s: Session, roomId: string): Promise<string> {
  const content = `bench ${randomUUID()}`;
  const res = must(
    await call("POST", `/chatroom/${roomId}/message`, { token: s.token, body: { content } }),
    202,
    "prompt",
  );
  await settle(content);
  return res.body.reply.id as string;
}

/** A user who paid for Pro through the local Checkout page; every webhook delivered. */
async function paidUser(): Promise<Session & { subscriptionId: string }> {
  const s = await session();
  const res = must(await call("POST", "/subscribe/pro", { token: s.token }), 200, "subscribe");
  const paid = await fetch(res.body.checkout_url, { method: "POST", redirect: "manual" });
  if (![200, 303].includes(paid.status)) throw new Error(`checkout pay: ${paid.status}`);
  await paid.text();
  const checkout = await stripe.checkout.sessions.retrieve(res.body.session_id);
  await control("stripe/flush", { timeout_ms: 20_000 });
  for (let i = 0; ; i++) {
    const st = must(await call("GET", "/subscription/status", { token: s.token }), 200, "status");
    if (st.body.tier === "pro") break;
    if (i > 100) throw new Error("the paid user never became Pro");
    await new Promise((r) => setTimeout(r, 50));
  }
  return { ...s, subscriptionId: checkout.subscription as string };
}

function stripeEvent(type: string, object: object): string {
  return JSON.stringify({
    id: `evt_bench_${randomUUID()}`,
    object: "event",
    api_version: "2026-10-28.endive",
    created: Math.floor(Date.now() / 1000),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  });
}

async function stripeDelivery(payload: string): Promise<RequestOptions> {
  const header = await stripe.webhooks.generateTestHeaderStringAsync({
    payload,
    secret: vars.STRIPE_WEBHOOK_SECRET as string,
  });
  return {
    rawBody: payload,
    headers: { "content-type": "application/json", "stripe-signature": header },
  };
}

// ---- the endpoints ------------------------------------------------------------------------------

/**
 * One measured endpoint. `prepare` builds what `count` requests need (at latency 0); `request`
 * sends the i-th measured request and must check its answer; `after` runs untimed cleanup.
 */
interface Case {
  label: string;
  target?: number;
  note?: string;
  samples?: number;
  prepare(count: number): Promise<(() => Promise<Reply>)[]>;
}

/** Valid requests a user may send to each billing write per 10 minutes (BILLING_LIMITS). */
const BILLING_PER_USER = 10;

const repeat = <T>(count: number, make: (i: number) => T) =>
  Array.from({ length: count }, (_, i) => make(i));

/** `count` times the same request (for endpoints that change nothing, or change it idempotently). */
async function same(count: number, send: () => Promise<Reply>) {
  return repeat(count, () => send);
}

const expect =
  (status: number, label: string, check?: (r: Reply) => string | null) =>
  async (p: Promise<Reply>) => {
    const r = await p;
    if (r.status !== status) {
      throw new Error(`${label}: ${r.status} (expected ${status}) ${r.text.slice(0, 300)}`);
    }
    const problem = check?.(r);
    if (problem) throw new Error(`${label}: ${problem}`);
    return r;
  };

const cases: Case[] = [
  {
    label: "GET /openapi.json",
    note: "no vendor I/O at all: the floor",
    prepare: (n) => same(n, () => expect(200, "openapi")(call("GET", "/openapi.json"))),
  },
  {
    label: "authentication (valid token, GET /chatroom/{malformed id})",
    target: 0,
    note: "requireAuth verifies the JWT, then the handler answers 404 before any I/O",
    async prepare(n) {
      const s = await session();
      return same(n, () =>
        expect(404, "auth")(call("GET", "/chatroom/not-an-id", { token: s.token })),
      );
    },
  },
  {
    label: "authentication refused (bad token, GET /user/me)",
    target: 0,
    note: "401 from requireAuth",
    prepare: (n) =>
      same(n, () => expect(401, "auth refused")(call("GET", "/user/me", { token: "a.b.c" }))),
  },
  {
    label: "GET /health",
    note: "database and Redis checked concurrently",
    prepare: (n) => same(n, () => expect(200, "health")(call("GET", "/health"))),
  },
  {
    label: "POST /auth/signup",
    prepare: async (n) =>
      repeat(
        n,
        () => () =>
          expect(
            201,
            "signup",
          )(
            call("POST", "/auth/signup", {
              body: { mobile_number: randomMobileNumber() },
            }),
          ),
      ),
  },
  {
    label: "POST /auth/send-otp",
    async prepare(n) {
      const numbers = await Promise.all(repeat(n, () => signUp()));
      return numbers.map(
        (mobile) => () =>
          expect(
            200,
            "send-otp",
          )(
            call("POST", "/auth/send-otp", {
              body: { mobile_number: mobile },
            }),
          ),
      );
    },
  },
  {
    label: "POST /auth/verify-otp",
    target: 2,
    async prepare(n) {
      const codes = await Promise.all(
        repeat(n, async () => {
          const mobile = await signUp();
          return { mobile, code: await loginCode(mobile) };
        }),
      );
      return codes.map(
        ({ mobile, code }) =>
          () =>
            expect(
              200,
              "verify-otp",
            )(
              call("POST", "/auth/verify-otp", {
                body: { mobile_number: mobile, ...code },
              }),
            ),
      );
    },
  },
  {
    label: "POST /auth/login",
    note: "includes one PBKDF2 verification (CPU, the same at both latencies)",
    async prepare(n) {
      // 10 password attempts per number per 15 minutes: 8 logins per user stay clear of it.
      const password = "bench password 123";
      const numbers = await Promise.all(repeat(Math.ceil(n / 8), () => signUp(password)));
      return repeat(
        n,
        (i) => () =>
          expect(
            200,
            "login",
          )(
            call("POST", "/auth/login", {
              body: { mobile_number: numbers[Math.floor(i / 8)], password },
            }),
          ),
      );
    },
  },
  {
    label: "POST /auth/refresh",
    async prepare(n) {
      const s = await session();
      let refresh = s.refresh;
      return repeat(n, () => async () => {
        const r = await expect(
          200,
          "refresh",
        )(call("POST", "/auth/refresh", { body: { refresh_token: refresh } }));
        refresh = r.body.refresh_token;
        return r;
      });
    },
  },
  {
    label: "POST /auth/logout",
    async prepare(n) {
      const password = "bench password 123";
      const numbers = await Promise.all(repeat(Math.ceil(n / 8), () => signUp(password)));
      const sessions: { token: string; refresh: string }[] = [];
      for (let i = 0; i < n; i++) {
        const r = must(
          await call("POST", "/auth/login", {
            body: { mobile_number: numbers[Math.floor(i / 8)], password },
          }),
          200,
          "login",
        );
        sessions.push({ token: r.body.token, refresh: r.body.refresh_token });
      }
      return sessions.map(
        (s) => () =>
          expect(
            204,
            "logout",
          )(call("POST", "/auth/logout", { token: s.token, body: { refresh_token: s.refresh } })),
      );
    },
  },
  {
    label: "POST /auth/forgot-password",
    async prepare(n) {
      const numbers = await Promise.all(repeat(n, () => signUp("bench password 123")));
      return numbers.map(
        (mobile) => () =>
          expect(
            200,
            "forgot",
          )(
            call("POST", "/auth/forgot-password", {
              body: { mobile_number: mobile },
            }),
          ),
      );
    },
  },
  {
    label: "POST /auth/reset-password",
    note: "includes one PBKDF2 hash",
    async prepare(n) {
      const codes = await Promise.all(
        repeat(n, async () => {
          const mobile = await signUp("bench password 123");
          const r = must(
            await call("POST", "/auth/forgot-password", {
              body: { mobile_number: mobile },
            }),
            200,
            "forgot",
          );
          return {
            mobile,
            otp: r.body.otp as string,
            challenge_id: r.body.challenge_id as string,
          };
        }),
      );
      return codes.map(
        ({ mobile, otp, challenge_id }) =>
          () =>
            expect(
              200,
              "reset",
            )(
              call("POST", "/auth/reset-password", {
                body: {
                  mobile_number: mobile,
                  otp,
                  challenge_id,
                  new_password: "another bench password",
                },
              }),
            ),
      );
    },
  },
  {
    label: "POST /auth/change-password",
    note: "includes one PBKDF2 verification and one hash",
    async prepare(n) {
      // Each change spends one of the number's 10 password attempts per 15 minutes (shared with
      // login): 8 changes per user stay clear of it, alternating between two passwords.
      const passwords = ["bench password one", "bench password two"];
      const users = await Promise.all(
        repeat(Math.ceil(n / 8), () => session({ password: passwords[0] })),
      );
      const tokens = users.map((u) => u.token);
      return repeat(n, (i) => async () => {
        const user = Math.floor(i / 8);
        const r = await expect(
          200,
          "change-password",
        )(
          call("POST", "/auth/change-password", {
            token: tokens[user],
            body: { current_password: passwords[i % 2], new_password: passwords[(i + 1) % 2] },
          }),
        );
        tokens[user] = r.body.token;
        return r;
      });
    },
  },
  {
    label: "GET /user/me",
    target: 1,
    async prepare(n) {
      const s = await session();
      return same(n, () => expect(200, "me")(call("GET", "/user/me", { token: s.token })));
    },
  },
  {
    label: "PATCH /user/me",
    async prepare(n) {
      const s = await session();
      return repeat(
        n,
        (i) => () =>
          expect(
            200,
            "patch me",
          )(call("PATCH", "/user/me", { token: s.token, body: { name: `bench ${i}` } })),
      );
    },
  },
  {
    label: "GET /models",
    target: 1,
    async prepare(n) {
      const s = await session();
      return same(n, () => expect(200, "models")(call("GET", "/models", { token: s.token })));
    },
  },
  {
    label: "POST /chatroom",
    target: 2,
    async prepare(n) {
      const s = await session();
      return repeat(
        n,
        (i) => () =>
          expect(
            201,
            "create room",
          )(call("POST", "/chatroom", { token: s.token, body: { title: `bench ${i}` } })),
      );
    },
  },
  {
    label: "GET /chatroom (cache hit)",
    target: 1,
    async prepare(n) {
      const s = await session();
      await chatroom(s);
      await chatroom(s);
      must(await call("GET", "/chatroom", { token: s.token }), 200, "prime the cache");
      await new Promise((r) => setTimeout(r, 300)); // the cache write runs under waitUntil
      const hit = (r: Reply) => (r.headers.get("x-cache") === "HIT" ? null : "not a cache hit");
      return same(n, () =>
        expect(200, "list hit", hit)(call("GET", "/chatroom", { token: s.token })),
      );
    },
  },
  {
    label: "GET /chatroom (cache miss)",
    note: "a different page size each time, so every read misses",
    async prepare(n) {
      const s = await session();
      await chatroom(s);
      const miss = (r: Reply) => (r.headers.get("x-cache") === "MISS" ? null : "not a cache miss");
      return repeat(
        n,
        (i) => () =>
          expect(
            200,
            "list miss",
            miss,
          )(call("GET", `/chatroom?limit=${(i % 100) + 1}`, { token: s.token })),
      );
    },
  },
  {
    label: "GET /chatroom/:id",
    target: 1,
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      await exchange(s, room);
      return same(n, () =>
        expect(200, "room")(call("GET", `/chatroom/${room}`, { token: s.token })),
      );
    },
  },
  {
    label: "PATCH /chatroom/:id",
    target: 2,
    async prepare(n) {
      const s = await session();
      const room = await chatroom(s);
      return repeat(
        n,
        (i) => () =>
          expect(
            200,
            "rename",
          )(
            call("PATCH", `/chatroom/${room}`, { token: s.token, body: { title: `renamed ${i}` } }),
          ),
      );
    },
  },
  {
    label: "DELETE /chatroom/:id",
    target: 2,
    async prepare(n) {
      const s = await session();
      const rooms: string[] = [];
      for (let i = 0; i < n; i++) rooms.push(await chatroom(s));
      return rooms.map(
        (room) => () =>
          expect(204, "delete")(call("DELETE", `/chatroom/${room}`, { token: s.token })),
      );
    },
  },
  {
    label: "GET /chatroom/:id/messages",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      await exchange(s, room);
      return same(n, () =>
        expect(200, "messages")(call("GET", `/chatroom/${room}/messages`, { token: s.token })),
      );
    },
  },
  {
    label: "GET /chatroom/:id/messages/:message_id",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      const reply = await exchange(s, room);
      return same(n, () =>
        expect(
          200,
          "message",
        )(call("GET", `/chatroom/${room}/messages/${reply}`, { token: s.token })),
      );
    },
  },
  {
    label: "POST /chatroom/:id/message",
    target: 2,
    note: "queued (202); each reply is settled, untimed, before the next prompt",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      await exchange(s, room);
      return repeat(n, () => async () => {
        const content = `bench ${randomUUID()}`;
        const r = await expect(
          202,
          "prompt",
        )(call("POST", `/chatroom/${room}/message`, { token: s.token, body: { content } }));
        // Settled outside the measured time, so QStash callbacks never overlap a measurement.
        const latency = currentLatency;
        await setLatency(0);
        await settle(content);
        await setLatency(latency);
        return r;
      });
    },
  },
  {
    label: "POST /chatroom/:id/messages/:message_id/regenerate",
    target: 2,
    note: "queued (202); each new reply is settled, untimed, before the next",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      const content = `bench ${randomUUID()}`;
      must(
        await call("POST", `/chatroom/${room}/message`, { token: s.token, body: { content } }),
        202,
        "prompt",
      );
      await settle(content);
      let last = (await call("GET", `/chatroom/${room}`, { token: s.token })).body.messages.at(-1)
        .id as string;
      return repeat(n, () => async () => {
        const r = await expect(
          202,
          "regenerate",
        )(call("POST", `/chatroom/${room}/messages/${last}/regenerate`, { token: s.token }));
        last = r.body.reply.id;
        const latency = currentLatency;
        await setLatency(0);
        // Published after the response: wait for the reply itself, not only QStash's queue
        // (a pending reply cannot be regenerated).
        for (let i = 0; i < 300; i++) {
          const m = await call("GET", `/chatroom/${room}/messages/${last}`, { token: s.token });
          if (m.body.message?.status !== "pending") break;
          await settle(content);
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await setLatency(latency);
        return r;
      });
    },
  },
  {
    label: "POST /chatroom/:id/messages/:message_id/cancel",
    target: 3,
    note: "a pending queued reply: session check, one batch, then the quota refund",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      const marker = `bench-nopublish-${randomUUID()}`;
      // Publishing fails for these prompts, so their replies stay pending until cancelled.
      await control("qstash/publish-fault", { match: marker, mode: "error" });
      const replies: string[] = [];
      try {
        for (let i = 0; i < n; i++) {
          const r = must(
            await call("POST", `/chatroom/${room}/message`, {
              token: s.token,
              body: { content: `${marker} ${i}` },
            }),
            202,
            "prompt",
          );
          replies.push(r.body.reply.id);
        }
      } finally {
        await control("qstash/publish-fault", { match: marker, mode: "none" });
      }
      return replies.map(
        (id) => () =>
          expect(
            200,
            "cancel",
          )(call("POST", `/chatroom/${room}/messages/${id}/cancel`, { token: s.token })),
      );
    },
  },
  {
    label: "POST /chatroom/:id/message (SSE, until the stream ends)",
    note: "includes Gemini's streamGenerateContent and saving the reply",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      return repeat(
        n,
        () => () =>
          expect(200, "sse", (r) => (r.text.includes("event: done") ? null : "no done event"))(
            call("POST", `/chatroom/${room}/message`, {
              token: s.token,
              body: { content: `bench ${randomUUID()}` },
              headers: { accept: "text/event-stream" },
            }),
          ),
      );
    },
  },
  {
    label: "POST /webhook/qstash/reply",
    note: "a signed callback carrying Gemini's answer for a pending reply",
    async prepare(n) {
      const s = await session({ pro: true });
      const room = await chatroom(s);
      const marker = `bench-nopublish-${randomUUID()}`;
      // Publishing fails for these prompts, so their replies stay pending for the callback below.
      await control("qstash/publish-fault", { match: marker, mode: "error" });
      const replies: string[] = [];
      try {
        for (let i = 0; i < n; i++) {
          const r = must(
            await call("POST", `/chatroom/${room}/message`, {
              token: s.token,
              body: { content: `${marker} ${i}` },
            }),
            202,
            "prompt",
          );
          replies.push(r.body.reply.id);
        }
      } finally {
        await control("qstash/publish-fault", { match: marker, mode: "none" });
      }
      const answer = {
        candidates: [
          { content: { role: "model", parts: [{ text: "ok" }] }, finishReason: "STOP", index: 0 },
        ],
        usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 1, totalTokenCount: 4 },
      };
      return Promise.all(
        replies.map(async (id) => {
          const path = `/webhook/qstash/reply?reply_id=${id}`;
          const body = JSON.stringify({
            status: 200,
            header: { "Content-Type": ["application/json"] },
            body: Buffer.from(JSON.stringify(answer)).toString("base64"),
            retried: 0,
            maxRetries: 3,
            sourceMessageId: `msg_${randomUUID()}`,
            url: `${vars.GEMINI_BASE_URL}/v1beta/models/x:generateContent`,
            method: "POST",
            createdAt: String(Date.now()),
          });
          const signature = await signDelivery(
            vars.QSTASH_CURRENT_SIGNING_KEY as string,
            `${vars.APP_URL}${path}`,
            new TextEncoder().encode(body),
          );
          return () =>
            expect(200, "callback", (r) => (r.body.status === "complete" ? null : r.text))(
              call("POST", path, {
                rawBody: body,
                headers: { "content-type": "application/json", "upstash-signature": signature },
              }),
            );
        }),
      );
    },
  },
  {
    label: "POST /webhook/stripe (ignored event type)",
    note: "signature check only",
    prepare: async (n) =>
      repeat(
        n,
        () => async () =>
          expect(
            200,
            "stripe ignored",
          )(
            call(
              "POST",
              "/webhook/stripe",
              await stripeDelivery(
                stripeEvent("customer.created", { id: "cus_x", object: "customer" }),
              ),
            ),
          ),
      ),
  },
  {
    label: "POST /webhook/stripe (customer.subscription.updated)",
    note: "re-reads the subscription from Stripe, then applies it",
    samples: 10,
    async prepare(n) {
      const u = await paidUser();
      const sub = await stripe.subscriptions.retrieve(u.subscriptionId);
      return repeat(
        n,
        () => async () =>
          expect(
            200,
            "stripe updated",
          )(
            call(
              "POST",
              "/webhook/stripe",
              await stripeDelivery(stripeEvent("customer.subscription.updated", sub)),
            ),
          ),
      );
    },
  },
  {
    label: "POST /subscribe/pro",
    async prepare(n) {
      // A user may open 10 checkouts per 10 minutes (BILLING_LIMITS): a fresh user every 10.
      const users: Session[] = [];
      for (let i = 0; i < Math.ceil(n / BILLING_PER_USER); i++) users.push(await session());
      return repeat(n, (i) => {
        const s = users[Math.floor(i / BILLING_PER_USER)] as Session;
        return () => expect(200, "subscribe")(call("POST", "/subscribe/pro", { token: s.token }));
      });
    },
  },
  {
    label: "GET /subscription/status",
    async prepare(n) {
      const s = await session();
      return same(n, () =>
        expect(200, "status")(call("GET", "/subscription/status", { token: s.token })),
      );
    },
  },
  {
    label: "POST /subscription/portal",
    samples: 10,
    async prepare(n) {
      const users: Session[] = [];
      for (let i = 0; i < Math.ceil(n / BILLING_PER_USER); i++) users.push(await paidUser());
      return repeat(n, (i) => {
        const u = users[Math.floor(i / BILLING_PER_USER)] as Session;
        return () =>
          expect(200, "portal")(call("POST", "/subscription/portal", { token: u.token }));
      });
    },
  },
  {
    label: "POST /subscription/cancel",
    samples: 10,
    async prepare(n) {
      const users = [];
      for (let i = 0; i < n; i++) users.push(await paidUser());
      return users.map(
        (u) => () =>
          expect(200, "cancel", (r) => (r.body.cancel_at_period_end ? null : r.text))(
            call("POST", "/subscription/cancel", { token: u.token }),
          ),
      );
    },
  },
];

// ---- measuring ----------------------------------------------------------------------------------

let currentLatency = 0;

interface Measured {
  label: string;
  target: number | undefined;
  note: string | undefined;
  samples: number;
  at: Record<number, { p50: number; p95: number }>;
  rounds: number;
  pass: boolean | null;
}

async function measure(c: Case, latency: number): Promise<{ p50: number; p95: number }> {
  const count = (c.samples ?? SAMPLES) + WARMUP;
  await setLatency(0);
  currentLatency = 0;
  const requests = await c.prepare(count);
  await setLatency(latency);
  currentLatency = latency;
  const times: number[] = [];
  try {
    for (const [i, send] of requests.entries()) {
      const r = await send();
      if (i >= WARMUP) times.push(r.ms);
    }
  } finally {
    await setLatency(0);
    currentLatency = 0;
  }
  const s = summarize(times);
  return { p50: s.p50, p95: s.p95 };
}

const results: Measured[] = [];
let bundle: BundleReport | undefined;
let startup: StartupReport | undefined;
let failed = false;
try {
  // Whole-system warm-up: the first prompt runs @upstash/ratelimit's EVALSHA → NOSCRIPT → EVAL
  // fallback and compiles the Worker's code paths; none of that belongs in a measurement.
  const warm = await session({ pro: true });
  const warmRoom = await chatroom(warm);
  for (let i = 0; i < 3; i++) await exchange(warm, warmRoom);

  const selected = cases.filter((c) => !args.only || c.label.includes(args.only));
  for (const c of selected) {
    const at: Measured["at"] = {};
    for (const latency of [0, LATENCY]) at[latency] = await measure(c, latency);
    const zero = at[0] as { p50: number };
    const high = at[LATENCY] as { p50: number };
    const rounds = Math.max(0, Math.round((high.p50 - zero.p50) / LATENCY));
    const pass = c.target === undefined ? null : rounds <= c.target;
    if (pass === false) failed = true;
    results.push({
      label: c.label,
      target: c.target,
      note: c.note,
      samples: c.samples ?? SAMPLES,
      at,
      rounds,
      pass,
    });
    const z = at[0] as { p50: number; p95: number };
    const h = at[LATENCY] as { p50: number; p95: number };
    console.log(
      `${c.label}: p50 ${ms1(z.p50)} → ${ms1(h.p50)} ms, ${rounds} round(s)` +
        (c.target === undefined ? "" : ` (target ${c.target}: ${pass ? "pass" : "FAIL"})`),
    );
  }

  if (!args["skip-bundle"]) {
    bundle = await measureBundle();
    startup = await measureStartup();
    if (!bundle.within_budget) failed = true;
  }
} catch (err) {
  console.error(err instanceof Error ? (err.stack ?? err.message) : err);
  failed = true;
} finally {
  await host.close();
}

const header = [
  "endpoint",
  "p50 @0",
  "p95 @0",
  `p50 @${LATENCY}`,
  `p95 @${LATENCY}`,
  "rounds",
  "target",
  "pass",
];
const rows = results.map((r) => [
  r.label,
  ms1(r.at[0]?.p50 ?? Number.NaN),
  ms1(r.at[0]?.p95 ?? Number.NaN),
  ms1(r.at[LATENCY]?.p50 ?? Number.NaN),
  ms1(r.at[LATENCY]?.p95 ?? Number.NaN),
  r.rounds,
  r.target ?? "-",
  r.pass === null ? "-" : r.pass ? "yes" : "NO",
]);
console.log(`\n${table(header, rows)}`);
if (bundle) {
  console.log(
    `\nbundle: ${bundle.gzip_kib} KiB gzip (wrangler ${bundle.wrangler_gzip_kib} KiB), ${bundle.minified_kib} KiB minified; budget ${bundle.budget_kib} KiB → ${bundle.within_budget ? "ok" : "OVER"}`,
  );
  console.log(
    `heaviest: ${bundle.heaviest
      .slice(0, 8)
      .map((m) => `${m.module} ${m.kib}`)
      .join(", ")} (KiB minified)`,
  );
}
if (startup) {
  console.log(
    `startup: ${startup.active_ms} ms CPU (wrangler check startup, runs ${startup.runs.join(", ")})`,
  );
}
console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`);

if (args.markdown) {
  const md = [
    `| ${header.join(" | ")} |`,
    `|${header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  writeFileSync(args.markdown, `${md}\n`);
}
if (args.json) {
  writeFileSync(
    args.json,
    JSON.stringify(
      { latency_ms: LATENCY, samples: SAMPLES, warmup: WARMUP, results, bundle, startup },
      null,
      2,
    ),
  );
}
process.exit(failed ? 1 : 0);
