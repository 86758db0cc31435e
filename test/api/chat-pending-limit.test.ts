import { randomUUID } from "node:crypto";
import { neon, neonConfig } from "@neondatabase/serverless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Stack, startStack } from "../../local/stack.ts";
import { uniqueClientIp, uniqueMobileNumber } from "../support/api.ts";

// MAX_PENDING_REPLIES at its production defaults (Basic 1, Pro 3) needs a Worker of its own:
// the shared test Worker lifts it, because other tests send prompts back to back.
let stack: Stack;

beforeAll(async () => {
  stack = await startStack({
    vars: {
      ENVIRONMENT: "test",
      JWT_SECRET: "test-jwt-secret-0123456789abcdef0123456789abcdef",
      OTP_SECRET: "test-otp-secret-0123456789abcdef0123456789abcdef",
      MAX_PENDING_REPLIES_BASIC: "1",
      MAX_PENDING_REPLIES_PRO: "3",
    },
    dev: { logLevel: "error" },
  } as Parameters<typeof startStack>[0]);
}, 60_000);

afterAll(async () => {
  await stack?.close();
});

async function api(
  method: string,
  path: string,
  o: { token?: string; body?: unknown; headers?: Record<string, string> } = {},
) {
  const res = await fetch(`${stack.workerUrl}${path}`, {
    method,
    headers: {
      "cf-connecting-ip": uniqueClientIp(),
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined ? { "content-type": "application/json" } : {}),
      ...o.headers,
    },
    body: o.body === undefined ? undefined : JSON.stringify(o.body),
  });
  const text = await res.text();
  // biome-ignore lint/suspicious/noExplicitAny: responses are asserted field by field.
  return { status: res.status, body: (text ? JSON.parse(text) : null) as any };
}

async function session(tier: "basic" | "pro" = "basic") {
  const mobile = uniqueMobileNumber();
  expect((await api("POST", "/auth/signup", { body: { mobile_number: mobile } })).status).toBe(201);
  // Each call comes from another client address, so the code is named by its challenge id.
  const sent = (await api("POST", "/auth/send-otp", { body: { mobile_number: mobile } })).body;
  const verified = await api("POST", "/auth/verify-otp", {
    body: { mobile_number: mobile, otp: sent.otp, challenge_id: sent.challenge_id },
  });
  const token = verified.body.token as string;
  if (tier === "pro") {
    neonConfig.fetchEndpoint = () => `${stack.cloudUrl}/neon/sql`;
    await neon(stack.vars.DATABASE_URL as string).query(
      "update users set tier = 'pro' where id = $1",
      [verified.body.user.id],
    );
  }
  const room = await api("POST", "/chatroom", { token, body: { title: "pending" } });
  return { token, roomId: room.body.chatroom.id as string, mobile };
}

/** Keeps Gemini busy for prompts containing `match`, so their replies stay pending. */
async function slowGemini(match: string, ms = 2500) {
  const res = await fetch(`${stack.cloudUrl}/_control/gemini/faults`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ match, kind: "slow", ms }),
  });
  expect(res.status).toBe(201);
}

const prompt = (s: { token: string; roomId: string }, content: string, key?: string) =>
  api("POST", `/chatroom/${s.roomId}/message`, {
    token: s.token,
    body: { content },
    headers: key ? { "idempotency-key": key } : {},
  });

async function usedToday(token: string) {
  return (await api("GET", "/subscription/status", { token })).body.usage.used_today as number;
}

async function settled(s: { token: string; roomId: string }, replyId: string) {
  for (let i = 0; i < 100; i++) {
    const res = await api("GET", `/chatroom/${s.roomId}/messages/${replyId}`, { token: s.token });
    if (res.body.message.status !== "pending") return res.body.message;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("reply still pending");
}

describe("MAX_PENDING_REPLIES (Basic 1, Pro 3)", () => {
  it("a Basic user's second prompt while one reply is pending: 409 reply_in_progress, no quota", async () => {
    const me = await session();
    const tag = `pending-${randomUUID()}`;
    await slowGemini(tag);
    const key = randomUUID();
    const first = await prompt(me, `${tag} first`, key);
    expect(first.status).toBe(202);

    const second = await prompt(me, `${tag} second`);
    expect(second.status).toBe(409);
    expect(second.body.error).toMatchObject({ code: "reply_in_progress" });
    expect(await usedToday(me.token)).toBe(1);

    // The same key still replays the first answer.
    const again = await prompt(me, `${tag} first`, key);
    expect(again.status).toBe(202);
    expect(again.body.reply.id).toBe(first.body.reply.id);

    expect((await settled(me, first.body.reply.id)).status).toBe("complete");
    const third = await prompt(me, `${tag} third`);
    expect(third.status).toBe(202);
    expect(await usedToday(me.token)).toBe(2);
  });

  it("5 parallel Basic prompts: one accepted, four refused, one prompt counted", async () => {
    const me = await session();
    const tag = `parallel-${randomUUID()}`;
    await slowGemini(tag, 1000);
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => prompt(me, `${tag} ${i}`)),
    );
    expect(results.map((r) => r.status).sort()).toEqual([202, 409, 409, 409, 409]);
    expect(await usedToday(me.token)).toBe(1);
  });

  it("5 parallel Pro prompts: three accepted, two refused", async () => {
    const me = await session("pro");
    const tag = `pro-${randomUUID()}`;
    await slowGemini(tag, 1000);
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) => prompt(me, `${tag} ${i}`)),
    );
    expect(results.map((r) => r.status).sort()).toEqual([202, 202, 202, 409, 409]);
  });

  it("5 parallel repeats of one Idempotency-Key are one prompt, not four refusals", async () => {
    const me = await session();
    const tag = `same-key-${randomUUID()}`;
    await slowGemini(tag, 1000);
    const key = randomUUID();
    const results = await Promise.all(
      Array.from({ length: 5 }, () => prompt(me, `${tag} once`, key)),
    );
    expect(results.map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
    expect(new Set(results.map((r) => r.body.reply.id)).size).toBe(1);
    expect(await usedToday(me.token)).toBe(1);
  });

  it("a signed-out token's keyed prompts never hold the owner's one pending slot", async () => {
    const me = await session();
    // A second session of the same account, then signed out: its access token still verifies.
    const sent = (await api("POST", "/auth/send-otp", { body: { mobile_number: me.mobile } })).body;
    const other = await api("POST", "/auth/verify-otp", {
      body: { mobile_number: me.mobile, otp: sent.otp, challenge_id: sent.challenge_id },
    });
    expect(other.status).toBe(200);
    const out = await api("POST", "/auth/logout", {
      body: { refresh_token: other.body.refresh_token },
    });
    expect(out.status).toBe(204);
    const revoked = { token: other.body.token as string, roomId: me.roomId };
    for (let i = 0; i < 3; i++) {
      expect((await prompt(revoked, "held slot?", randomUUID())).status).toBe(401);
    }
    // Before the fix each refused keyed prompt left its entry for 15 s: the owner got 409.
    const mine = await prompt(me, "my prompt");
    expect(mine.status, JSON.stringify(mine.body)).toBe(202);
    expect(await usedToday(me.token)).toBe(1);
  });
});
