// The one place the client flows live: sign up, log in by code, create a chatroom, start a Pro
// checkout. Tests (test/support/session.ts), the benchmark and the load run all build their users
// through these, on the typed client (src/client.ts), so a change to the login flow is made once.
import { type ApiClient, createClient } from "../../src/client.ts";
import { randomClientIp, randomMobileNumber } from "./http.ts";

/** Where the flows send their requests; `fetch` routes or times them (the load run's samples). */
export interface Target {
  baseUrl: string;
  fetch?: typeof fetch;
}

export interface SessionUser {
  id: string;
  mobile_number: string;
  name: string | null;
  email: string | null;
  tier: "basic" | "pro";
  has_password: boolean;
  created_at: string;
}

/** A logged-in user: what verify-otp answers, plus the number it was proved for. */
export interface Session {
  user: SessionUser;
  token: string;
  refresh_token: string;
  mobile_number: string;
}

/** A flow step answered with an unexpected status; the message names the step and the body. */
export class FlowError extends Error {
  readonly step: string;
  readonly status: number;

  constructor(step: string, status: number, expected: number, body: string) {
    super(`${step} answered ${status} (expected ${expected}): ${body.slice(0, 300)}`);
    this.name = "FlowError";
    this.step = step;
    this.status = status;
  }
}

async function expectStatus(res: Response, expected: number, step: string): Promise<void> {
  if (res.status !== expected) throw new FlowError(step, res.status, expected, await res.text());
}

/**
 * A typed client for `target`, as the client at `clientIp` (per-IP limits see each simulated
 * client separately; codes are bound to the network that asked for them).
 */
export function clientFor(target: Target, token?: string, clientIp = randomClientIp()): ApiClient {
  return createClient(target.baseUrl, token, {
    ...(target.fetch ? { fetch: target.fetch } : {}),
    headers: { "cf-connecting-ip": clientIp },
  });
}

export interface SignUpInput {
  mobile_number?: string;
  name?: string;
  email?: string;
  password?: string;
}

/**
 * POST /auth/signup with a random unique number unless one is given. Returns the number and the
 * signup token (present when a password was given: verify-otp presents it to keep the password).
 */
export async function signUp(
  target: Target,
  input: SignUpInput = {},
  clientIp?: string,
): Promise<{ mobile_number: string; signup_token?: string }> {
  const mobile_number = input.mobile_number ?? randomMobileNumber();
  const res = await clientFor(target, undefined, clientIp).auth.signup.$post({
    json: { ...input, mobile_number },
  });
  await expectStatus(res, 201, "signup");
  const body = (await res.json()) as { user: { mobile_number: string }; signup_token?: string };
  return {
    mobile_number: body.user.mobile_number,
    ...(body.signup_token ? { signup_token: body.signup_token } : {}),
  };
}

/**
 * POST /auth/send-otp: the code (echoed when OTP_DELIVERY=response) and its challenge id, which
 * lets verify-otp come from any network.
 */
export async function requestLoginChallenge(
  target: Target,
  mobileNumber: string,
  clientIp?: string,
): Promise<{ otp: string; challenge_id: string }> {
  const res = await clientFor(target, undefined, clientIp).auth["send-otp"].$post({
    json: { mobile_number: mobileNumber },
  });
  await expectStatus(res, 200, "send-otp");
  const body = (await res.json()) as { otp?: string; challenge_id: string };
  if (typeof body.otp !== "string") {
    throw new FlowError(
      "send-otp",
      res.status,
      200,
      "no otp in the response (OTP_DELIVERY=response?)",
    );
  }
  return { otp: body.otp, challenge_id: body.challenge_id };
}

/** send-otp then verify-otp for a signed-up number: the session. */
export async function logIn(
  target: Target,
  mobileNumber: string,
  opts: { signupToken?: string; clientIp?: string } = {},
): Promise<Session> {
  const challenge = await requestLoginChallenge(target, mobileNumber, opts.clientIp);
  const res = await clientFor(target, undefined, opts.clientIp).auth["verify-otp"].$post({
    json: {
      mobile_number: mobileNumber,
      ...challenge,
      // Keeps the signup password (pending until the number's first verification).
      ...(opts.signupToken ? { signup_token: opts.signupToken } : {}),
    },
  });
  await expectStatus(res, 200, "verify-otp");
  const body = (await res.json()) as Omit<Session, "mobile_number">;
  return {
    user: body.user,
    token: body.token,
    refresh_token: body.refresh_token,
    mobile_number: mobileNumber,
  };
}

/** A new user, signed up and logged in: signup → send-otp → verify-otp, from one client address. */
export async function createSession(
  target: Target,
  input: SignUpInput = {},
  clientIp = randomClientIp(),
): Promise<Session> {
  const signed = await signUp(target, input, clientIp);
  return logIn(target, signed.mobile_number, {
    clientIp,
    ...(signed.signup_token ? { signupToken: signed.signup_token } : {}),
  });
}

/** POST /chatroom as `token`'s user; returns the new chatroom's id. */
export async function createChatroom(
  target: Target,
  token: string,
  title: string,
): Promise<string> {
  const res = await clientFor(target, token).chatroom.$post({ json: { title } });
  await expectStatus(res, 201, "create chatroom");
  const body = (await res.json()) as { chatroom: { id: string } };
  return body.chatroom.id;
}

/** POST /subscribe/pro: the Checkout page to pay on and its session id. */
export async function startProCheckout(
  target: Target,
  token: string,
): Promise<{ checkout_url: string; session_id: string }> {
  const res = await clientFor(target, token).subscribe.pro.$post({ json: {} });
  await expectStatus(res, 200, "subscribe");
  return (await res.json()) as { checkout_url: string; session_id: string };
}
