// The chaos soak's finding 6 (docs/reliability.md): a send-otp that failed part-way on Redis
// started its 30-second cool-down, and the give-back that clears it met the same fault window
// (it tried for ~1 s), so the client's retries after the 503 met 429 until the cool-down ran
// out. The clear is idempotent and now keeps trying for ~5 s, longer than a fault window. And a
// cool-down whose start lost its answer (Redis slower than the 2 s deadline) was never cleared:
// each start now names its cool-down, which is cleared only if it is still that one.
import { beforeAll, describe, expect, it } from "vitest";
import { createOtpStore } from "../../src/lib/otp.ts";
import { createRedis } from "../../src/lib/redis.ts";
import { sendLoginCode, signUp } from "../../src/services/auth/accounts.ts";
import type { AuthDeps } from "../../src/services/auth/deps.ts";
import { takeSendAllowance } from "../../src/services/auth/otp.ts";
import { cloudUrl, testEnv, uniqueMobileNumber } from "../support/api.ts";
import { uniqueClientIp } from "../support/session.ts";
import { authServiceDeps } from "./auth-support.ts";

let redis: ReturnType<typeof createRedis>;
beforeAll(() => {
  redis = createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
});

function deps(overrides: Partial<AuthDeps> = {}): AuthDeps {
  return authServiceDeps({ redis, ...overrides });
}

describe("send allowance when Redis fails for a while", () => {
  it("clears the cool-down the failed send started once Redis is back (a 1.5 s fault window)", async () => {
    const healthy = deps();
    const unreachable = () => Promise.reject(new Error("fetch failed: Redis unreachable"));
    // Redis refuses everything but the cool-down's start for 1.5 s (the soak's longest window).
    const failingUntil = Date.now() + 1_500;
    const store = createOtpStore(redis);
    const flakyStore: AuthDeps["otpStore"] = {
      ...store,
      takeSendWindows: unreachable,
      clearCooldown: (slot) =>
        Date.now() < failingUntil ? unreachable() : store.clearCooldown(slot),
    };
    const broken = deps({ otpStore: flakyStore });
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    await expect(takeSendAllowance(broken, request)).rejects.toThrow(/Redis unreachable/);
    // The retry a 503 asks for, once Redis is back: not refused by the failed send's cool-down.
    await expect(takeSendAllowance(healthy, request)).resolves.toBeDefined();
  });

  it("clears a cool-down whose start ran but lost its answer (Redis slower than the deadline)", async () => {
    const healthy = deps();
    const store = createOtpStore(redis);
    const lostAnswer: AuthDeps["otpStore"] = {
      ...store,
      startCooldown: async (i) => {
        await store.startCooldown(i);
        throw new Error("TimeoutError: the answer was lost");
      },
    };
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    await expect(takeSendAllowance(deps({ otpStore: lostAnswer }), request)).rejects.toThrow(
      /answer was lost/,
    );
    await expect(takeSendAllowance(healthy, request)).resolves.toBeDefined();
  });

  it("keeps an earlier send's cool-down when a later start lost its answer", async () => {
    const healthy = deps();
    const store = createOtpStore(redis);
    const lostAnswer: AuthDeps["otpStore"] = {
      ...store,
      startCooldown: async (i) => {
        await store.startCooldown(i);
        throw new Error("TimeoutError: the answer was lost");
      },
    };
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    await expect(takeSendAllowance(healthy, request)).resolves.toBeDefined();
    await expect(takeSendAllowance(deps({ otpStore: lostAnswer }), request)).rejects.toThrow(
      /answer was lost/,
    );
    await expect(takeSendAllowance(healthy, request)).rejects.toThrow(/Too many codes/);
  });
});

// Finding 6 again (seed 2026 on a box at load 11): in a `slow` window the cool-down's start
// reached Redis but ran only after the Worker had given up at its 2 s deadline AND after the
// give-back's clear, which found nothing to clear; the start then set a 30-second cool-down
// nobody would clear, and the client's retry met it. These tests run the start (or the strangers'
// admission) late by hand: the Worker sees its deadline pass, then Redis runs the held command.
describe("send allowance when Redis runs a command after the Worker gave up", () => {
  /** A store whose chosen command times out for the Worker and runs in Redis only when told. */
  function lateStore(which: "startCooldown" | "admitStranger") {
    const store = createOtpStore(redis);
    const held: (() => Promise<unknown>)[] = [];
    const timeout = () => Promise.reject(new Error("TimeoutError: the operation timed out"));
    const late: AuthDeps["otpStore"] =
      which === "startCooldown"
        ? {
            ...store,
            startCooldown: (i) => {
              held.push(() => store.startCooldown(i).catch(() => undefined));
              return timeout();
            },
          }
        : {
            ...store,
            admitStranger: (i) => {
              held.push(() => store.admitStranger(i).catch(() => undefined));
              return timeout();
            },
          };
    return { late, runHeld: async () => Promise.all(held.splice(0).map((run) => run())) };
  }

  it("does not let a start that Redis runs after the clear hold the retry with its cool-down", async () => {
    const { late, runHeld } = lateStore("startCooldown");
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    await expect(takeSendAllowance(deps({ otpStore: late }), request)).rejects.toThrow(/timed out/);
    await runHeld();
    await expect(takeSendAllowance(deps(), request)).resolves.toBeDefined();
    // The attacker's side: that send counts now, so an immediate second one is refused.
    await expect(takeSendAllowance(deps(), request)).rejects.toThrow(/Too many codes/);
  });

  it("answers a repeated start (the SDK's retry of a lost answer) as started, not as a cool-down", async () => {
    const store = createOtpStore(redis);
    const slot = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      network: "0123456789abcdef",
      seconds: 30,
      token: crypto.randomUUID(),
    };
    await expect(store.startCooldown(slot)).resolves.toEqual({ started: true });
    await expect(store.startCooldown(slot)).resolves.toEqual({ started: true });
    const other = await store.startCooldown({ ...slot, token: crypto.randomUUID() });
    expect(other.started).toBe(false);
  });

  it("does not let strangers' admissions Redis runs late use up the number's daily ceiling", async () => {
    const mobileNumber = uniqueMobileNumber();
    // 10 sends a day from networks that never proved the number; each of these fails and its
    // admission runs in Redis after the give-back.
    for (let i = 0; i < 10; i++) {
      const { late, runHeld } = lateStore("admitStranger");
      const request = { mobileNumber, purpose: "login" as const, clientIp: uniqueClientIp() };
      await expect(takeSendAllowance(deps({ otpStore: late }), request)).rejects.toThrow(
        /timed out/,
      );
      await runHeld();
    }
    const request = { mobileNumber, purpose: "login" as const, clientIp: uniqueClientIp() };
    await expect(takeSendAllowance(deps(), request)).resolves.toBeDefined();
  });
});

describe("send allowance when storing the code fails after the limits admitted the send", () => {
  it("gives the cool-down back, so the retry of the 503 gets its code, and a later send is refused", async () => {
    const healthy = deps();
    const store = createOtpStore(redis);
    // The limits pass (round 1); Redis fails the code's write (round 2): the request is a 503.
    const failingIssue: AuthDeps["otpStore"] = {
      ...store,
      issue: () => Promise.reject(new Error("fetch failed: Redis unreachable")),
    };
    const mobileNumber = uniqueMobileNumber();
    const clientIp = uniqueClientIp();
    await signUp(healthy, { mobileNumber, clientIp });
    await expect(
      sendLoginCode(deps({ otpStore: failingIssue }), { mobileNumber, clientIp }),
    ).rejects.toThrow(/Redis unreachable/);
    await expect(sendLoginCode(healthy, { mobileNumber, clientIp })).resolves.toMatchObject({
      expiresIn: 300,
    });
    await expect(sendLoginCode(healthy, { mobileNumber, clientIp })).rejects.toThrow(
      /Too many codes/,
    );
  });
});
