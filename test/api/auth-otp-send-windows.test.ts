// send-otp's three hourly windows (5 per number and network, 20 per number, 20 per client IP)
// when Redis loses a take's answer. They were @upstash/ratelimit windows, whose takes have no
// name: a take that ran in Redis after the Worker's 2 s deadline (or whose answer was lost) could
// not be given back, since a `rate: -1` refund is not idempotent and might refund a take that
// never happened, so each such 503 ate one of the user's 5 sends an hour with no code sent. The
// windows are now one script whose take is named by the request's token, given back by it.
// The local Redis holds every command naming the number (`slow`), as a Redis slower than the
// Worker's deadline does; the cool-down is switched off for the sends that count the windows.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { LimitExceededError } from "../../src/errors/index.ts";
import { createOtpStore, type OtpStore } from "../../src/lib/otp.ts";
import { createRedis } from "../../src/lib/redis.ts";
import type { AuthDeps } from "../../src/services/auth/deps.ts";
import { takeSendAllowance } from "../../src/services/auth/otp.ts";
import { cloudUrl, redisFaultsByMatch, testEnv, uniqueMobileNumber } from "../support/api.ts";
import { uniqueClientIp } from "../support/session.ts";
import { authServiceDeps } from "./auth-support.ts";

let redis: ReturnType<typeof createRedis>;
beforeAll(() => {
  redis = createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
});

const redisFaults = redisFaultsByMatch();
afterEach(() => redisFaults.clear());

function deps(otpStore: OtpStore = createOtpStore(redis)): AuthDeps {
  return authServiceDeps({ redis, otpStore });
}

/** The real store with the cool-down switched off, to count the hourly windows quickly. */
function withoutCooldown(): AuthDeps {
  const store = createOtpStore(redis);
  return deps({ ...store, startCooldown: async () => ({ started: true }) });
}

/**
 * Redis holds every command naming `match` for `ms` before running it (past the Worker's 2 s
 * deadline); the fault is switched off after `offAfterMs`, so commands sent later run at once.
 */
async function slowRedisFor(match: string, ms: number, offAfterMs: number): Promise<void> {
  await redisFaults.set(match, { mode: "slow", ms });
  setTimeout(() => void redisFaults.lift(match), offAfterMs);
}

/** Sends the hourly window allows the request's (number, network): 5 an hour, then 429. */
async function sendsLeft(request: Parameters<typeof takeSendAllowance>[1]): Promise<number> {
  const fast = withoutCooldown();
  for (let sent = 0; sent < 6; sent++) {
    const err = await takeSendAllowance(fast, request).then(
      () => undefined,
      (e: unknown) => e,
    );
    if (err !== undefined) {
      expect(err).toBeInstanceOf(LimitExceededError);
      return sent;
    }
  }
  return 6;
}

describe("send-otp's hourly windows when Redis loses a take's answer", () => {
  it("gives back a take that ran after the deadline: the user still has all 5 sends of the hour", async () => {
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    // The take runs 2.5 s after it was sent (the Worker gave up at 2 s); the give-back's first
    // try is held too, and runs after it; its retry, after the fault, runs at once.
    await slowRedisFor(request.mobileNumber, 2_500, 3_000);
    await expect(takeSendAllowance(deps(), request)).rejects.toThrow(/timed out|aborted/i);
    // Whatever Redis still held has run by now.
    await sleep(1_000);
    expect(await sendsLeft(request)).toBe(5);
  });

  it("stops a take that Redis runs after its give-back: it takes nothing", async () => {
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    // The take is held 3 s; the fault ends before the deadline, so the give-back runs first.
    await slowRedisFor(request.mobileNumber, 3_000, 1_000);
    await expect(takeSendAllowance(deps(), request)).rejects.toThrow(/timed out|aborted/i);
    await sleep(2_000);
    expect(await sendsLeft(request)).toBe(5);
  });

  it("gives back only the failed request's own take: earlier sends stay counted", async () => {
    const request = {
      mobileNumber: uniqueMobileNumber(),
      purpose: "login" as const,
      clientIp: uniqueClientIp(),
    };
    const fast = withoutCooldown();
    await takeSendAllowance(fast, request);
    await takeSendAllowance(fast, request);
    await slowRedisFor(request.mobileNumber, 2_500, 3_000);
    await expect(takeSendAllowance(deps(), request)).rejects.toThrow(/timed out|aborted/i);
    await sleep(1_000);
    expect(await sendsLeft(request)).toBe(3);
  });
});
