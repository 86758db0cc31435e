// Found by `npm run load -- --self-host --users 200` on a busy box: verify-otp's code consume
// passed the Worker's 2 s Redis deadline (503) but Redis still ran it, so the code was used and
// the client's retry of the 503, after Retry-After, met 401 invalid_otp (attempts_left 0): locked
// out until a new code. Here the local Redis holds every command naming the number for 3 s
// before running it (`slow`), so the consume runs after the Worker gave up; the client then
// retries as the 503 tells it to. The consume is now given back by its request's token.
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, it } from "vitest";
import { type ApiResponse, call, redisFaultsByMatch, uniqueClientIp } from "../../support/api.ts";
import { requestLoginChallenge, signUp } from "../../support/session.ts";

/** Longer than the Worker's 2 s Redis deadline, shorter than the 5 s Retry-After of its 503. */
const LATE_MS = 3_000;

const redisFaults = redisFaultsByMatch();
afterEach(() => redisFaults.clear());

/** Redis runs every command that names `match` LATE_MS late, until the returned switch-off. */
async function slowRedisFor(match: string): Promise<() => Promise<void>> {
  await redisFaults.set(match, { mode: "slow", ms: LATE_MS });
  return () => redisFaults.lift(match);
}

/** Waits what the 503 asks, as a client following the contract does. */
async function afterRetryAfter(res: ApiResponse) {
  expect(res.status, res.text).toBe(503);
  expect(res.body.error.code).toBe("dependency_unavailable");
  const seconds = Number(res.headers.get("retry-after"));
  expect(seconds).toBeGreaterThan(LATE_MS / 1000);
  await sleep(seconds * 1000);
}

describe("verify-otp when Redis runs the code's consume after the Worker's deadline", () => {
  it("answers 503, then the retry after Retry-After logs in with the same code, once", async () => {
    const mobile_number = await signUp();
    const ip = uniqueClientIp();
    const sent = await requestLoginChallenge(mobile_number, ip);
    const verify = () =>
      call("POST", "/auth/verify-otp", {
        body: { mobile_number, otp: sent.otp, challenge_id: sent.challenge_id },
        headers: { "cf-connecting-ip": ip },
      });

    const recover = await slowRedisFor(mobile_number);
    const failed = await verify();
    // The fault window ends with the 503 (the consume already held keeps its 3 s).
    await recover();
    await afterRetryAfter(failed);

    const retried = await verify();
    expect(retried.status, retried.text).toBe(200);
    expect(retried.body.user.mobile_number).toBe(mobile_number);
    // The code was used by the retry: a second client cannot use it again.
    const again = await call("POST", "/auth/verify-otp", {
      body: { mobile_number, otp: sent.otp, challenge_id: sent.challenge_id },
    });
    expect(again.status, again.text).toBe(401);
    expect(again.body.error.code).toBe("invalid_otp");
  });

  it("lets reset-password's retry use the same reset code (the same consume)", async () => {
    const mobile_number = await signUp();
    const ip = uniqueClientIp();
    const forgot = await call("POST", "/auth/forgot-password", {
      body: { mobile_number },
      headers: { "cf-connecting-ip": ip },
    });
    expect(forgot.status, forgot.text).toBe(200);
    const reset = () =>
      call("POST", "/auth/reset-password", {
        body: {
          mobile_number,
          otp: forgot.body.otp,
          challenge_id: forgot.body.challenge_id,
          new_password: "a long enough new password 1",
        },
        headers: { "cf-connecting-ip": ip },
      });

    const recover = await slowRedisFor(mobile_number);
    const failed = await reset();
    await recover();
    await afterRetryAfter(failed);

    const retried = await reset();
    expect(retried.status, retried.text).toBe(200);
    const again = await reset();
    expect(again.status, again.text).toBe(401);
  });
});
