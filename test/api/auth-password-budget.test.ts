import { createHmac } from "node:crypto";
import { SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { call, testEnv, withinOneWindow } from "../support/api.ts";
import { createSession, requestLoginChallenge, uniqueClientIp } from "../support/session.ts";

// change-password takes the password budget in its first round, keyed by the number's tag that
// the access token carries (`ntg`, docs/adr/0008-credentials.md). Played from the attacker's
// side: a client holding a stolen access token, from networks that never proved the number.

const PASSWORD = "correct horse battery";
const NEW_PASSWORD = "tr0ub4dor & 3 staples";
const FIFTEEN_MINUTES = 15 * 60_000;

const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()) as Record<
    string,
    unknown
  >;

/** The tag the Worker should put in tokens, computed here independently (node:crypto). */
const expectedTag = (mobileNumber: string) =>
  createHmac("sha256", testEnv.OTP_SECRET as string)
    .update(`number:v1\n${mobileNumber}`)
    .digest("hex")
    .slice(0, 32);

const login = (mobile_number: string, password: string, ip: string) =>
  call("POST", "/auth/login", {
    body: { mobile_number, password },
    headers: { "cf-connecting-ip": ip },
  });

const changePassword = (token: string, current_password: string, ip: string) =>
  call("POST", "/auth/change-password", {
    token,
    body: { current_password, new_password: NEW_PASSWORD },
    headers: { "cf-connecting-ip": ip },
  });

/** An access token as the Worker signed them before the tag existed: same claims, no `ntg`. */
async function legacyToken(token: string): Promise<string> {
  const { ntg: _dropped, iat: _iat, jti: _jti, ...claims } = payloadOf(token);
  const now = Date.now() / 1000;
  return new SignJWT({ ...claims, iat: now, exp: Math.floor(now) + 600 })
    .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(testEnv.JWT_SECRET as string));
}

describe("the access token's number tag", () => {
  it("is in every access token issued (verify-otp, login, refresh, change-password), as a keyed tag and never the number", async () => {
    const s = await createSession({ password: PASSWORD });
    const tag = expectedTag(s.mobile_number);
    const loggedIn = await login(s.mobile_number, PASSWORD, uniqueClientIp());
    expect(loggedIn.status).toBe(200);
    const refreshed = await call("POST", "/auth/refresh", {
      body: { refresh_token: loggedIn.body.refresh_token },
    });
    expect(refreshed.status).toBe(200);
    const changed = await changePassword(refreshed.body.token, PASSWORD, uniqueClientIp());
    expect(changed.status).toBe(200);
    for (const token of [s.token, loggedIn.body.token, refreshed.body.token, changed.body.token]) {
      const payload = payloadOf(token);
      expect(payload.ntg).toBe(tag);
      expect(JSON.stringify(payload)).not.toContain(s.mobile_number.slice(1));
    }
  });

  it("refuses a token whose tag was swapped for another number's (the signature covers it); the password stands", async () => {
    const victim = await createSession({ password: PASSWORD });
    const other = await createSession({ password: PASSWORD });
    const [header, , signature] = victim.token.split(".");
    // The attacker points the budget at another number, whose budget is untouched.
    const swapped = { ...payloadOf(victim.token), ntg: payloadOf(other.token).ntg };
    const forged = `${header}.${Buffer.from(JSON.stringify(swapped)).toString("base64url")}.${signature}`;
    expect(payloadOf(victim.token).ntg).toBe(expectedTag(victim.mobile_number));
    const refused = await changePassword(forged, PASSWORD, uniqueClientIp());
    expect(refused.status).toBe(401);
    expect(refused.body.error.code).toBe("unauthorized");
    expect((await login(victim.mobile_number, PASSWORD, uniqueClientIp())).status).toBe(200);
  });

  it("still lets a token issued before the tag existed change the password, within the same budget", () =>
    withinOneWindow(FIFTEEN_MINUTES, async () => {
      const s = await createSession({ password: PASSWORD });
      const legacy = await legacyToken(s.token);
      expect(payloadOf(legacy).ntg).toBeUndefined();
      // Its guesses spend the number's one budget: taken once the number is read.
      const ip = uniqueClientIp();
      for (let i = 0; i < 10; i++)
        expect((await changePassword(legacy, `wrong-${i}-pass`, ip)).status).toBe(401);
      expect((await login(s.mobile_number, PASSWORD, ip)).status).toBe(429);
      const changed = await changePassword(legacy, PASSWORD, uniqueClientIp());
      expect(changed.status).toBe(200);
      expect(payloadOf(changed.body.token).ntg).toBe(expectedTag(s.mobile_number));
      expect((await login(s.mobile_number, NEW_PASSWORD, uniqueClientIp())).status).toBe(200);
    }));
});

describe("one password budget per number, from a stolen access token", () => {
  it("gets no more than 10 guesses per network by alternating login and change-password; the right password is then refused and changes nothing", () =>
    withinOneWindow(FIFTEEN_MINUTES, async () => {
      const victim = await createSession({ password: PASSWORD });
      const attacker = uniqueClientIp();
      const answers: number[] = [];
      for (let i = 0; i < 14; i++) {
        const guess = `wrong-${i}-pass`;
        const res =
          i % 2 === 0
            ? await changePassword(victim.token, guess, attacker)
            : await login(victim.mobile_number, guess, attacker);
        answers.push(res.status);
      }
      // Each wrong current_password spent exactly one guess of the budget login spends.
      expect(answers).toEqual([...Array(10).fill(401), ...Array(4).fill(429)]);
      const limited = await changePassword(victim.token, PASSWORD, attacker);
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe("rate_limited");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      expect((await login(victim.mobile_number, PASSWORD, attacker)).status).toBe(429);
      // Nothing changed: the old password still works, and the stolen token is still current.
      expect((await login(victim.mobile_number, PASSWORD, uniqueClientIp())).status).toBe(200);
      expect((await call("GET", "/user/me", { token: victim.token })).status).toBe(200);
    }));

  it("gets no more than the strangers' 20 an hour across many networks, alternating; the owner's proved network is not refused", () =>
    withinOneWindow(60 * 60_000, async () => {
      const victim = await createSession({ password: PASSWORD });
      // The owner proves the number from their own network (a code), which exempts it.
      const home = uniqueClientIp();
      const { otp, challenge_id } = await requestLoginChallenge(victim.mobile_number, home);
      const proved = await call("POST", "/auth/verify-otp", {
        body: { mobile_number: victim.mobile_number, otp, challenge_id },
        headers: { "cf-connecting-ip": home },
      });
      expect(proved.status).toBe(200);
      const answers: number[] = [];
      for (let i = 0; i < 24; i++) {
        // A fresh network every 4 guesses: never the per-network budget, always the strangers'.
        const network = `10.${100 + Math.floor(i / 4)}.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;
        const guess = `wrong-${i}-pass`;
        const res =
          i % 2 === 0
            ? await changePassword(victim.token, guess, network)
            : await login(victim.mobile_number, guess, network);
        answers.push(res.status);
      }
      expect(answers).toEqual([...Array(20).fill(401), ...Array(4).fill(429)]);
      expect((await changePassword(victim.token, PASSWORD, uniqueClientIp())).status).toBe(429);
      expect((await login(victim.mobile_number, PASSWORD, home)).status).toBe(200);
    }));

  it("spends nothing on an account without a password (403 reauthentication_required): no guess is evaluated", () =>
    withinOneWindow(FIFTEEN_MINUTES, async () => {
      const victim = await createSession();
      const attacker = uniqueClientIp();
      for (let i = 0; i < 12; i++) {
        const res = await changePassword(victim.token, `guess-${i}-pass`, attacker);
        expect(res.status).toBe(403);
        expect(res.body.error.code).toBe("reauthentication_required");
      }
      // The network's 10 attempts are whole (a login without a password set is always 401).
      for (let i = 0; i < 10; i++)
        expect((await login(victim.mobile_number, `login-${i}-pass`, attacker)).status).toBe(401);
      expect((await login(victim.mobile_number, "one too many", attacker)).status).toBe(429);
    }));

  it("spends nothing with a revoked session's token: every attempt is 401 and the budget is given back", () =>
    withinOneWindow(FIFTEEN_MINUTES, async () => {
      const victim = await createSession({ password: PASSWORD });
      const logout = await call("POST", "/auth/logout", {
        body: { refresh_token: victim.refresh_token },
      });
      expect(logout.status).toBe(204);
      const attacker = uniqueClientIp();
      for (let i = 0; i < 12; i++) {
        const res = await changePassword(
          victim.token,
          i === 11 ? PASSWORD : `wrong-${i}`,
          attacker,
        );
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe("unauthorized");
      }
      // The budget taken in each attempt's first round went back: the network's 10 are whole.
      for (let i = 0; i < 9; i++)
        expect((await login(victim.mobile_number, `wrong-again-${i}`, attacker)).status).toBe(401);
      expect((await login(victim.mobile_number, PASSWORD, attacker)).status).toBe(200);
    }));
});
