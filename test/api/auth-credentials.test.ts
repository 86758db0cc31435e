// Who may hold a credential for a number (docs/adr/0008-credentials.md): only someone who proved
// possession of it with a code. Each test plays the stranger from a second client address.
import { describe, expect, it } from "vitest";
import { uniqueMobileNumber } from "../support/api.ts";
import {
  challengeAwareCall,
  createSession,
  requestLoginChallenge,
  uniqueClientIp,
} from "../support/session.ts";
import { redis, sql } from "./chat-support.ts";

/** Ends the 30-second send cool-down a session's login code started (a test shortcut). */
const endCooldown = (mobile: string) => redis("DEL", `otp:v1:cooldown:login:${mobile}`);

const call = challengeAwareCall();
/** A login code sent to the number (the owner's phone) and its challenge id, for verify(). */
const latestLogin = new Map<string, string>();
const requestLoginCode = async (mobile: string) => {
  const sent = await requestLoginChallenge(mobile);
  latestLogin.set(mobile, sent.challenge_id);
  return sent.otp;
};
const STRANGER_PASSWORD = "stranger's password 1";
const OWNER_PASSWORD = "owner's own password 2";

const asClient = (ip: string) => ({ "cf-connecting-ip": ip });
const signup = (mobile_number: string, password?: string, ip = uniqueClientIp()) =>
  call("POST", "/auth/signup", {
    body: { mobile_number, ...(password ? { password } : {}) },
    headers: asClient(ip),
  });
const login = (mobile_number: string, password: string, ip = uniqueClientIp()) =>
  call("POST", "/auth/login", { body: { mobile_number, password }, headers: asClient(ip) });
const verify = (mobile_number: string, otp: string, extra: Record<string, unknown> = {}) =>
  call("POST", "/auth/verify-otp", {
    body: { mobile_number, otp, challenge_id: latestLogin.get(mobile_number), ...extra },
    headers: asClient(uniqueClientIp()),
  });
const forgot = async (mobile_number: string) =>
  (
    await call("POST", "/auth/forgot-password", {
      body: { mobile_number },
      headers: asClient(uniqueClientIp()),
    })
  ).body as { otp: string; challenge_id: string };

describe("item 1: no credential without proof of the number", () => {
  it("drops a stranger's signup password when the owner proves the number", async () => {
    const mobile = uniqueMobileNumber();
    const stranger = uniqueClientIp();
    const made = await signup(mobile, STRANGER_PASSWORD, stranger);
    expect(made.status).toBe(201);
    expect(made.body.signup_token).toMatch(/^[0-9a-f]{64}$/);

    // Before anyone proves the number, the password does not work, exactly like a wrong one.
    const early = await login(mobile, STRANGER_PASSWORD, stranger);
    expect(early.status).toBe(401);
    expect(early.body.error.code).toBe("invalid_credentials");

    const owner = await verify(mobile, await requestLoginCode(mobile));
    expect(owner.status).toBe(200);
    expect(owner.body.user.has_password).toBe(false);

    const late = await login(mobile, STRANGER_PASSWORD, stranger);
    expect(late.status).toBe(401);
    expect(late.body.error.code).toBe("invalid_credentials");
    // The stranger's token (which it never had) cannot be produced either: the owner's works.
    expect((await call("GET", "/chatroom", { token: owner.body.token })).status).toBe(200);
  });

  it("answers a never-proved number's right password exactly like a wrong one", async () => {
    const mobile = uniqueMobileNumber();
    expect((await signup(mobile, STRANGER_PASSWORD)).status).toBe(201);
    const right = await login(mobile, STRANGER_PASSWORD);
    const wrong = await login(mobile, "not the password at all");
    expect(right.status).toBe(401);
    expect(right.body.error).toMatchObject({ code: wrong.body.error.code });
    expect(right.body.error.message).toBe(wrong.body.error.message);
  });

  it("keeps a signup password when the same client presents its signup token", async () => {
    const mobile = uniqueMobileNumber();
    const made = await signup(mobile, OWNER_PASSWORD);
    const proved = await verify(mobile, await requestLoginCode(mobile), {
      signup_token: made.body.signup_token,
    });
    expect(proved.status).toBe(200);
    expect(proved.body.user.has_password).toBe(true);
    expect((await login(mobile, OWNER_PASSWORD)).status).toBe(200);
  });

  it("drops the password for a signup token that is not this signup's", async () => {
    const mobile = uniqueMobileNumber();
    const other = uniqueMobileNumber();
    await signup(mobile, STRANGER_PASSWORD);
    const theirs = await signup(other, STRANGER_PASSWORD);
    const proved = await verify(mobile, await requestLoginCode(mobile), {
      signup_token: theirs.body.signup_token,
    });
    expect(proved.status).toBe(200);
    expect(proved.body.user.has_password).toBe(false);
    expect((await login(mobile, STRANGER_PASSWORD)).status).toBe(401);
  });

  it("drops a stranger's signup name and email with its password; the token keeps them", async () => {
    const planted = { name: "Call +1 555 0100 to unlock", email: "phish@example.com" };
    const theirs = uniqueMobileNumber();
    const made = await call("POST", "/auth/signup", {
      body: { mobile_number: theirs, password: STRANGER_PASSWORD, ...planted },
      headers: asClient(uniqueClientIp()),
    });
    expect(made.status).toBe(201);
    const owner = await verify(theirs, await requestLoginCode(theirs));
    expect(owner.status).toBe(200);
    expect(owner.body.user).toMatchObject({ name: null, email: null, has_password: false });

    const mine = uniqueMobileNumber();
    const signed = await call("POST", "/auth/signup", {
      body: { mobile_number: mine, password: OWNER_PASSWORD, ...planted },
      headers: asClient(uniqueClientIp()),
    });
    const kept = await verify(mine, await requestLoginCode(mine), {
      signup_token: signed.body.signup_token,
    });
    expect(kept.body.user).toMatchObject({ ...planted, has_password: true });
  });

  it("gives no signup token without a password, and refuses a malformed one with 400", async () => {
    const mobile = uniqueMobileNumber();
    const made = await signup(mobile);
    expect(made.body.signup_token).toBeUndefined();
    const bad = await verify(mobile, "123456", { signup_token: "not-hex" });
    expect(bad.status).toBe(400);
  });

  it("lets the owner take a number over by reset: the stranger's password dies", async () => {
    const mobile = uniqueMobileNumber();
    await signup(mobile, STRANGER_PASSWORD, uniqueClientIp());
    const reset = await call("POST", "/auth/reset-password", {
      body: {
        mobile_number: mobile,
        otp: (await forgot(mobile)).otp,
        new_password: OWNER_PASSWORD,
      },
      headers: asClient(uniqueClientIp()),
    });
    expect(reset.status).toBe(200);
    expect((await login(mobile, STRANGER_PASSWORD)).status).toBe(401);
    expect((await login(mobile, OWNER_PASSWORD)).status).toBe(200);
  });

  it("revokes sessions from before the first proof (rows created before this rule)", async () => {
    const early = await createSession();
    // A pre-migration row: sessions exist, but nobody is recorded as having proved the number.
    await sql().query("update users set mobile_verified_at = null where id = $1", [early.user.id]);
    await endCooldown(early.mobile_number);
    const proved = await verify(early.mobile_number, await requestLoginCode(early.mobile_number));
    expect(proved.status).toBe(200);
    const refreshed = await call("POST", "/auth/refresh", {
      body: { refresh_token: early.refresh_token },
    });
    expect(refreshed.status).toBe(401);
    expect((await call("GET", "/user/me", { token: early.token })).status).toBe(401);
    expect((await call("GET", "/user/me", { token: proved.body.token })).status).toBe(200);
  });
});

describe("item 2: a bearer token alone never sets a password", () => {
  it("refuses a first password without a code: 403 reauthentication_required", async () => {
    const s = await createSession();
    const res = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { new_password: OWNER_PASSWORD },
    });
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("reauthentication_required");
    expect((await login(s.mobile_number, OWNER_PASSWORD)).status).toBe(401);
  });

  it("refuses a login code or a wrong code in place of a reset code", async () => {
    const s = await createSession();
    await endCooldown(s.mobile_number);
    const loginCode = await requestLoginChallenge(s.mobile_number);
    const withLoginCode = await call("POST", "/auth/change-password", {
      token: s.token,
      body: {
        otp: loginCode.otp,
        challenge_id: loginCode.challenge_id,
        new_password: OWNER_PASSWORD,
      },
    });
    expect(withLoginCode.status).toBe(401);
    expect(withLoginCode.body.error.code).toBe("invalid_otp");
    const { otp: resetCode, challenge_id } = await forgot(s.mobile_number);
    const wrong = resetCode === "000000" ? "111111" : "000000";
    const withWrong = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { otp: wrong, challenge_id, new_password: OWNER_PASSWORD },
    });
    expect(withWrong.status).toBe(401);
    expect(withWrong.body.error.code).toBe("invalid_otp");
    const ok = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { otp: resetCode, challenge_id, new_password: OWNER_PASSWORD },
    });
    expect(ok.status).toBe(200);
    expect((await login(s.mobile_number, OWNER_PASSWORD)).status).toBe(200);
  });
});

describe("item 6: smaller holes", () => {
  it("locks wrong passwords per number and client network: the stranger, not the owner", async () => {
    const s = await createSession({ password: OWNER_PASSWORD });
    const stranger = uniqueClientIp();
    let last = 0;
    for (let i = 0; i < 11; i++)
      last = (await login(s.mobile_number, "guess guess", stranger)).status;
    expect(last).toBe(429);
    expect((await login(s.mobile_number, OWNER_PASSWORD, stranger)).status).toBe(429);
    expect((await login(s.mobile_number, OWNER_PASSWORD, uniqueClientIp())).status).toBe(200);
  });

  it("treats +44 (0)20 and +44 20 as one number", async () => {
    const national = `+44 (0)20 ${String(Math.floor(Math.random() * 1e8)).padStart(8, "0")}`;
    const first = await signup(national);
    expect(first.status).toBe(201);
    expect((await signup(national.replace("(0)", ""))).status).toBe(409);
  });

  it("marks token responses no-store and JSON nosniff", async () => {
    const mobile = uniqueMobileNumber();
    const made = await signup(mobile, OWNER_PASSWORD);
    expect(made.headers.get("cache-control")).toBe("no-store");
    expect(made.headers.get("x-content-type-options")).toBe("nosniff");
    const proved = await verify(mobile, await requestLoginCode(mobile), {
      signup_token: made.body.signup_token,
    });
    expect(proved.headers.get("cache-control")).toBe("no-store");
    const refreshed = await call("POST", "/auth/refresh", {
      body: { refresh_token: proved.body.refresh_token },
    });
    expect(refreshed.headers.get("cache-control")).toBe("no-store");
    expect((await login(mobile, OWNER_PASSWORD)).headers.get("cache-control")).toBe("no-store");
    const error = await call("GET", "/user/me");
    expect(error.headers.get("x-content-type-options")).toBe("nosniff");
  });
});
