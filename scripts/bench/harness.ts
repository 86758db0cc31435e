// What every benchmark case stands on: the self-hosted stack, a timed call per request from its
// own client address, the local cloud's latency switch, and fixtures (users, codes, chatrooms,
// paid subscriptions, signed webhooks). All fixture work runs at latency 0.
import { randomUUID } from "node:crypto";
import { neon, neonConfig } from "@neondatabase/serverless";
import Stripe from "stripe";
import { signDelivery } from "../../local/qstash/signature.ts";
import {
  createChatroom,
  type Session as FixtureSession,
  logIn,
  requestLoginChallenge,
  signUp as signUpFlow,
  startProCheckout,
  type Target,
} from "../support/fixtures.ts";
import { type Reply, type RequestOptions, randomClientIp, timedRequest } from "../support/http.ts";
import { selfHost } from "../support/self-host.ts";

/** A logged-in bench user: the fixtures' session. */
export type Session = FixtureSession;

export type Harness = Awaited<ReturnType<typeof startHarness>>;

/** A reply whose status is not `status` stops the run, naming the fixture step. */
export function must(res: Reply, status: number, step: string): Reply {
  if (res.status !== status) {
    throw new Error(
      `${step} answered ${res.status} (expected ${status}): ${res.text.slice(0, 300)}`,
    );
  }
  return res;
}

/** Starts the stack and returns the helpers the cases use; `close()` stops it. */
export async function startHarness() {
  // The bench switches faults on purpose (a failing QStash publish); the Worker's logs of them
  // would only bury the table.
  // Prompts are timed back to back: MAX_PENDING_REPLIES would answer most of them 409.
  const host = await selfHost({
    logLevel: "none",
    vars: { MAX_PENDING_REPLIES_BASIC: "1000", MAX_PENDING_REPLIES_PRO: "1000" },
  });
  const W = host.workerUrl;
  const target: Target = { baseUrl: W };
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
  let latencyNow = 0;

  /** Each benchmark request comes from its own client address: per-IP limits never trip it. */
  const call = (method: string, path: string, opts: RequestOptions = {}) =>
    timedRequest(W, method, path, {
      ...opts,
      headers: { "cf-connecting-ip": randomClientIp(), ...opts.headers },
    });

  async function control(path: string, body?: unknown): Promise<void> {
    const res = await fetch(`${host.cloudUrl}/_control/${path}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body ?? {}),
    });
    if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
  }

  /** Every vendor request waits `ms` before it is served (the local cloud's latency switch). */
  async function setLatency(ms: number): Promise<void> {
    await control("latency", { ms });
    latencyNow = ms;
  }

  async function signUp(password?: string): Promise<string> {
    const { mobile_number } = await signUpFlow(target, password ? { password } : {});
    // A signup password works only once the number is proved by a code; the fixture proves it
    // directly, so password logins are measured without a send-otp/verify-otp per user.
    if (password) {
      await sql.query("update users set mobile_verified_at = now() where mobile_number = $1", [
        mobile_number,
      ]);
    }
    return mobile_number;
  }

  /** A login code and its challenge id (codes are bound to the asking client's network). */
  const loginCode = (mobile: string) => requestLoginChallenge(target, mobile);

  async function session(opts: { password?: string; pro?: boolean } = {}): Promise<Session> {
    const mobile = await signUp(opts.password);
    const s = await logIn(target, mobile);
    if (opts.pro) await sql.query("update users set tier = 'pro' where id = $1", [s.user.id]);
    return s;
  }

  const chatroom = (s: Session, title = `bench ${randomUUID().slice(0, 8)}`) =>
    createChatroom(target, s.token, title);

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
    const checkout = await startProCheckout(target, s.token);
    const paid = await fetch(checkout.checkout_url, { method: "POST", redirect: "manual" });
    if (![200, 303].includes(paid.status)) throw new Error(`checkout pay: ${paid.status}`);
    await paid.text();
    const completed = await stripe.checkout.sessions.retrieve(checkout.session_id);
    await control("stripe/flush", { timeout_ms: 20_000 });
    for (let i = 0; ; i++) {
      const st = must(await call("GET", "/subscription/status", { token: s.token }), 200, "status");
      if (st.body.tier === "pro") break;
      if (i > 100) throw new Error("the paid user never became Pro");
      await new Promise((r) => setTimeout(r, 50));
    }
    return { ...s, subscriptionId: completed.subscription as string };
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

  /**
   * A QStash callback carrying Gemini's answer `text` for the pending reply `replyId`, signed as
   * QStash signs it: the path and the options to `call` it with.
   */
  async function qstashCallback(replyId: string, text = "ok") {
    const answer = {
      candidates: [
        { content: { role: "model", parts: [{ text }] }, finishReason: "STOP", index: 0 },
      ],
      usageMetadata: { promptTokenCount: 3, candidatesTokenCount: 1, totalTokenCount: 4 },
    };
    const path = `/webhook/qstash/reply?reply_id=${replyId}`;
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
    const opts: RequestOptions = {
      rawBody: body,
      headers: { "content-type": "application/json", "upstash-signature": signature },
    };
    return { path, opts };
  }

  /**
   * `count` prompts in `roomId` whose QStash publish fails, so their replies stay pending for a
   * callback the bench sends itself. Returns the reply ids.
   */
  async function pendingReplies(s: Session, roomId: string, count: number): Promise<string[]> {
    const marker = `bench-nopublish-${randomUUID()}`;
    await control("qstash/publish-fault", { match: marker, mode: "error" });
    const replies: string[] = [];
    try {
      for (let i = 0; i < count; i++) {
        const r = must(
          await call("POST", `/chatroom/${roomId}/message`, {
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
    return replies;
  }

  return {
    host,
    target,
    vars,
    sql,
    stripe,
    call,
    control,
    setLatency,
    /** The vendor latency the local cloud applies now (cases restore it after untimed work). */
    currentLatency: () => latencyNow,
    signUp,
    loginCode,
    session,
    chatroom,
    settle,
    exchange,
    paidUser,
    stripeEvent,
    stripeDelivery,
    qstashCallback,
    pendingReplies,
    close: () => host.close(),
  };
}
