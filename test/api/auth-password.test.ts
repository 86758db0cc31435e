import { pbkdf2Sync, randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { uniqueMobileNumber, withinOneWindow } from "../support/api.ts";
import { challengeAwareCall, createSession, uniqueClientIp } from "../support/session.ts";
import { sql } from "./chat-support.ts";

const call = challengeAwareCall();
const PASSWORD = "correct horse battery";
const NEW_PASSWORD = "tr0ub4dor & 3 staples";

const login = (mobile_number: string, password: unknown, ip = uniqueClientIp()) =>
  call("POST", "/auth/login", {
    body: { mobile_number, password },
    headers: { "cf-connecting-ip": ip },
  });
const refresh = (refresh_token: string) =>
  call("POST", "/auth/refresh", { body: { refresh_token } });
const forgot = (mobile_number: string, ip = uniqueClientIp()) =>
  call("POST", "/auth/forgot-password", {
    body: { mobile_number },
    headers: { "cf-connecting-ip": ip },
  });

describe("POST /auth/login", () => {
  it("logs in with the right password", async () => {
    const s = await createSession({ password: PASSWORD });
    const res = await login(s.mobile_number, PASSWORD);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: "Bearer", user: { id: s.user.id } });
    expect((await call("GET", "/user/me", { token: res.body.token })).status).toBe(200);
  });

  it("re-hashes a password stored with fewer iterations, keeping it valid and the sessions alive", async () => {
    const s = await createSession({ password: PASSWORD });
    // A hash from an earlier, weaker setting (10,000 iterations), made independently here.
    const b64 = (b: Buffer) => b.toString("base64").replace(/=+$/, "");
    const salt = randomBytes(16);
    const weak = `pbkdf2-sha256$10000$${b64(salt)}$${b64(pbkdf2Sync(PASSWORD, salt, 10_000, 32, "sha256"))}`;
    const storedHash = async () =>
      (await sql().query("select password_hash from users where id = $1", [s.user.id]))[0]
        ?.password_hash as string;
    await sql().query("update users set password_hash = $2 where id = $1", [s.user.id, weak]);

    // A wrong password changes nothing.
    expect((await login(s.mobile_number, NEW_PASSWORD)).status).toBe(401);
    expect(await storedHash()).toBe(weak);

    const res = await login(s.mobile_number, PASSWORD);
    expect(res.status).toBe(200);
    const upgraded = await storedHash();
    expect(upgraded).toMatch(/^pbkdf2-sha256\$100000\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$/);
    // Still the same password, and no session was revoked by the upgrade.
    expect((await login(s.mobile_number, PASSWORD)).status).toBe(200);
    expect(await storedHash()).toBe(upgraded);
    expect((await refresh(s.refresh_token)).status).toBe(200);
    expect((await call("GET", "/user/me", { token: s.token })).status).toBe(200);
  });

  it("gives the same 401 for a wrong password, no password set and an unknown number", async () => {
    const withPassword = await createSession({ password: PASSWORD });
    const without = await createSession();
    const answers = await Promise.all([
      login(withPassword.mobile_number, "wrong password!"),
      login(without.mobile_number, PASSWORD),
      login(uniqueMobileNumber(), PASSWORD),
    ]);
    for (const res of answers) {
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("invalid_credentials");
    }
    const messages = new Set(answers.map((r) => r.body.error.message));
    expect(messages.size).toBe(1);
    for (const res of answers) expect(res.text).not.toContain(PASSWORD);
  });

  it("does not truncate or case-fold: a prefix and an upper-cased password fail", async () => {
    const long = "x".repeat(40) + "y".repeat(40);
    const s = await createSession({ password: long });
    expect((await login(s.mobile_number, long.slice(0, 72))).status).toBe(401);
    expect((await login(s.mobile_number, long.toUpperCase())).status).toBe(401);
    expect((await login(s.mobile_number, long)).status).toBe(200);
  });

  it("matches the NFD spelling of a password set in NFC", async () => {
    const nfc = "pässwörd-ü😀-long-enough".normalize("NFC");
    const s = await createSession({ password: nfc });
    expect((await login(s.mobile_number, nfc.normalize("NFD"))).status).toBe(200);
  });

  it("limits password attempts per number and network (10 per 15 minutes) with 429 + Retry-After", () =>
    withinOneWindow(15 * 60_000, async () => {
      const s = await createSession({ password: PASSWORD });
      const ip = uniqueClientIp();
      for (let i = 0; i < 10; i++)
        expect((await login(s.mobile_number, `wrong-${i}-pass`, ip)).status).toBe(401);
      const limited = await login(s.mobile_number, PASSWORD, ip);
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    }));

  it("limits password logins per client IP across numbers (100 per 15 minutes)", () =>
    withinOneWindow(15 * 60_000, async () => {
      const ip = uniqueClientIp();
      const attempt = (mobile_number: string, from = ip) =>
        call("POST", "/auth/login", {
          body: { mobile_number, password: "common password 1" },
          headers: { "cf-connecting-ip": from },
        });
      for (let round = 0; round < 10; round++) {
        const answers = await Promise.all(
          Array.from({ length: 10 }, () => attempt(uniqueMobileNumber())),
        );
        expect(answers.map((r) => r.status)).toEqual(Array(10).fill(401));
      }
      const limited = await attempt(uniqueMobileNumber());
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe("rate_limited");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      // The right password from another client still works.
      const s = await createSession({ password: PASSWORD });
      expect((await login(s.mobile_number, PASSWORD)).status).toBe(200);
    }));

  it.each([
    ["missing password", { mobile_number: "+15550100000" }],
    ["empty password", { mobile_number: "+15550100000", password: "" }],
    ["password as number", { mobile_number: "+15550100000", password: 12345678 }],
    ["bad number", { mobile_number: "5550100000", password: PASSWORD }],
    ["unknown field", { mobile_number: "+15550100000", password: PASSWORD, otp: "123456" }],
  ])("rejects %s with 400", async (_name, body) => {
    const res = await call("POST", "/auth/login", { body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });
});

describe("POST /auth/change-password", () => {
  it("sets a first password with a fresh reset code and returns a fresh pair", async () => {
    const s = await createSession();
    const { otp, challenge_id } = (await forgot(s.mobile_number)).body;
    const res = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { otp, challenge_id, new_password: PASSWORD },
    });
    expect(res.status).toBe(200);
    expect(res.body.user.has_password).toBe(true);
    expect((await call("GET", "/user/me", { token: res.body.token })).status).toBe(200);
    expect((await login(s.mobile_number, PASSWORD)).status).toBe(200);
  });

  it("revokes every other session: old refresh tokens and old access tokens on /user/me", async () => {
    const s = await createSession({ password: PASSWORD });
    const other = await login(s.mobile_number, PASSWORD);
    const res = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { current_password: PASSWORD, new_password: NEW_PASSWORD },
    });
    expect(res.status).toBe(200);

    expect((await refresh(s.refresh_token)).status).toBe(401);
    expect((await refresh(other.body.refresh_token)).status).toBe(401);
    for (const token of [s.token, other.body.token]) {
      const me = await call("GET", "/user/me", { token });
      expect(me.status).toBe(401);
      const patch = await call("PATCH", "/user/me", { token, body: { name: "x" } });
      expect(patch.status).toBe(401);
    }
    // The caller's new pair works, and so does the new password; the old one does not.
    expect((await call("GET", "/user/me", { token: res.body.token })).status).toBe(200);
    expect((await refresh(res.body.refresh_token)).status).toBe(200);
    expect((await login(s.mobile_number, PASSWORD)).status).toBe(401);
    expect((await login(s.mobile_number, NEW_PASSWORD)).status).toBe(200);
  });

  it("requires current_password once a password is set (400) and checks it (401)", async () => {
    const s = await createSession({ password: PASSWORD });
    const missing = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { new_password: NEW_PASSWORD },
    });
    expect(missing.status).toBe(400);
    expect(missing.body.error.details[0].path).toBe("current_password");
    const wrong = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { current_password: "not the password", new_password: NEW_PASSWORD },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.code).toBe("invalid_credentials");
    expect(wrong.text).not.toContain("not the password");
    expect((await login(s.mobile_number, PASSWORD)).status).toBe(200);
  });

  it("limits current_password guesses with the login budget (10 per 15 minutes per number)", async () => {
    const s = await createSession({ password: PASSWORD });
    const ip = { "cf-connecting-ip": uniqueClientIp() };
    for (let i = 0; i < 10; i++) {
      const wrong = await call("POST", "/auth/change-password", {
        token: s.token,
        body: { current_password: `wrong-${i}-pass`, new_password: NEW_PASSWORD },
        headers: ip,
      });
      expect(wrong.status).toBe(401);
    }
    const limited = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { current_password: PASSWORD, new_password: NEW_PASSWORD },
      headers: ip,
    });
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    // One budget for both ways of guessing: login is refused too. Nothing was changed, so the
    // caller's token still predates no password change.
    expect((await login(s.mobile_number, PASSWORD, ip["cf-connecting-ip"])).status).toBe(429);
    expect((await call("GET", "/user/me", { token: s.token })).status).toBe(200);
  });

  it("applies exactly one of two concurrent changes from the same current password", async () => {
    const s = await createSession({ password: PASSWORD });
    const change = (new_password: string) =>
      call("POST", "/auth/change-password", {
        token: s.token,
        body: { current_password: PASSWORD, new_password },
      });
    const [a, b] = await Promise.all([change("first new password"), change("second new password")]);
    expect([a.status, b.status].sort()).toEqual([200, 401]);
    const [won, lost] = a.status === 200 ? [a, b] : [b, a];
    // Its token predates the winner's change (run after it) or its write lost (run beside it).
    expect(["unauthorized", "invalid_credentials"]).toContain(lost.body.error.code);
    const winner = won === a ? "first new password" : "second new password";
    const loser = won === a ? "second new password" : "first new password";
    expect((await login(s.mobile_number, winner)).status).toBe(200);
    expect((await login(s.mobile_number, loser)).status).toBe(401);
    // The winner's session lives; the loser got none.
    expect((await refresh(won.body.refresh_token)).status).toBe(200);
  });

  it("gives a login racing a password change no session that outlives the change", async () => {
    for (let i = 0; i < 6; i++) {
      const s = await createSession({ password: PASSWORD });
      const [logged, changed] = await Promise.all([
        login(s.mobile_number, PASSWORD),
        call("POST", "/auth/change-password", {
          token: s.token,
          body: { current_password: PASSWORD, new_password: NEW_PASSWORD },
        }),
      ]);
      expect(changed.status).toBe(200);
      // Checked against the old password before the change, or refused after it: either way
      // nothing it got may still work once the change has committed.
      if (logged.status === 200)
        expect((await refresh(logged.body.refresh_token)).status).toBe(401);
      else expect(logged.status).toBe(401);
    }
  });

  it("refuses a token issued before the last password change", async () => {
    const s = await createSession();
    const { otp, challenge_id } = (await forgot(s.mobile_number)).body;
    const first = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { otp, challenge_id, new_password: PASSWORD },
    });
    expect(first.status).toBe(200);
    const stale = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { current_password: PASSWORD, new_password: NEW_PASSWORD },
    });
    expect(stale.status).toBe(401);
  });

  it.each([
    ["7 characters", { new_password: "1234567" }],
    ["129 characters", { new_password: "p".repeat(129) }],
    ["lone surrogate", { new_password: "abcdefgh\ud800" }],
    ["missing new_password", {}],
    ["unknown field", { new_password: NEW_PASSWORD, user_id: "x" }],
  ])("rejects %s with 400", async (_name, body) => {
    const s = await createSession();
    const res = await call("POST", "/auth/change-password", { token: s.token, body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });

  it("requires authentication", async () => {
    const res = await call("POST", "/auth/change-password", { body: { new_password: PASSWORD } });
    expect(res.status).toBe(401);
  });
});

describe("POST /auth/forgot-password and /auth/reset-password", () => {
  it("resets the password with a reset code and revokes every session, without logging in", async () => {
    const s = await createSession({ password: PASSWORD });
    const sent = await forgot(s.mobile_number);
    expect(sent.status).toBe(200);
    expect(sent.body.otp).toMatch(/^[0-9]{6}$/);
    expect(sent.body.expires_in).toBe(300);

    const res = await call("POST", "/auth/reset-password", {
      body: { mobile_number: s.mobile_number, otp: sent.body.otp, new_password: NEW_PASSWORD },
    });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(["message"]);

    expect((await refresh(s.refresh_token)).status).toBe(401);
    expect((await call("GET", "/user/me", { token: s.token })).status).toBe(401);
    expect((await login(s.mobile_number, PASSWORD)).status).toBe(401);
    expect((await login(s.mobile_number, NEW_PASSWORD)).status).toBe(200);
  });

  it("accepts a reset code once", async () => {
    const s = await createSession();
    const sent = await forgot(s.mobile_number);
    const body = { mobile_number: s.mobile_number, otp: sent.body.otp, new_password: NEW_PASSWORD };
    expect((await call("POST", "/auth/reset-password", { body })).status).toBe(200);
    const again = await call("POST", "/auth/reset-password", { body });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe("invalid_otp");
  });

  it("does not accept a login code for a reset (purpose binding)", async () => {
    const mobile_number = uniqueMobileNumber();
    await call("POST", "/auth/signup", { body: { mobile_number } });
    const login = await call("POST", "/auth/send-otp", {
      body: { mobile_number },
      headers: { "cf-connecting-ip": uniqueClientIp() },
    });
    const res = await call("POST", "/auth/reset-password", {
      body: { mobile_number, otp: login.body.otp, new_password: NEW_PASSWORD },
    });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("invalid_otp");
    // The login code is still good for login: the failed reset did not consume it.
    expect(
      (await call("POST", "/auth/verify-otp", { body: { mobile_number, otp: login.body.otp } }))
        .status,
    ).toBe(200);
  });

  it("answers an unknown number exactly like a known one, and issues nothing usable", async () => {
    const known = await createSession();
    const unknownNumber = uniqueMobileNumber();
    const [a, b] = await Promise.all([forgot(known.mobile_number), forgot(unknownNumber)]);
    expect(b.status).toBe(a.status);
    expect(Object.keys(b.body).sort()).toEqual(Object.keys(a.body).sort());
    expect(b.body.message).toBe(a.body.message);
    expect(b.body.expires_in).toBe(a.body.expires_in);
    expect(b.body.otp).toMatch(/^[0-9]{6}$/);
    const reset = await call("POST", "/auth/reset-password", {
      body: { mobile_number: unknownNumber, otp: b.body.otp, new_password: NEW_PASSWORD },
    });
    expect(reset.status).toBe(401);
    expect(reset.body.error.code).toBe("invalid_otp");
  });

  it("kills a reset code after 5 wrong attempts", async () => {
    const s = await createSession();
    const sent = await forgot(s.mobile_number);
    const wrongCode = String((Number(sent.body.otp) + 1) % 1_000_000).padStart(6, "0");
    for (const left of [4, 3, 2, 1, 0]) {
      const res = await call("POST", "/auth/reset-password", {
        body: { mobile_number: s.mobile_number, otp: wrongCode, new_password: NEW_PASSWORD },
      });
      expect(res.body.error.details).toEqual({ attempts_left: left });
    }
    const res = await call("POST", "/auth/reset-password", {
      body: { mobile_number: s.mobile_number, otp: sent.body.otp, new_password: NEW_PASSWORD },
    });
    expect(res.status).toBe(401);
  });

  it("applies the 30-second cool-down to reset codes", async () => {
    const s = await createSession();
    const ip = uniqueClientIp();
    expect((await forgot(s.mobile_number, ip)).status).toBe(200);
    const again = await forgot(s.mobile_number, ip);
    expect(again.status).toBe(429);
    expect(again.headers.get("retry-after")).not.toBeNull();
  });

  it.each([
    ["short new password", { otp: "123456", new_password: "short" }],
    ["missing otp", { new_password: NEW_PASSWORD }],
    ["otp as number", { otp: 123456, new_password: NEW_PASSWORD }],
  ])("rejects %s with 400", async (_name, extra) => {
    const res = await call("POST", "/auth/reset-password", {
      body: { mobile_number: "+15550100000", ...extra },
    });
    expect(res.status).toBe(400);
  });

  it("rejects a bad number on forgot-password with 400", async () => {
    const res = await forgot("0015550100000");
    expect(res.status).toBe(400);
  });
});
