// The Worker's logs, captured by the test harness (global-setup's structuredLogsHandler): one
// JSON line per request with its id, route, status, latency, user and rate-limit outcome, and
// never a secret (OTP code, password, token, key) or a message's content.
import { readFileSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { call, testEnv, uniqueMobileNumber, waitFor } from "../support/api.ts";
import { uniqueClientIp } from "../support/session.ts";
import { marker, newChatroom, sendPrompt, settledReply } from "./chat-support.ts";

const logFile = inject("workerLogFile");

interface LogLine {
  level: string;
  message: string;
}

function logLinesFrom(offset: number): LogLine[] {
  return readFileSync(logFile)
    .subarray(offset)
    .toString("utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as LogLine);
}

const logSize = () => readFileSync(logFile).length;

interface RequestLine {
  level: string;
  msg: string;
  request_id: string;
  method: string;
  route: string;
  status: number;
  latency_ms: number;
  user_id: string | null;
  rate_limit: string | null;
}

function requestLines(lines: LogLine[]): RequestLine[] {
  return lines
    .map((l) => {
      try {
        return JSON.parse(l.message) as RequestLine;
      } catch {
        return null;
      }
    })
    .filter((l): l is RequestLine => l?.msg === "request");
}

describe("structured request logs", () => {
  it("writes one JSON line per request, and no secret or message content anywhere", async () => {
    const start = logSize();
    const rid = (step: string) => `logtest-${step}-${crypto.randomUUID()}`;
    const ids: Record<string, string> = {};
    const req = (
      step: string,
      method: string,
      path: string,
      opts: Parameters<typeof call>[2] = {},
    ) => {
      ids[step] = rid(step);
      return call(method, path, {
        ...opts,
        headers: { ...opts.headers, "x-request-id": ids[step] },
      });
    };

    const mobile = uniqueMobileNumber();
    const password = `pw-${crypto.randomUUID()}`;
    const newPassword = `npw-${crypto.randomUUID()}`;
    const ip = uniqueClientIp();
    const signup = await req("signup", "POST", "/auth/signup", {
      body: { mobile_number: mobile, password },
    });
    expect(signup.status).toBe(201);
    const sent = await req("send", "POST", "/auth/send-otp", {
      body: { mobile_number: mobile },
      headers: { "cf-connecting-ip": ip },
    });
    const otp = sent.body.otp as string;
    const wrong = otp === "000000" ? "111111" : "000000";
    expect(
      (
        await req("wrong", "POST", "/auth/verify-otp", {
          body: { mobile_number: mobile, otp: wrong, challenge_id: sent.body.challenge_id },
        })
      ).status,
    ).toBe(401);
    const session = await req("verify", "POST", "/auth/verify-otp", {
      body: {
        mobile_number: mobile,
        otp,
        challenge_id: sent.body.challenge_id,
        signup_token: signup.body.signup_token,
      },
    });
    expect(session.status).toBe(200);
    const token = session.body.token as string;
    const userId = session.body.user.id as string;
    const login = await req("login", "POST", "/auth/login", {
      body: { mobile_number: mobile, password },
    });
    expect(login.status).toBe(200);
    const refreshed = await req("refresh", "POST", "/auth/refresh", {
      body: { refresh_token: login.body.refresh_token },
    });
    expect(refreshed.status).toBe(200);
    const changed = await req("change", "POST", "/auth/change-password", {
      token,
      body: { current_password: password, new_password: newPassword },
    });
    expect(changed.status).toBe(200);
    const fresh = changed.body.token as string;

    const me = { token: fresh, user: session.body.user, refresh_token: "", mobile_number: mobile };
    const title = marker("secret-title");
    const room = await newChatroom(me, title);
    const content = `confidential ${crypto.randomUUID()} prompt`;
    ids.prompt = rid("prompt");
    const accepted = await sendPrompt(me, room.id, content, { "x-request-id": ids.prompt });
    expect(accepted.status).toBe(202);
    const reply = await settledReply(me, room.id, accepted.body.reply.id);
    expect(reply.status).toBe("complete");
    for (let i = 0; i < 4; i++) await sendPrompt(me, room.id, `${content} ${i}`);
    ids.limited = rid("limited");
    const limited = await sendPrompt(me, room.id, `${content} over`, {
      "x-request-id": ids.limited,
    });
    expect(limited.status).toBe(429);
    expect((await req("bad", "GET", "/chatroom/not-an-id", { token: fresh })).status).toBe(404);
    expect((await req("anon", "GET", "/user/me")).status).toBe(401);

    // The handler receives log lines asynchronously: wait for the last request's line.
    const lines = await waitFor(async () => {
      const all = logLinesFrom(start);
      return requestLines(all).some((l) => l.request_id === ids.anon) ? all : null;
    });
    const byId = new Map<string, RequestLine[]>();
    for (const line of requestLines(lines)) {
      byId.set(line.request_id, [...(byId.get(line.request_id) ?? []), line]);
    }
    for (const [step, id] of Object.entries(ids)) {
      const found = byId.get(id) ?? [];
      expect(found, step).toHaveLength(1);
      const [line] = found as [RequestLine];
      expect(Object.keys(line).sort(), step).toEqual([
        "latency_ms",
        "level",
        "method",
        "msg",
        "rate_limit",
        "request_id",
        "route",
        "status",
        "user_id",
      ]);
      expect(typeof line.latency_ms, step).toBe("number");
      expect(line.latency_ms, step).toBeGreaterThanOrEqual(0);
    }
    const line = (step: string) => (byId.get(ids[step] as string) ?? [])[0] as RequestLine;
    expect(line("signup")).toMatchObject({ route: "/auth/signup", status: 201, user_id: null });
    expect(line("wrong")).toMatchObject({ status: 401, user_id: null });
    expect(line("prompt")).toMatchObject({
      method: "POST",
      route: "/chatroom/:id/message",
      status: 202,
      user_id: userId,
      rate_limit: "allowed",
    });
    expect(line("limited")).toMatchObject({ status: 429, user_id: userId, rate_limit: "limited" });
    expect(line("bad")).toMatchObject({ route: "/chatroom/:id", status: 404, user_id: userId });
    expect(line("anon")).toMatchObject({ route: "/user/me", status: 401, user_id: null });

    // Nothing secret, in any line written during the flow (request lines and all others).
    const text = lines.map((l) => l.message).join("\n");
    const secrets: Record<string, string> = {
      otp: otp,
      password,
      new_password: newPassword,
      access_token: token,
      access_token_signature: token.split(".")[2] as string,
      fresh_token: fresh,
      refresh_token: login.body.refresh_token,
      rotated_refresh_token: refreshed.body.refresh_token,
      prompt: content,
      title,
      mobile_number: mobile,
      JWT_SECRET: testEnv.JWT_SECRET as string,
      OTP_SECRET: testEnv.OTP_SECRET as string,
      GEMINI_API_KEY: testEnv.GEMINI_API_KEY as string,
      STRIPE_SECRET_KEY: testEnv.STRIPE_SECRET_KEY as string,
      STRIPE_WEBHOOK_SECRET: testEnv.STRIPE_WEBHOOK_SECRET as string,
      QSTASH_TOKEN: testEnv.QSTASH_TOKEN as string,
      QSTASH_CURRENT_SIGNING_KEY: testEnv.QSTASH_CURRENT_SIGNING_KEY as string,
      UPSTASH_REDIS_REST_TOKEN: testEnv.UPSTASH_REDIS_REST_TOKEN as string,
    };
    for (const [name, secret] of Object.entries(secrets)) {
      expect(secret, name).toBeTruthy();
      const pattern = name === "otp" ? new RegExp(`(?<![0-9])${secret}(?![0-9])`) : null;
      const leaked = pattern ? pattern.test(text) : text.includes(secret);
      expect(leaked, `${name} appears in the Worker's logs`).toBe(false);
    }
    // The reply's generated text and the Gemini stand-in's echo of the prompt are content too.
    expect(text).not.toContain(reply.content);
  });
});
