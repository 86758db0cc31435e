// Switches a GLOBAL Redis fault (every key, every user): lives under faults/ so it runs alone.
// Outcomes: prompts fail closed with a prompt 503 (the quota cannot be counted), OTP endpoints
// answer 503, reads keep working from the database, and after recovery nothing was lost,
// counted twice or left stale in the cache.
import { afterEach, describe, expect, it } from "vitest";
import { type ApiResponse, call, control, waitFor } from "../../support/api.ts";
import { createSession, type TestSession, uniqueClientIp } from "../../support/session.ts";
import { marker, newChatroom, qstashMessages, settledReply, warmList } from "../chat-support.ts";

const redisFault = (mode: "down" | "error" | "none") => control("redis/fault", { mode });

afterEach(async () => {
  await redisFault("none");
});

async function whileRedis<T>(mode: "down" | "error", fn: () => Promise<T>): Promise<T> {
  expect((await redisFault(mode)).status).toBe(200);
  try {
    return await fn();
  } finally {
    await redisFault("none");
  }
}

function expectUnavailable(res: ApiResponse, label: string) {
  expect(res.status, `${label}: ${res.text}`).toBe(503);
  expect(res.body.error.code, label).toBe("dependency_unavailable");
}

async function timed(fn: () => Promise<ApiResponse>) {
  const started = Date.now();
  const res = await fn();
  return { res, ms: Date.now() - started };
}

const usedToday = async (s: TestSession) =>
  (await call("GET", "/subscription/status", { token: s.token })).body.usage.used_today as number;

describe.each(["down", "error"] as const)("Redis %s for everyone", (mode) => {
  it("a prompt answers a prompt 503, writes nothing, and the same prompt is answered once after", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker(`redis-global-${mode}`);
    const before = await usedToday(me);
    const send = () =>
      call("POST", `/chatroom/${room.id}/message`, { token: me.token, body: { content } });
    const { res, ms } = await whileRedis(mode, () => timed(send));
    expectUnavailable(res, "prompt");
    expect(ms).toBeLessThan(2_000);
    const detail = await call("GET", `/chatroom/${room.id}`, { token: me.token });
    expect(detail.body.chatroom.message_count).toBe(0);
    expect(await qstashMessages(content)).toEqual([]);

    const accepted = await send();
    expect(accepted.status, accepted.text).toBe(202);
    expect((await settledReply(me, room.id, accepted.body.reply.id)).status).toBe("complete");
    expect(await usedToday(me)).toBe(before + 1);
  });

  it("reads and chatroom writes keep working from the database; the list is fresh afterwards", async () => {
    const me = await createSession();
    const room = await newChatroom(me, "kept");
    // Warm the cache, then change the list while Redis cannot be told.
    await warmList(me);
    const during = await whileRedis(mode, async () => {
      const list = await call("GET", "/chatroom", { token: me.token });
      const detail = await call("GET", `/chatroom/${room.id}`, { token: me.token });
      const profile = await call("GET", "/user/me", { token: me.token });
      const created = await call("POST", "/chatroom", { token: me.token, body: { title: "new" } });
      const renamed = await call("PATCH", `/chatroom/${room.id}`, {
        token: me.token,
        body: { title: "renamed" },
      });
      return { list, detail, profile, created, renamed };
    });
    expect(during.list.status).toBe(200);
    expect(during.list.headers.get("x-cache")).toBe("MISS");
    expect(during.list.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([room.id]);
    expect(during.detail.status).toBe(200);
    expect(during.profile.status).toBe(200);
    expect(during.created.status).toBe(201);
    expect(during.renamed.status).toBe(200);

    // Redis is back: the failed cache invalidations are retried in the background (after 1 s),
    // so the list shows both changes instead of the page cached before the outage.
    const titles = await waitFor(async () => {
      const after = await call("GET", "/chatroom", { token: me.token });
      expect(after.status).toBe(200);
      const t = (after.body.chatrooms as { title: string }[]).map((r) => r.title).sort();
      return t.length === 2 ? t : null;
    }, 5_000);
    expect(titles).toEqual(["new", "renamed"]);
  });

  it("signup, send-otp, verify-otp and forgot-password answer 503; the same requests work after", async () => {
    const ip = uniqueClientIp();
    const number = `+1558${Date.now().toString().slice(-10)}`;
    const signUp = () =>
      call("POST", "/auth/signup", {
        body: { mobile_number: number },
        headers: { "cf-connecting-ip": ip },
      });
    // The per-IP signup limit lives in Redis: refused closed, and nothing was created.
    expectUnavailable(await whileRedis(mode, signUp), "signup");
    const signup = await signUp();
    expect(signup.status, signup.text).toBe(201);
    const mobile = signup.body.user.mobile_number as string;
    const sendOtp = () =>
      call("POST", "/auth/send-otp", {
        body: { mobile_number: mobile },
        headers: { "cf-connecting-ip": ip },
      });
    expectUnavailable(await whileRedis(mode, sendOtp), "send-otp");
    const sent = await sendOtp();
    expect(sent.status, sent.text).toBe(200);

    const verify = () =>
      call("POST", "/auth/verify-otp", {
        body: { mobile_number: mobile, otp: sent.body.otp, challenge_id: sent.body.challenge_id },
      });
    expectUnavailable(await whileRedis(mode, verify), "verify-otp");
    const verified = await verify();
    expect(verified.status, verified.text).toBe(200);

    const forgot = () =>
      call("POST", "/auth/forgot-password", {
        body: { mobile_number: mobile },
        headers: { "cf-connecting-ip": ip },
      });
    expectUnavailable(await whileRedis(mode, forgot), "forgot-password");
    expect((await forgot()).status).toBe(200);
  });

  it("/health answers 503 naming Redis, and ok once it is back", async () => {
    const res = await whileRedis(mode, () => call("GET", "/health"));
    expect(res.status).toBe(503);
    expect(res.body.checks.redis.status).toBe("error");
    expect(res.body.checks.database.status).toBe("ok");
    expect((await call("GET", "/health")).status).toBe(200);
  });
});
