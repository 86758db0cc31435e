import type {
  Session as TestSession,
  SessionUser as TestUser,
} from "../../scripts/support/fixtures.ts";
import * as fixtures from "../../scripts/support/fixtures.ts";
import { call, uniqueClientIp, uniqueMobileNumber, workerUrl } from "./api.ts";

/** The flows are the scripts' fixtures (one login flow for tests, bench and load). */
export type { TestSession, TestUser };
export { uniqueClientIp };

const target = { baseUrl: workerUrl };

/** Signs a user up (no login) with a random unique number; answers the number. */
export async function signUp(opts: { password?: string } = {}): Promise<string> {
  return (await fixtures.signUp(target, { mobile_number: uniqueMobileNumber(), ...opts }))
    .mobile_number;
}

/**
 * Asks for a login code for `mobileNumber` and returns it (the test Worker echoes codes). The
 * code is bound to `clientIp`'s network: verify from there, or send `requestLoginChallenge`'s id.
 */
export async function requestLoginCode(mobileNumber: string, clientIp = uniqueClientIp()) {
  return (await requestLoginChallenge(mobileNumber, clientIp)).otp;
}

/** Asks for a login code; answers it with its challenge id (verify-otp from any network). */
export function requestLoginChallenge(mobileNumber: string, clientIp = uniqueClientIp()) {
  return fixtures.requestLoginChallenge(target, mobileNumber, clientIp);
}

/**
 * Signs a new user up and logs them in through the API (signup → send-otp → verify-otp), with a
 * random unique E.164 number. Chat and billing tests use this to own their users.
 */
export function createSession(
  opts: { name?: string; email?: string; password?: string; mobileNumber?: string } = {},
): Promise<TestSession> {
  return fixtures.createSession(target, {
    mobile_number: opts.mobileNumber ?? uniqueMobileNumber(),
    ...(opts.name !== undefined ? { name: opts.name } : {}),
    ...(opts.email !== undefined ? { email: opts.email } : {}),
    ...(opts.password !== undefined ? { password: opts.password } : {}),
  });
}

/**
 * `call`, remembering the challenge_id of every code sent (send-otp, forgot-password) per number
 * and presenting it on verify-otp / reset-password for that number, as a client should: the code
 * is then usable from any test client address (codes are bound to the network that asked).
 */
export function challengeAwareCall(): typeof call {
  const latest = new Map<string, string>();
  return async (method, path, opts = {}) => {
    const body = opts.body as Record<string, unknown> | undefined;
    const number = typeof body?.mobile_number === "string" ? body.mobile_number : undefined;
    const presents = path === "/auth/verify-otp" || path === "/auth/reset-password";
    const withChallenge =
      presents && number && latest.has(number) && body && !("challenge_id" in body)
        ? { ...opts, body: { ...body, challenge_id: latest.get(number) } }
        : opts;
    const res = await call(method, path, withChallenge);
    if ((path === "/auth/send-otp" || path === "/auth/forgot-password") && number) {
      if (res.status === 200) latest.set(number, res.body.challenge_id as string);
    }
    return res;
  };
}
