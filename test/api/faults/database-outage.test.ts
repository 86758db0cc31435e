// Switches the GLOBAL database fault (unreachable, then slow): lives under faults/ so it runs
// alone. For every route group: while the database is unreachable the answer is a prompt 503
// dependency_unavailable (never a 500), and once it is back the very same request works, with
// nothing lost and nothing done twice.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { type ApiResponse, call, control, testEnv } from "../../support/api.ts";
import {
  createSession,
  requestLoginCode,
  type TestSession,
  uniqueClientIp,
} from "../../support/session.ts";
import {
  callbackBody,
  geminiAnswer,
  marker,
  newChatroom,
  postCallback,
  qstashMessages,
  settledReply,
  signQStash,
  warmList,
} from "../chat-support.ts";
import { boundedCall } from "../fuzz-support.ts";

const database = (mode: "down" | "slow" | "none", ms = 0) =>
  control("neon/fault", { mode, ...(mode === "slow" ? { ms } : {}) });

afterEach(async () => {
  await database("none");
});

/** Runs `fn` with the database unreachable, always switching it back. */
async function whileDown<T>(fn: () => Promise<T>): Promise<T> {
  expect((await database("down")).status).toBe(200);
  try {
    return await fn();
  } finally {
    await database("none");
  }
}

function expectUnavailable(res: ApiResponse | { status: number; body: unknown }, label: string) {
  const text = JSON.stringify(res.body);
  expect(res.status, `${label}: ${text}`).toBe(503);
  const body = res.body as { error: { code: string; request_id: string } };
  expect(body.error.code, label).toBe("dependency_unavailable");
  expect(typeof body.error.request_id, label).toBe("string");
  if ("headers" in res) expect(res.headers.get("retry-after"), label).toBe("5");
}

/** A request made twice: first with the database down (503), then after recovery. */
async function downThenUp(
  label: string,
  request: () => Promise<ApiResponse>,
): Promise<ApiResponse> {
  const started = Date.now();
  const failed = await whileDown(request);
  expectUnavailable(failed, label);
  // Prompt: the driver's failure surfaces at once, not after retries or a timeout.
  expect(Date.now() - started, label).toBeLessThan(3_000);
  return request();
}

const usedToday = async (s: TestSession) =>
  (await call("GET", "/subscription/status", { token: s.token })).body.usage.used_today as number;

describe("database unreachable: auth", () => {
  it("signup answers 503, then the same signup creates the account once", async () => {
    const mobile = `+1555${Date.now().toString().slice(-10)}`;
    const signup = () => call("POST", "/auth/signup", { body: { mobile_number: mobile } });
    const after = await downThenUp("signup", signup);
    expect(after.status, after.text).toBe(201);
    expect((await signup()).status).toBe(409);
  });

  it("send-otp answers 503 and spends no send allowance: the same request works after", async () => {
    const me = await createSession();
    const ip = uniqueClientIp();
    // The first session's code started a 30 s cool-down; let a fresh number stand in instead.
    const fresh = await call("POST", "/auth/signup", {
      body: { mobile_number: `+1556${Date.now().toString().slice(-10)}` },
    });
    expect(fresh.status).toBe(201);
    const send = () =>
      call("POST", "/auth/send-otp", {
        body: { mobile_number: fresh.body.user.mobile_number },
        headers: { "cf-connecting-ip": ip },
      });
    const after = await downThenUp("send-otp", send);
    expect(after.status, after.text).toBe(200);
    expect(after.body.otp).toMatch(/^[0-9]{6}$/);
    expect(me.user.id).not.toBe(fresh.body.user.id);
  });

  it("verify-otp answers 503 and does not burn the code: the same request works after", async () => {
    const mobile = `+1557${Date.now().toString().slice(-10)}`;
    expect((await call("POST", "/auth/signup", { body: { mobile_number: mobile } })).status).toBe(
      201,
    );
    const ip = uniqueClientIp();
    const otp = await requestLoginCode(mobile, ip);
    const verify = () =>
      call("POST", "/auth/verify-otp", {
        body: { mobile_number: mobile, otp },
        headers: { "cf-connecting-ip": ip },
      });
    const after = await downThenUp("verify-otp", verify);
    expect(after.status, after.text).toBe(200);
    // Used once: a replay is refused.
    expect((await verify()).status).toBe(401);
  });

  it("password login answers 503, then logs in", async () => {
    const password = "correct horse battery staple";
    const me = await createSession({ password });
    const login = () =>
      call("POST", "/auth/login", { body: { mobile_number: me.mobile_number, password } });
    const after = await downThenUp("login", login);
    expect(after.status, after.text).toBe(200);
  });

  it("refresh answers 503 and does not rotate or revoke: the same token works after", async () => {
    const me = await createSession();
    const refresh = () =>
      call("POST", "/auth/refresh", { body: { refresh_token: me.refresh_token } });
    const after = await downThenUp("refresh", refresh);
    expect(after.status, after.text).toBe(200);
    // The rotated token is now spent; only the new one works.
    const again = await call("POST", "/auth/refresh", {
      body: { refresh_token: after.body.refresh_token },
    });
    expect(again.status).toBe(200);
  });

  it("logout, forgot-password and change-password answer 503, then work", async () => {
    const me = await createSession({ password: "the first password" });
    const change = () =>
      call("POST", "/auth/change-password", {
        token: me.token,
        body: { current_password: "the first password", new_password: "a brand new password" },
      });
    const changed = await downThenUp("change-password", change);
    expect(changed.status, changed.text).toBe(200);
    const token = changed.body.token as string;
    const forgot = () =>
      call("POST", "/auth/forgot-password", {
        body: { mobile_number: me.mobile_number },
        headers: { "cf-connecting-ip": uniqueClientIp() },
      });
    expect((await downThenUp("forgot-password", forgot)).status).toBe(200);
    const logout = () => call("POST", "/auth/logout", { token });
    expect((await downThenUp("logout", logout)).status).toBe(204);
  });
});

describe("database unreachable: user, chat and subscriptions", () => {
  let me: TestSession;
  let roomId: string;
  beforeAll(async () => {
    me = await createSession();
    roomId = (await newChatroom(me)).id;
  });

  it("GET and PATCH /user/me answer 503, then work and apply the change once", async () => {
    expect(
      (await downThenUp("GET /user/me", () => call("GET", "/user/me", { token: me.token }))).status,
    ).toBe(200);
    const name = marker("name");
    const patched = await downThenUp("PATCH /user/me", () =>
      call("PATCH", "/user/me", { token: me.token, body: { name } }),
    );
    expect(patched.body.user.name).toBe(name);
  });

  it("creating a chatroom answers 503, then creates exactly one", async () => {
    const title = marker("outage-room");
    const created = await downThenUp("POST /chatroom", () =>
      call("POST", "/chatroom", { token: me.token, body: { title } }),
    );
    expect(created.status).toBe(201);
    const list = await call("GET", "/chatroom?limit=100", { token: me.token });
    expect(list.body.chatrooms.filter((r: { title: string }) => r.title === title)).toHaveLength(1);
  });

  it("reads answer 503 (even a cached list: sessions cannot be checked), then work", async () => {
    const detail = await call("GET", `/chatroom/${roomId}`, { token: me.token });
    const reads = [
      `/chatroom/${roomId}`,
      `/chatroom/${roomId}/messages`,
      // A page size nobody asked for yet: a cache miss, so the database is needed.
      "/chatroom?limit=37",
    ];
    for (const path of reads) {
      const after = await downThenUp(`GET ${path}`, () => call("GET", path, { token: me.token }));
      expect(after.status, path).toBe(200);
    }
    expect(detail.status).toBe(200);
    // A list already in the cache is not served while the database is down: whether the
    // token's session was revoked cannot be checked, and the check fails closed (ADR 0008).
    await warmList(me, "?limit=38");
    const cached = await whileDown(() => call("GET", "/chatroom?limit=38", { token: me.token }));
    expect(cached.status).toBe(503);
    expect(cached.body.error.code).toBe("dependency_unavailable");
  });

  it("rename and delete answer 503 and change nothing, then apply once", async () => {
    const room = await newChatroom(me, "before");
    const renamed = await downThenUp("PATCH /chatroom/:id", () =>
      call("PATCH", `/chatroom/${room.id}`, { token: me.token, body: { title: "after" } }),
    );
    expect(renamed.body.chatroom.title).toBe("after");
    const deleted = await downThenUp("DELETE /chatroom/:id", () =>
      call("DELETE", `/chatroom/${room.id}`, { token: me.token }),
    );
    expect(deleted.status).toBe(204);
    expect((await call("GET", `/chatroom/${room.id}`, { token: me.token })).status).toBe(404);
  });

  it("a prompt answers 503 without spending quota or publishing, then is answered once", async () => {
    const user = await createSession();
    const room = await newChatroom(user);
    const content = marker("outage-prompt");
    const before = await usedToday(user);
    const send = () =>
      call("POST", `/chatroom/${room.id}/message`, { token: user.token, body: { content } });
    const failed = await whileDown(send);
    expectUnavailable(failed, "POST message");
    expect(await usedToday(user)).toBe(before);
    expect(await qstashMessages(content)).toEqual([]);

    const accepted = await send();
    expect(accepted.status, accepted.text).toBe(202);
    const reply = await settledReply(user, room.id, accepted.body.reply.id);
    expect(reply.status).toBe("complete");
    expect(await usedToday(user)).toBe(before + 1);
    const detail = await call("GET", `/chatroom/${room.id}`, { token: user.token });
    expect(detail.body.chatroom.message_count).toBe(2);
  });

  it("subscription status, checkout, cancel and portal answer 503, then answer as usual", async () => {
    const user = await createSession();
    const status = await downThenUp("status", () =>
      call("GET", "/subscription/status", { token: user.token }),
    );
    expect(status.body.tier).toBe("basic");
    const checkout = await downThenUp("subscribe", () =>
      call("POST", "/subscribe/pro", { token: user.token }),
    );
    expect(checkout.status, checkout.text).toBe(200);
    const cancel = await downThenUp("cancel", () =>
      call("POST", "/subscription/cancel", { token: user.token }),
    );
    expect(cancel.status).toBe(409);
    const portal = await downThenUp("portal", () =>
      call("POST", "/subscription/portal", { token: user.token }),
    );
    expect(portal.status, portal.text).toBe(200);
  });

  it("a QStash reply callback answers 503 (so QStash retries), and the retry completes the reply once", async () => {
    const user = await createSession();
    const room = await newChatroom(user);
    const content = marker("outage-callback");
    // No real job: this test plays QStash's part with a signed callback of its own.
    await control("qstash/publish-fault", { match: content, mode: "error" });
    let replyId: string;
    try {
      const res = await call("POST", `/chatroom/${room.id}/message`, {
        token: user.token,
        body: { content },
      });
      expect(res.status).toBe(202);
      replyId = res.body.reply.id;
    } finally {
      await control("qstash/publish-fault", { match: content, mode: "none" });
    }
    const path = `/webhook/qstash/reply?reply_id=${replyId}`;
    const body = callbackBody(geminiAnswer("after the outage"));
    const deliver = async () =>
      postCallback(path, body, await signQStash(`${testEnv.APP_URL}${path}`, body));
    const failed = await whileDown(deliver);
    expectUnavailable(failed, "QStash callback");
    expect((await deliver()).body).toEqual({ status: "complete" });
    expect((await deliver()).body).toEqual({ status: "unchanged" });
    const reply = await settledReply(user, room.id, replyId);
    expect(reply.content).toBe("after the outage");
  });

  it("/health answers 503 naming the database, and ok once it is back", async () => {
    const down = await whileDown(() => call("GET", "/health"));
    expect(down.status).toBe(503);
    expect(down.body.status).toBe("degraded");
    expect(down.body.checks.database.status).toBe("error");
    expect(down.body.checks.redis.status).toBe("ok");
    const up = await call("GET", "/health");
    expect(up.status).toBe(200);
    expect(up.body.checks.database.status).toBe("ok");
  });
});

describe("database slow", () => {
  it("requests still complete, and /health reports the latency", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    expect((await database("slow", 700)).status).toBe(200);
    try {
      const started = Date.now();
      const reads = await Promise.all([
        boundedCall("GET", "/user/me", { token: me.token, timeoutMs: 10_000 }),
        boundedCall("GET", `/chatroom/${room.id}`, { token: me.token, timeoutMs: 10_000 }),
        boundedCall("POST", "/chatroom", {
          token: me.token,
          body: { title: "slow" },
          timeoutMs: 10_000,
        }),
      ]);
      expect(reads.map((r) => r.status)).toEqual([200, 200, 201]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(700);
      const health = await boundedCall("GET", "/health", { timeoutMs: 10_000 });
      expect(health.status).toBe(200);
      expect(health.body.checks.database.status).toBe("ok");
      expect(health.body.checks.database.latency_ms).toBeGreaterThanOrEqual(650);
      expect(health.body.checks.redis.latency_ms).toBeLessThan(650);
    } finally {
      await database("none");
    }
  });
});
