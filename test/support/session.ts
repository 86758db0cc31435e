import { type ApiResponse, call, uniqueClientIp, uniqueMobileNumber } from "./api.ts";

export { uniqueClientIp };

export interface TestUser {
  id: string;
  mobile_number: string;
  name: string | null;
  email: string | null;
  tier: "basic" | "pro";
  has_password: boolean;
  created_at: string;
}

export interface TestSession {
  user: TestUser;
  token: string;
  refresh_token: string;
  mobile_number: string;
}

function expectStatus(res: ApiResponse, status: number, step: string): void {
  if (res.status !== status) {
    throw new Error(`${step} answered ${res.status} (expected ${status}): ${res.text}`);
  }
}

/**
 * Asks for a login code for `mobileNumber` and returns it (the test Worker echoes codes). The
 * code is bound to `clientIp`'s network: verify from there, or send `requestLoginChallenge`'s id.
 */
export async function requestLoginCode(mobileNumber: string, clientIp = uniqueClientIp()) {
  return (await requestLoginChallenge(mobileNumber, clientIp)).otp;
}

/** Asks for a login code; answers it with its challenge id (verify-otp from any network). */
export async function requestLoginChallenge(mobileNumber: string, clientIp = uniqueClientIp()) {
  const res = await call("POST", "/auth/send-otp", {
    body: { mobile_number: mobileNumber },
    headers: { "cf-connecting-ip": clientIp },
  });
  expectStatus(res, 200, "send-otp");
  return { otp: res.body.otp as string, challenge_id: res.body.challenge_id as string };
}

/**
 * Signs a new user up and logs them in through the API (signup → send-otp → verify-otp), with a
 * random unique E.164 number. Chat and billing tests use this to own their users.
 */
export async function createSession(
  opts: { name?: string; email?: string; password?: string; mobileNumber?: string } = {},
): Promise<TestSession> {
  const mobileNumber = opts.mobileNumber ?? uniqueMobileNumber();
  const signup = await call("POST", "/auth/signup", {
    body: {
      mobile_number: mobileNumber,
      ...(opts.name !== undefined ? { name: opts.name } : {}),
      ...(opts.email !== undefined ? { email: opts.email } : {}),
      ...(opts.password !== undefined ? { password: opts.password } : {}),
    },
  });
  expectStatus(signup, 201, "signup");
  const { otp, challenge_id } = await requestLoginChallenge(mobileNumber);
  const verified = await call("POST", "/auth/verify-otp", {
    body: {
      mobile_number: mobileNumber,
      otp,
      challenge_id,
      // Keeps the signup password (pending until the number's first verification).
      ...(signup.body.signup_token ? { signup_token: signup.body.signup_token } : {}),
    },
  });
  expectStatus(verified, 200, "verify-otp");
  return {
    user: verified.body.user as TestUser,
    token: verified.body.token as string,
    refresh_token: verified.body.refresh_token as string,
    mobile_number: signup.body.user.mobile_number as string,
  };
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
