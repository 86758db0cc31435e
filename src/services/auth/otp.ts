import { describeError, LimitExceededError, UnauthorizedError } from "../../errors";
import { generateOtp, type OtpPurpose, otpMac } from "../../lib/otp";
import { AUTH_LIMITS, type AuthDeps } from "./deps";

/** A code lives 5 minutes (NIST/ASVS allow at most 10). */
export const OTP_TTL_SECONDS = 300;
/** Wrong submissions per code before it is destroyed. */
export const OTP_MAX_ATTEMPTS = 5;
/** Consecutive wrong codes per number (all codes, both purposes) before verification locks. */
export const OTP_MAX_CONSECUTIVE_FAILURES = 100;
/** The lock (and the failure count) expires this long after the first failure. */
export const OTP_FAILURE_WINDOW_SECONDS = 24 * 3600;

export interface SentCode {
  /** Present only when the delivery echoes codes (OTP_DELIVERY=response). */
  otp?: string;
  expiresIn: number;
}

/**
 * Applies the send limits for (number, purpose, client IP): an exact 30-second cool-down, 5 codes
 * an hour per number and purpose, 20 an hour per IP. All three are consulted at once; when any
 * refuses, what the others took is given back, so a refused request costs the caller nothing.
 */
export async function takeSendAllowance(
  deps: AuthDeps,
  input: { mobileNumber: string; purpose: OtpPurpose; clientIp: string },
): Promise<void> {
  const perNumberId = `${input.purpose}:${input.mobileNumber}`;
  const [cooldown, perNumber, perIp] = await Promise.all([
    deps.otpStore.startCooldown({
      mobileNumber: input.mobileNumber,
      purpose: input.purpose,
      seconds: AUTH_LIMITS.otpCooldownSeconds,
    }),
    deps.limiters.otpPerNumber.limit(perNumberId),
    deps.limiters.otpPerIp.limit(input.clientIp),
  ]);
  if (cooldown.started && perNumber.success && perIp.success) return;
  await giveBack(deps, input, {
    cooldown: cooldown.started,
    perNumber: perNumber.success,
    perIp: perIp.success,
  });
  const now = Date.now();
  const waits: number[] = [];
  if (!cooldown.started) waits.push(cooldown.retryAfterSeconds);
  if (!perNumber.success) waits.push((perNumber.reset - now) / 1000);
  if (!perIp.success) waits.push((perIp.reset - now) / 1000);
  throw new LimitExceededError(
    "Too many codes requested; wait before asking for another.",
    Math.max(1, ...waits),
  );
}

/**
 * Gives back a send allowance taken for a request that then failed (the database was down), so
 * the same request works as soon as the dependency is back instead of hitting the cool-down.
 */
export async function giveBackSendAllowance(
  deps: AuthDeps,
  input: { mobileNumber: string; purpose: OtpPurpose; clientIp: string },
): Promise<void> {
  await giveBack(deps, input, { cooldown: true, perNumber: true, perIp: true });
}

async function giveBack(
  deps: AuthDeps,
  input: { mobileNumber: string; purpose: OtpPurpose; clientIp: string },
  taken: { cooldown: boolean; perNumber: boolean; perIp: boolean },
): Promise<void> {
  const perNumberId = `${input.purpose}:${input.mobileNumber}`;
  await Promise.allSettled([
    taken.cooldown
      ? deps.otpStore.clearCooldown({ mobileNumber: input.mobileNumber, purpose: input.purpose })
      : null,
    taken.perNumber ? deps.limiters.otpPerNumber.limit(perNumberId, { rate: -1 }) : null,
    taken.perIp ? deps.limiters.otpPerIp.limit(input.clientIp, { rate: -1 }) : null,
  ]);
}

/** Issues a fresh code for (number, purpose), replacing any earlier one, and delivers it. */
export async function issueCode(
  deps: AuthDeps,
  input: { mobileNumber: string; purpose: OtpPurpose },
): Promise<SentCode> {
  const code = generateOtp();
  const now = deps.clock.now().getTime();
  const mac = await otpMac(deps.config.otpSecret, { ...input, code });
  await deps.otpStore.issue({
    ...input,
    mac,
    expiresAtMs: now + OTP_TTL_SECONDS * 1000,
    // The stored expiry decides validity; the Redis TTL only collects garbage a little later.
    ttlSeconds: OTP_TTL_SECONDS + 60,
  });
  const delivered = await deps.otpDelivery.deliver({
    ...input,
    code,
    expiresInSeconds: OTP_TTL_SECONDS,
  });
  return {
    ...(delivered.codeForResponse ? { otp: delivered.codeForResponse } : {}),
    expiresIn: OTP_TTL_SECONDS,
  };
}

/**
 * What an unknown number gets from forgot-password: the same shape as a real code (a random,
 * never-stored decoy where codes are echoed), and nothing is sent or stored.
 */
export function decoyCode(deps: AuthDeps): SentCode {
  return {
    ...(deps.otpDelivery.echoesCode ? { otp: generateOtp() } : {}),
    expiresIn: OTP_TTL_SECONDS,
  };
}

const INVALID_OTP = "The code is wrong, expired or already used.";

/** Consumes the code if it is right; throws 401 invalid_otp (with attempts left) or 429. */
export async function consumeCode(
  deps: AuthDeps,
  input: { mobileNumber: string; purpose: OtpPurpose; code: string },
): Promise<void> {
  await consumeCodeWithReceipt(deps, input);
}

/** What `restoreCode` needs to put a consumed code back. */
export interface CodeReceipt {
  mobileNumber: string;
  purpose: OtpPurpose;
  mac: string;
  expiresAtMs: number;
}

/**
 * Puts back a code whose request then failed before writing anything (the database was down),
 * so the user can retry with the same code instead of waiting out a send cool-down.
 */
export async function restoreCode(deps: AuthDeps, receipt: CodeReceipt): Promise<void> {
  try {
    await deps.otpStore.restore({ ...receipt, ttlSeconds: OTP_TTL_SECONDS + 60 });
  } catch (err) {
    console.error(
      JSON.stringify({ level: "error", msg: "otp_restore_failed", error: describeError(err) }),
    );
  }
}

/** `consumeCode`, answering the receipt that `restoreCode` takes. */
export async function consumeCodeWithReceipt(
  deps: AuthDeps,
  input: { mobileNumber: string; purpose: OtpPurpose; code: string },
): Promise<CodeReceipt> {
  const mac = await otpMac(deps.config.otpSecret, input);
  const result = await deps.otpStore.consume({
    mobileNumber: input.mobileNumber,
    purpose: input.purpose,
    mac,
    nowMs: deps.clock.now().getTime(),
    maxAttempts: OTP_MAX_ATTEMPTS,
    maxConsecutiveFailures: OTP_MAX_CONSECUTIVE_FAILURES,
    failureWindowSeconds: OTP_FAILURE_WINDOW_SECONDS,
  });
  switch (result.status) {
    case "ok":
      return {
        mobileNumber: input.mobileNumber,
        purpose: input.purpose,
        mac,
        expiresAtMs: result.expiresAtMs,
      };
    case "locked":
      throw new LimitExceededError(
        "Too many wrong codes for this number; try again later.",
        result.retryAfterSeconds,
      );
    case "wrong":
      throw new UnauthorizedError(INVALID_OTP, "invalid_otp", {
        attempts_left: result.attemptsLeft,
      });
    default:
      throw new UnauthorizedError(INVALID_OTP, "invalid_otp", { attempts_left: 0 });
  }
}
