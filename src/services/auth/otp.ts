import { LimitExceededError, UnauthorizedError } from "../../errors";
import {
  CHALLENGE_ID_PATTERN,
  type CodeSlot,
  type ConsumeResult,
  generateOtp,
  networkTag,
  newChallengeId,
  numberTag,
  type OtpPurpose,
  otpMac,
} from "../../lib/otp";
import { describeError } from "../../log";
import { AUTH_LIMITS, type AuthDeps } from "./deps";

/** A code lives 5 minutes (NIST/ASVS allow at most 10). */
export const OTP_TTL_SECONDS = 300;
/** Wrong submissions per code before it is destroyed. */
export const OTP_MAX_ATTEMPTS = 5;
/**
 * Consecutive wrong codes per number from networks that never proved it (all codes, both
 * purposes) before such guesses lock; known networks and the code's own challenge id never lock.
 */
export const OTP_MAX_CONSECUTIVE_FAILURES = 100;
/** The lock (and the failure count) expires this long after the first failure. */
export const OTP_FAILURE_WINDOW_SECONDS = 24 * 3600;
/** The per-client budget of codes tried is a fixed window of this length. */
export const OTP_CLIENT_WINDOW_SECONDS = 15 * 60;

export interface SentCode {
  /** Present only when the delivery echoes codes (OTP_DELIVERY=response). */
  otp?: string;
  expiresIn: number;
  /** Names this code; the client that asked for it sends it back to bind its attempts to it. */
  challengeId: string;
}

/** Who is asking about which number's code. */
interface CodeRequest {
  mobileNumber: string;
  purpose: OtpPurpose;
  clientIp: string;
}

/** The slot of the caller's own code: (number, purpose, the caller's network). */
async function slotOf(deps: AuthDeps, input: CodeRequest): Promise<CodeSlot> {
  return {
    mobileNumber: input.mobileNumber,
    purpose: input.purpose,
    network: await networkTag(deps.config.otpSecret, input.clientIp),
  };
}

/** What a send took, so a request that then fails can give it back. */
export interface SendAllowance {
  strangerTaken: boolean;
  /** Names this send's cool-down, hourly windows' and strangers' takes (see `takeSendAllowance`). */
  token: string;
}

/** What a send may have taken; each is given back by the send's token. */
interface SendTakes {
  cooldown: boolean;
  windows: boolean;
  stranger: boolean;
}

/**
 * Applies the send limits: an exact 30-second cool-down and 5 codes an hour per (number, purpose,
 * client network), so a stranger's sends never use up the owner's; 10 codes a day per number and
 * purpose from all networks that never proved the number together (known networks are exempt, so
 * strangers cannot use up the owner's sends, and their guesses are bounded by 5 per code); 20
 * codes an hour per number and purpose from all networks (the SMS spend ceiling, out of the
 * strangers' reach); 20 an hour per client IP. All are consulted at once; when any refuses, what
 * the others took is given back, so a refused request costs the caller nothing.
 */
export async function takeSendAllowance(
  deps: AuthDeps,
  input: CodeRequest,
): Promise<SendAllowance> {
  const [slot, tag] = await Promise.all([
    slotOf(deps, input),
    numberTag(deps.config.otpSecret, input.mobileNumber),
  ]);
  // Names this request's takes: a give-back undoes exactly what they did, whether or not their
  // answers arrived, and stops them if Redis runs them later.
  const token = crypto.randomUUID();
  const settled = await Promise.allSettled([
    deps.otpStore.startCooldown({
      ...slot,
      seconds: AUTH_LIMITS.otpCooldownSeconds,
      token,
    }),
    deps.otpStore.takeSendWindows({
      ...slot,
      clientIp: input.clientIp,
      token,
      nowMs: deps.clock.now().getTime(),
      windowSeconds: AUTH_LIMITS.otpSendWindowSeconds,
      max: {
        perNetwork: AUTH_LIMITS.otpPerNumberPerHour,
        perNumber: AUTH_LIMITS.otpPerNumberAllPerHour,
        perIp: AUTH_LIMITS.otpPerIpPerHour,
      },
    }),
    deps.otpStore.admitStranger({
      numberTag: tag,
      mobileNumber: slot.mobileNumber,
      network: slot.network,
      ceiling: strangerSendCeiling(slot.purpose),
      max: AUTH_LIMITS.otpStrangerSendsPerDay,
      windowSeconds: 24 * 3600,
      nowMs: deps.clock.now().getTime(),
      knownTtlSeconds: AUTH_LIMITS.knownNetworkTtlSeconds,
      token,
    }),
  ]);
  const [cooldownR, windowsR, strangerR] = settled;
  if (
    cooldownR.status === "rejected" ||
    windowsR.status === "rejected" ||
    strangerR.status === "rejected"
  ) {
    // Redis failed part-way (the request answers 503): give back what the calls took, or the
    // client's retry once Redis is back would meet its own cool-down (the soak found this) and
    // find its hourly sends spent. A call whose answer was lost may have run, or may run later
    // (Redis slower than the deadline): it is given back by the token too, which undoes only
    // this request's take and stops a late run (the soak's finding 6).
    await giveBack(
      deps,
      input,
      slot,
      token,
      {
        cooldown: cooldownR.status === "rejected" || cooldownR.value.started,
        windows: windowsR.status === "rejected" || windowsR.value.taken,
        stranger: strangerR.status === "rejected" || strangerR.value.status === "taken",
      },
      { whileRedisFails: true },
    );
    throw (settled.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
  }
  const [cooldown, windows, stranger] = [cooldownR.value, windowsR.value, strangerR.value];
  const strangerTaken = stranger.status === "taken";
  if (cooldown.started && windows.taken && stranger.status !== "refused") {
    return { strangerTaken, token };
  }
  await giveBack(deps, input, slot, token, {
    cooldown: cooldown.started,
    windows: windows.taken,
    stranger: strangerTaken,
  });
  const waits: number[] = [];
  if (stranger.status === "refused") waits.push(stranger.retryAfterSeconds);
  if (!cooldown.started) waits.push(cooldown.retryAfterSeconds);
  for (const window of [windows.perNetwork, windows.perNumber, windows.perIp]) {
    if (!window.success) waits.push(window.retryAfterSeconds);
  }
  throw new LimitExceededError(
    "Too many codes requested; wait before asking for another.",
    Math.max(1, ...waits),
  );
}

const strangerSendCeiling = (purpose: OtpPurpose) => `send:${purpose}`;

/**
 * Gives back a send allowance taken for a request that then failed (the database was down, or
 * Redis refused the code's write), so the same request works as soon as the dependency is back
 * instead of hitting the cool-down.
 */
export async function giveBackSendAllowance(
  deps: AuthDeps,
  input: CodeRequest,
  allowance: SendAllowance,
): Promise<void> {
  await giveBack(
    deps,
    input,
    await slotOf(deps, input),
    allowance.token,
    { cooldown: true, windows: true, stranger: allowance.strangerTaken },
    { whileRedisFails: true },
  );
}

async function giveBack(
  deps: AuthDeps,
  input: CodeRequest,
  slot: CodeSlot,
  token: string,
  taken: SendTakes,
  options: { whileRedisFails?: boolean } = {},
): Promise<void> {
  const tag = taken.stranger ? await numberTag(deps.config.otpSecret, slot.mobileNumber) : "";
  // Every give-back is keyed by the token, so each is idempotent and can be tried again.
  const giveBacks: (() => Promise<void>)[] = [];
  if (taken.cooldown) giveBacks.push(() => deps.otpStore.clearCooldown({ ...slot, token }));
  if (taken.windows) {
    giveBacks.push(() =>
      deps.otpStore.giveBackSendWindows({ ...slot, clientIp: input.clientIp, token }),
    );
  }
  if (taken.stranger) {
    giveBacks.push(() =>
      deps.otpStore.refundStranger({
        numberTag: tag,
        ceiling: strangerSendCeiling(slot.purpose),
        token,
      }),
    );
  }
  const settled = await Promise.allSettled(giveBacks.map((run) => run()));
  // The cool-down is what a retry meets first: when Redis is failing the give-backs are tried
  // again for ~5 s, past a fault window (the soak's finding 6).
  const failing = giveBacks.filter((_, i) => settled[i]?.status === "rejected");
  if (options.whileRedisFails) await retryWhileFailing(failing);
}

/**
 * Runs idempotent give-backs that failed once again after 250 ms, 1 s, 2.5 s and 5 s, each until
 * it succeeds: past a Redis fault window. Answers the ones that never succeeded.
 */
async function retryWhileFailing(
  failing: (() => Promise<unknown>)[],
): Promise<(() => Promise<unknown>)[]> {
  let left = failing;
  for (const wait of [250, 750, 1_500, 2_500]) {
    if (left.length === 0) break;
    await new Promise((resolve) => setTimeout(resolve, wait));
    const again = await Promise.allSettled(left.map((run) => run()));
    left = left.filter((_, i) => again[i]?.status === "rejected");
  }
  return left;
}

/**
 * Issues a fresh code in the caller's slot and delivers it. It becomes the code a guess without
 * a challenge id from the caller's network is tried against; earlier codes (another client's
 * behind the same address, too) stay usable with their challenge ids until they expire. `deliver: false` stores a code nobody receives:
 * forgot-password for an unknown number, so its answers (attempts_left) match a known one's.
 */
export async function issueCode(
  deps: AuthDeps,
  input: CodeRequest & {
    deliver?: boolean;
    /**
     * The send allowance this code was admitted with: given back when the code cannot be stored
     * (Redis failed after admitting the send), so the client's retry of that 503 is not held by
     * this send's cool-down. Not after delivery has begun: a code may have gone out.
     */
    allowance?: SendAllowance;
  },
): Promise<SentCode> {
  const code = generateOtp();
  const now = deps.clock.now().getTime();
  const slot = await slotOf(deps, input);
  const challengeId = newChallengeId(slot.network);
  const mac = await otpMac(deps.config.otpSecret, { ...slot, code });
  try {
    await deps.otpStore.issue({
      ...slot,
      mac,
      challengeId,
      expiresAtMs: now + OTP_TTL_SECONDS * 1000,
      nowMs: now,
      // The stored expiry decides validity; the Redis TTL only collects garbage a little later.
      ttlSeconds: OTP_TTL_SECONDS + 60,
    });
  } catch (err) {
    // A write whose answer was lost may have stored the code: harmless, nobody received it.
    if (input.allowance) await giveBackSendAllowance(deps, input, input.allowance);
    throw err;
  }
  if (input.deliver === false) {
    return {
      ...(deps.otpDelivery.echoesCode ? { otp: generateOtp() } : {}),
      expiresIn: OTP_TTL_SECONDS,
      challengeId,
    };
  }
  const delivered = await deps.otpDelivery.deliver({
    mobileNumber: input.mobileNumber,
    purpose: input.purpose,
    code,
    expiresInSeconds: OTP_TTL_SECONDS,
  });
  return {
    ...(delivered.codeForResponse ? { otp: delivered.codeForResponse } : {}),
    expiresIn: OTP_TTL_SECONDS,
    challengeId,
  };
}

/**
 * What an unknown number gets from forgot-password: the same shape as a real code, and a
 * stored, never-delivered code, so wrong guesses answer the same attempts_left as for a known one.
 */
export function decoyCode(
  deps: AuthDeps,
  input: CodeRequest & { allowance?: SendAllowance },
): Promise<SentCode> {
  return issueCode(deps, { ...input, deliver: false });
}

const INVALID_OTP = "The code is wrong, expired or already used.";

/** Consumes the code if it is right; throws 401 invalid_otp (with attempts left) or 429. */
export async function consumeCode(
  deps: AuthDeps,
  input: CodeRequest & { code: string; challengeId?: string },
): Promise<void> {
  await consumeCodeWithReceipt(deps, input);
}

/**
 * What `restoreCode` needs to put a consumed code back: the slot and the token that named the
 * consume, under which the consume recorded the code as it took it (see `OtpStore.consume`).
 */
export interface CodeReceipt extends CodeSlot {
  token: string;
}

/**
 * Puts back a code whose request then failed before writing anything (the database was down),
 * so the user can retry with the same code instead of waiting out a send cool-down. By the
 * consume's token, as a consume whose answer was lost is given back: the code returns with the
 * attempts it had spent, so an outage never hands whoever is guessing at it fresh guesses.
 * Awaited, unlike that give-back, so the client's retry of the 503 finds the code back.
 */
export async function restoreCode(deps: AuthDeps, receipt: CodeReceipt): Promise<void> {
  try {
    await deps.otpStore.restoreConsumed({ ...receipt, ttlSeconds: OTP_TTL_SECONDS + 60 });
  } catch (err) {
    deps.log.error("otp_restore_failed", { error: describeError(err) });
  }
}

/**
 * `consumeCode`, answering the receipt that `restoreCode` takes. With a challenge id the code is
 * the one that send issued (from whichever network the client is on now); without one, it is the
 * code issued to the caller's own network. Either way, nobody else's code is touched.
 */
export async function consumeCodeWithReceipt(
  deps: AuthDeps,
  input: CodeRequest & { code: string; challengeId?: string },
): Promise<CodeReceipt> {
  const named = input.challengeId ? CHALLENGE_ID_PATTERN.exec(input.challengeId) : null;
  const slot: CodeSlot = named?.[1]
    ? { mobileNumber: input.mobileNumber, purpose: input.purpose, network: named[1] }
    : await slotOf(deps, input);
  const challengeId = named ? (input.challengeId as string) : "";
  const [mac, callerNetwork, tag] = await Promise.all([
    otpMac(deps.config.otpSecret, { ...input, code: input.code }),
    named ? networkTag(deps.config.otpSecret, input.clientIp) : slot.network,
    numberTag(deps.config.otpSecret, input.mobileNumber),
  ]);
  // Names this request's consume, so a consume whose answer was lost can be given back.
  const token = crypto.randomUUID();
  let result: ConsumeResult;
  try {
    result = await deps.otpStore.consume({
      ...slot,
      mac,
      challengeId,
      clientIp: input.clientIp,
      clientMaxTries: AUTH_LIMITS.verifyPerIpPer15Min,
      clientWindowSeconds: OTP_CLIENT_WINDOW_SECONDS,
      nowMs: deps.clock.now().getTime(),
      maxAttempts: OTP_MAX_ATTEMPTS,
      maxConsecutiveFailures: OTP_MAX_CONSECUTIVE_FAILURES,
      failureWindowSeconds: OTP_FAILURE_WINDOW_SECONDS,
      callerNetwork,
      numberTag: tag,
      knownTtlSeconds: AUTH_LIMITS.knownNetworkTtlSeconds,
      token,
    });
  } catch (err) {
    // No answer (Redis slower than the deadline, the network): the consume may have run, or may
    // run later. This request fails (503), so what it took goes back, by its token only: a right
    // code is put back, a wrong guess keeps its attempt, and a late run does nothing.
    await giveBackConsume(deps, { ...slot, token });
    throw err;
  }
  switch (result.status) {
    case "ok":
      return { ...slot, token };
    case "limited":
      throw new LimitExceededError(
        "Too many codes tried from this network; try again later.",
        result.retryAfterSeconds,
      );
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

/**
 * Puts back what the consume named by `token` took, if anything, and stops it if Redis has not
 * run it yet (see `OtpStore.restoreConsumed`); retried for ~5 s while Redis fails, after the
 * response when the platform allows (`waitUntil`), so the 503 is not held. The client retries
 * after Retry-After (5 s), by when this has normally run.
 */
function giveBackConsume(deps: AuthDeps, consumed: CodeSlot & { token: string }): Promise<void> {
  const run = () =>
    deps.otpStore.restoreConsumed({ ...consumed, ttlSeconds: OTP_TTL_SECONDS + 60 });
  const work = run()
    .then(
      () => [],
      () => retryWhileFailing([run]),
    )
    .then((left) => {
      if (left.length > 0) deps.log.error("otp_restore_failed", { by: "token" });
    });
  if (deps.waitUntil) {
    deps.waitUntil(work);
    return Promise.resolve();
  }
  return work;
}
