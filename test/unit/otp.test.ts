import { afterEach, describe, expect, it, vi } from "vitest";
import { generateOtp, OTP_LENGTH, otpMac } from "../../src/lib/otp.ts";
import {
  OTP_MAX_ATTEMPTS,
  OTP_MAX_CONSECUTIVE_FAILURES,
  OTP_TTL_SECONDS,
} from "../../src/services/auth/otp.ts";

afterEach(() => vi.restoreAllMocks());

describe("generateOtp", () => {
  it("gives 6 ASCII digits with leading zeros kept, uniformly per position (100,000 codes)", () => {
    const n = 100_000;
    const counts = Array.from({ length: OTP_LENGTH }, () => new Array<number>(10).fill(0));
    for (let i = 0; i < n; i++) {
      const code = generateOtp();
      expect(code).toMatch(/^[0-9]{6}$/);
      for (let p = 0; p < OTP_LENGTH; p++) (counts[p] as number[])[Number(code[p])]! += 1;
    }
    // Chi-squared with 9 degrees of freedom: 27.88 is the p = 0.001 critical value.
    for (const position of counts) {
      const expected = n / 10;
      const chi2 = position.reduce((sum, c) => sum + (c - expected) ** 2 / expected, 0);
      expect(chi2).toBeLessThan(27.88);
    }
  });

  it("uses crypto.getRandomValues and never Math.random", () => {
    const random = vi.spyOn(Math, "random");
    const csprng = vi.spyOn(crypto, "getRandomValues");
    generateOtp();
    expect(csprng).toHaveBeenCalled();
    expect(random).not.toHaveBeenCalled();
  });

  it("redraws values from the biased tail instead of reducing them modulo 10^6", () => {
    const draws = [4_294_967_295, 4_294_000_000, 12_345];
    vi.spyOn(crypto, "getRandomValues").mockImplementation((a) => {
      (a as unknown as Uint32Array)[0] = draws.shift() as number;
      return a;
    });
    expect(generateOtp()).toBe("012345");
    expect(draws).toHaveLength(0);
  });
});

describe("otpMac", () => {
  const secret = "otp-secret-0123456789abcdef0123456789abcdef";
  const base = { mobileNumber: "+15550100000", purpose: "login" as const, code: "123456" };

  it("is a stable 256-bit hex HMAC that does not contain the code", async () => {
    const mac = await otpMac(secret, base);
    expect(mac).toMatch(/^[0-9a-f]{64}$/);
    expect(mac).not.toContain(base.code);
    expect(await otpMac(secret, base)).toBe(mac);
  });

  it("binds the code to its number, its purpose and the server key", async () => {
    const mac = await otpMac(secret, base);
    const variants = await Promise.all([
      otpMac(secret, { ...base, purpose: "password_reset" }),
      otpMac(secret, { ...base, mobileNumber: "+15550100001" }),
      otpMac(secret, { ...base, code: "123457" }),
      otpMac(`${secret}x`, base),
    ]);
    for (const v of variants) expect(v).not.toBe(mac);
  });
});

describe("OTP policy constants", () => {
  it("stays within NIST/ASVS ceilings: TTL ≤ 10 min, ≤ 100 consecutive failures", () => {
    expect(OTP_TTL_SECONDS).toBe(300);
    expect(OTP_TTL_SECONDS).toBeLessThanOrEqual(600);
    expect(OTP_MAX_ATTEMPTS).toBe(5);
    expect(OTP_MAX_CONSECUTIVE_FAILURES).toBeLessThanOrEqual(100);
  });
});
