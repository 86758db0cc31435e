// Service-level OTP tests: the real auth services in Node against the local cloud's Redis, with an
// injected clock, for what cannot be driven over HTTP in reasonable time (expiry, hourly limits,
// the per-number lock after 100 failures, log delivery).
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { LimitExceededError, UnauthorizedError } from "../../src/errors/index.ts";
import { fixedClock } from "../../src/lib/clock.ts";
import type { OtpStore } from "../../src/lib/otp.ts";
import { logDelivery } from "../../src/lib/otp-delivery.ts";
import { createRedis } from "../../src/lib/redis.ts";
import { rootLogger } from "../../src/log.ts";
import type { AuthDeps } from "../../src/services/auth/deps.ts";
import { consumeCode, issueCode, takeSendAllowance } from "../../src/services/auth/otp.ts";
import { cloudUrl, testEnv, uniqueMobileNumber, withinOneWindow } from "../support/api.ts";
import { uniqueClientIp } from "../support/session.ts";
import { authServiceDeps } from "./auth-support.ts";

let redis: ReturnType<typeof createRedis>;
beforeAll(() => {
  redis = createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
});
afterEach(() => vi.restoreAllMocks());

function deps(overrides: Partial<AuthDeps> = {}) {
  const clock = fixedClock(new Date("2030-01-01T00:00:00.000Z"));
  return { deps: authServiceDeps({ redis, clock, ...overrides }), clock };
}

/** One client network for this file's direct service calls. */
const clientIp = "198.51.100.77";

async function issue(d: AuthDeps, mobileNumber: string, ip = clientIp) {
  const sent = await issueCode(d, { mobileNumber, purpose: "login", clientIp: ip });
  return sent.otp as string;
}

const consume = (d: AuthDeps, mobileNumber: string, code: string, ip = clientIp) =>
  consumeCode(d, { mobileNumber, purpose: "login", code, clientIp: ip });
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

describe("OTP expiry (injected clock)", () => {
  it("accepts a code 1 second before its 300-second lifetime ends", async () => {
    const { deps: d, clock } = deps();
    const number = uniqueMobileNumber();
    const code = await issue(d, number);
    clock.advance(299_000);
    await expect(consume(d, number, code)).resolves.toBeUndefined();
  });

  it("refuses a code 1 second after its lifetime, with the same 401 as a wrong code", async () => {
    const { deps: d, clock } = deps();
    const number = uniqueMobileNumber();
    const code = await issue(d, number);
    clock.advance(301_000);
    const err = await consume(d, number, code).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UnauthorizedError);
    expect(err).toMatchObject({ code: "invalid_otp", details: { attempts_left: 0 } });
  });

  it("refuses a code at exactly 300 seconds", async () => {
    const { deps: d, clock } = deps();
    const number = uniqueMobileNumber();
    const code = await issue(d, number);
    clock.advance(300_000);
    await expect(consume(d, number, code)).rejects.toMatchObject({ code: "invalid_otp" });
  });
});

describe("OTP issuing", () => {
  it("keeps only the latest code for a number and purpose", async () => {
    const { deps: d } = deps();
    const number = uniqueMobileNumber();
    const first = await issue(d, number);
    let second = await issue(d, number);
    while (second === first) second = await issue(d, number);
    await expect(consume(d, number, first)).rejects.toMatchObject({ code: "invalid_otp" });
    await expect(consume(d, number, second)).resolves.toBeUndefined();
  });

  it("stores only a keyed hash: no Redis value or key holds the code", async () => {
    const { deps: d } = deps();
    const number = uniqueMobileNumber();
    const code = await issue(d, number);
    // Raw replies (the adapter turns automatic deserialisation off): a flat field/value list.
    const [key] = await redis.keys(`otp:v3:login:${number}:*`);
    const stored = (await redis.hgetall(key as string)) as unknown as string[];
    const macField = stored.findIndex((f, i) => i % 2 === 0 && f.endsWith(":mac"));
    expect(macField).toBeGreaterThanOrEqual(0);
    expect(stored[macField + 1]).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.stringify(stored)).not.toContain(code);
    const keys = await redis.keys(`*${number}*`);
    for (const k of keys) expect(k).not.toContain(code);
  });

  it("with OTP_DELIVERY=log, returns no code and logs none", async () => {
    const { deps: d } = deps({ otpDelivery: logDelivery(rootLogger) });
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const number = uniqueMobileNumber();
    const sent = await issueCode(d, { mobileNumber: number, purpose: "login", clientIp });
    expect(sent).toEqual({ expiresIn: 300, challengeId: expect.any(String) });
    const lines = log.mock.calls.map((c) => String(c[0]));
    expect(lines.some((l) => l.includes("otp_issued"))).toBe(true);
    for (const l of lines) {
      expect(l).not.toMatch(/\b\d{6}\b/);
      expect(l).not.toContain(number);
    }
  });
});

describe("OTP send limits", () => {
  /** The real store, with the cool-down switched off, to reach the hourly limit quickly. */
  const noCooldown = (store: OtpStore): OtpStore => ({
    ...store,
    startCooldown: async () => ({ started: true }),
  });

  it("allows 5 codes per number and network an hour; the 6th is 429, other networks still get theirs", () =>
    withinOneWindow(3_600_000, async () => {
      const { deps: d } = deps();
      const fast = { ...d, otpStore: noCooldown(d.otpStore) };
      const number = uniqueMobileNumber();
      const stranger = {
        mobileNumber: number,
        purpose: "login" as const,
        clientIp: uniqueClientIp(),
      };
      for (let i = 0; i < 5; i++) await takeSendAllowance(fast, stranger);
      const err = await takeSendAllowance(fast, stranger).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(LimitExceededError);
      const retryAfter = (err as LimitExceededError).retryAfterSeconds;
      // The exact log frees a send when the oldest of the 5 leaves the hour: all at the same
      // instant (the clock is fixed), so a full hour from now.
      expect(retryAfter).toBe(3600);
      // The stranger used up only its own budget: the owner, elsewhere, still gets codes.
      const owner = { ...stranger, clientIp: uniqueClientIp() };
      await takeSendAllowance(fast, owner);
      // 10 a day per number from networks that never proved it, together, is the ceiling.
      for (let i = 0; i < 4; i++) {
        await takeSendAllowance(fast, { ...stranger, clientIp: uniqueClientIp() });
      }
      await expect(
        takeSendAllowance(fast, { ...stranger, clientIp: uniqueClientIp() }),
      ).rejects.toBeInstanceOf(LimitExceededError);
    }));

  it("gives back what a refused request took: a cool-down refusal spends no hourly budget", () =>
    withinOneWindow(3_600_000, async () => {
      const { deps: d } = deps();
      const fast = { ...d, otpStore: noCooldown(d.otpStore) };
      const number = uniqueMobileNumber();
      const ip = uniqueClientIp();
      const input = { mobileNumber: number, purpose: "login" as const, clientIp: ip };
      await takeSendAllowance(d, input);
      for (let i = 0; i < 3; i++) {
        await expect(takeSendAllowance(d, input)).rejects.toBeInstanceOf(LimitExceededError);
      }
      // 1 spent so far: 4 more fit in the hour, then the limit holds.
      for (let i = 0; i < 4; i++) await takeSendAllowance(fast, input);
      await expect(takeSendAllowance(fast, input)).rejects.toBeInstanceOf(LimitExceededError);
    }));

  it("keeps login and reset cool-downs apart", async () => {
    const { deps: d } = deps();
    const number = uniqueMobileNumber();
    await takeSendAllowance(d, {
      mobileNumber: number,
      purpose: "login",
      clientIp: uniqueClientIp(),
    });
    await expect(
      takeSendAllowance(d, {
        mobileNumber: number,
        purpose: "password_reset",
        clientIp: uniqueClientIp(),
      }),
    ).resolves.toMatchObject({ strangerTaken: true });
  });
});

describe("per-number lock after consecutive failures", () => {
  it("locks unknown networks' guesses without the challenge id after 100 wrong codes, even the right code", async () => {
    const { deps: d } = deps();
    const number = uniqueMobileNumber();
    // 20 networks, each guessing its own code 5 times (each network's budget stays under 100).
    for (let i = 0; i < 20; i++) {
      const ip = uniqueClientIp();
      const code = await issue(d, number, ip);
      for (let j = 0; j < 5; j++) {
        await expect(consume(d, number, wrong(code), ip)).rejects.toMatchObject({
          code: "invalid_otp",
        });
      }
    }
    const ip = uniqueClientIp();
    const sent = await issueCode(d, { mobileNumber: number, purpose: "login", clientIp: ip });
    const err = await consume(d, number, sent.otp as string, ip).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect((err as LimitExceededError).retryAfterSeconds).toBeGreaterThan(3600);
    // The client that asked for the code presents its challenge id: it is never locked out.
    await expect(
      consumeCode(d, {
        mobileNumber: number,
        purpose: "login",
        code: sent.otp as string,
        clientIp: uniqueClientIp(),
        challengeId: sent.challengeId,
      }),
    ).resolves.toBeUndefined();
  }, 60_000);

  it("a success before the limit resets the count", async () => {
    const { deps: d } = deps();
    const number = uniqueMobileNumber();
    const guessAndFail = async () => {
      const ip = uniqueClientIp();
      const code = await issue(d, number, ip);
      for (let j = 0; j < 5; j++) await consume(d, number, wrong(code), ip).catch(() => {});
    };
    for (let i = 0; i < 19; i++) await guessAndFail();
    const ip = uniqueClientIp();
    const good = await issue(d, number, ip);
    await expect(consume(d, number, good, ip)).resolves.toBeUndefined();
    for (let i = 0; i < 2; i++) await guessAndFail();
    const lastIp = uniqueClientIp();
    const last = await issue(d, number, lastIp);
    await expect(consume(d, number, last, lastIp)).resolves.toBeUndefined();
  }, 60_000);
});

describe("send allowance when Redis fails part-way", () => {
  it("gives back what the other limits took, so the retry after the outage is not refused", async () => {
    const { deps: healthy } = deps();
    const { deps: broken } = deps({
      otpStore: {
        ...healthy.otpStore,
        takeSendWindows: () => Promise.reject(new Error("fetch failed: Redis unreachable")),
      },
    });
    const mobileNumber = uniqueMobileNumber();
    const request = { mobileNumber, purpose: "login" as const, clientIp: uniqueClientIp() };
    await expect(takeSendAllowance(broken, request)).rejects.toThrow(/Redis unreachable/);
    // Without the give-back this meets the 30-second cool-down the failed attempt started.
    await expect(takeSendAllowance(healthy, request)).resolves.toBeDefined();
  });
});
