import { describe, expect, it } from "vitest";
import { call, uniqueMobileNumber, withinOneWindow } from "../support/api.ts";
import { requestLoginChallenge, signUp as signUpUser, uniqueClientIp } from "../support/session.ts";

const signUp = (password?: string) => signUpUser(password ? { password } : {});

/** The challenge id of the latest code sent per number: verify presents it, as a client should. */
const challenges = new Map<string, string>();
const requestLoginCode = async (mobile: string) => {
  const sent = await requestLoginChallenge(mobile);
  challenges.set(mobile, sent.challenge_id);
  return sent.otp;
};
const sendOtp = async (mobile_number: unknown, ip = uniqueClientIp()) => {
  const res = await call("POST", "/auth/send-otp", {
    body: { mobile_number },
    headers: { "cf-connecting-ip": ip },
  });
  if (res.status === 200) challenges.set(String(mobile_number), res.body.challenge_id);
  return res;
};
const verify = (mobile_number: string, otp: unknown) =>
  call("POST", "/auth/verify-otp", {
    body: { mobile_number, otp, challenge_id: challenges.get(mobile_number) },
  });

/** A 6-digit code that is certainly not `code`. */
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

describe("POST /auth/send-otp", () => {
  it("issues a 6-digit code valid for 300 seconds", async () => {
    const res = await sendOtp(await signUp());
    expect(res.status).toBe(200);
    expect(res.body.otp).toMatch(/^[0-9]{6}$/);
    expect(res.body.expires_in).toBe(300);
    expect(typeof res.body.message).toBe("string");
  });

  it("answers 404 user_not_found for an unknown number", async () => {
    const res = await sendOtp(uniqueMobileNumber());
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("user_not_found");
  });

  it("refuses a second code within 30 seconds with 429 and Retry-After, even when reformatted", async () => {
    const number = await signUp();
    const ip = uniqueClientIp();
    expect((await sendOtp(number, ip)).status).toBe(200);
    const again = await sendOtp(
      `${number.slice(0, 2)} ${number.slice(2, 5)}-${number.slice(5)}`,
      ip,
    );
    expect(again.status).toBe(429);
    expect(again.body.error.code).toBe("rate_limited");
    const retryAfter = Number(again.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30);
  });

  it("limits codes tried per client IP across numbers; a right code refused that way stays valid", () =>
    withinOneWindow(15 * 60_000, async () => {
      const ip = uniqueClientIp();
      const verify = (mobile_number: string, otp: string, from = ip) =>
        call("POST", "/auth/verify-otp", {
          body: { mobile_number, otp, challenge_id: challenges.get(mobile_number) },
          headers: { "cf-connecting-ip": from },
        });
      for (let round = 0; round < 10; round++) {
        const answers = await Promise.all(
          Array.from({ length: 10 }, () => verify(uniqueMobileNumber(), "123456")),
        );
        expect(answers.map((r) => r.status)).toEqual(Array(10).fill(401));
      }
      const number = await signUp();
      const code = (await sendOtp(number)).body.otp as string;
      const limited = await verify(number, code);
      expect(limited.status).toBe(429);
      expect(limited.body.error.code).toBe("rate_limited");
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      // The owner, from anywhere else, can still use that code.
      expect((await verify(number, code, uniqueClientIp())).status).toBe(200);
    }));

  it("limits one client IP to 20 codes an hour across numbers, keyed on CF-Connecting-IP only", () =>
    withinOneWindow(3_600_000, async () => {
      const ip = uniqueClientIp();
      // Unknown numbers still spend the IP's budget: it also bounds enumeration through 404s.
      for (let i = 0; i < 20; i++) {
        const res = await call("POST", "/auth/send-otp", {
          body: { mobile_number: uniqueMobileNumber() },
          headers: { "cf-connecting-ip": ip, "x-forwarded-for": uniqueClientIp() },
        });
        expect(res.status).toBe(404);
      }
      const limited = await call("POST", "/auth/send-otp", {
        body: { mobile_number: await signUp() },
        headers: { "cf-connecting-ip": ip, "x-forwarded-for": uniqueClientIp() },
      });
      expect(limited.status).toBe(429);
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
      // Another address is not affected.
      expect((await sendOtp(await signUp())).status).toBe(200);
    }));

  it.each([
    ["empty", ""],
    ["plus only", "+"],
    ["no plus", "15550100000"],
    ["Arabic-Indic digits", "+١٥٥٥٠١٠٠٠٠٠"],
    ["trailing newline", "+15550100000\n"],
    ["a number", 15550100000],
    ["null", null],
    ["10 KB string", `+1${"5".repeat(10_000)}`],
  ])("rejects %s with 400", async (_name, value) => {
    const res = await sendOtp(value);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });
});

describe("POST /auth/verify-otp", () => {
  it("exchanges the right code for a session", async () => {
    const number = await signUp();
    const otp = await requestLoginCode(number);
    const res = await verify(number, otp);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
    expect(res.body.token.split(".")).toHaveLength(3);
    expect(res.body.refresh_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body.user.mobile_number).toBe(number);
    const me = await call("GET", "/user/me", { token: res.body.token });
    expect(me.status).toBe(200);
    expect(me.body.user.id).toBe(res.body.user.id);
  });

  it("accepts a code once: a replay is 401 invalid_otp", async () => {
    const number = await signUp();
    const otp = await requestLoginCode(number);
    expect((await verify(number, otp)).status).toBe(200);
    const replay = await verify(number, otp);
    expect(replay.status).toBe(401);
    expect(replay.body.error.code).toBe("invalid_otp");
    expect(replay.body.error.details).toEqual({ attempts_left: 0 });
  });

  it("counts wrong attempts down and kills the code after 5", async () => {
    const number = await signUp();
    const otp = await requestLoginCode(number);
    for (const left of [4, 3, 2, 1, 0]) {
      const res = await verify(number, wrong(otp));
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("invalid_otp");
      expect(res.body.error.details).toEqual({ attempts_left: left });
    }
    const right = await verify(number, otp);
    expect(right.status).toBe(401);
    expect(right.body.error.details).toEqual({ attempts_left: 0 });
  });

  it("gives exactly one 200 for ten parallel verifications of one valid code", async () => {
    const number = await signUp();
    const otp = await requestLoginCode(number);
    const results = await Promise.all(Array.from({ length: 10 }, () => verify(number, otp)));
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([200, 401, 401, 401, 401, 401, 401, 401, 401, 401]);
  });

  it("does not accept a code for another number", async () => {
    const [a, b] = await Promise.all([signUp(), signUp()]);
    const otpA = await requestLoginCode(a);
    await requestLoginCode(b);
    expect((await verify(b, otpA)).status).toBe(401);
    expect((await verify(a, otpA)).status).toBe(200);
  });

  it("does not accept a password-reset code for login (purpose binding)", async () => {
    const number = await signUp("correct horse battery");
    const reset = await call("POST", "/auth/forgot-password", {
      body: { mobile_number: number },
      headers: { "cf-connecting-ip": uniqueClientIp() },
    });
    expect(reset.status).toBe(200);
    const res = await verify(number, reset.body.otp);
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("invalid_otp");
  });

  it("answers an unknown number like a wrong code", async () => {
    const res = await verify(uniqueMobileNumber(), "123456");
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("invalid_otp");
  });

  it("never echoes the submitted code in an error", async () => {
    const number = await signUp();
    const otp = await requestLoginCode(number);
    const res = await verify(number, wrong(otp));
    expect(res.text).not.toContain(wrong(otp));
    expect(res.text).not.toContain(otp);
  });

  it.each([
    ["empty", ""],
    ["5 digits", "12345"],
    ["7 digits", "1234567"],
    ["letter", "12345a"],
    ["leading space", " 123456"],
    ["trailing newline", "123456\n"],
    ["full-width digits", "１２３４５６"],
    ["a JSON number", 123456],
    ["negative", "-12345"],
    ["exponent", "1e5"],
    ["null", null],
  ])("rejects otp %s with 400 without spending an attempt", async (_name, otp) => {
    const number = await signUp();
    const code = await requestLoginCode(number);
    const res = await verify(number, otp);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect((await verify(number, code)).status).toBe(200);
  });

  it("rejects unknown fields", async () => {
    const res = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: "+15550100000", otp: "123456", tier: "pro" },
    });
    expect(res.status).toBe(400);
  });
});
