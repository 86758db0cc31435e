import {
  findUserById,
  findUserByMobileNumber,
  findUserIfSessionLive,
  insertUser,
  proveNumberAndStartSession,
  setPasswordAndRevokeSessions,
  type UserRow,
  updateUserProfileIfTokenCurrent,
  upgradePasswordHash,
} from "../../db/queries/users";
import {
  ConflictError,
  ForbiddenError,
  LimitExceededError,
  NotFoundError,
  UnauthorizedError,
  ValidationError,
} from "../../errors";
import { newId } from "../../lib/ids";
import {
  networkTag,
  numberTag,
  type OtpPurpose,
  preTagKnownNetworksCount,
  type StrangerAdmission,
  signupTokenMac,
} from "../../lib/otp";
import { hashPassword, needsRehash, verifyAgainstDummy, verifyPassword } from "../../lib/passwords";
import type { LimitResult } from "../../lib/rate-limit";
import { describeError } from "../../log";
import { AUTH_LIMITS, type AuthDeps } from "./deps";
import {
  type CodeReceipt,
  consumeCodeWithReceipt,
  decoyCode,
  giveBackSendAllowance,
  issueCode,
  restoreCode,
  type SendAllowance,
  type SentCode,
  takeSendAllowance,
} from "./otp";
import { prepareSession, startPasswordSession, startSession, type TokenPair } from "./sessions";

/** The 429 for a limiter's refusal, with Retry-After until its window lets the caller in. */
function limitExceeded(refusal: LimitResult, message: string): LimitExceededError {
  return new LimitExceededError(message, refusal.retryAfterSeconds);
}

export interface Session extends TokenPair {
  user: UserRow;
}

/**
 * The user lookup and the send limits in one round. Limits win, so a limited caller learns
 * nothing about whether the number is registered; a failed lookup (database down) gives the
 * allowance back, so the same request works once the database is.
 */
async function findUserTakingSendAllowance(
  deps: AuthDeps,
  input: { mobileNumber: string; clientIp: string; purpose: OtpPurpose },
): Promise<{ user: UserRow | null; allowance: SendAllowance }> {
  const [found, allowance] = await Promise.allSettled([
    findUserByMobileNumber(deps.db, input.mobileNumber),
    takeSendAllowance(deps, input),
  ]);
  if (allowance.status === "rejected") throw allowance.reason;
  if (found.status === "rejected") {
    await giveBackSendAllowance(deps, input, allowance.value);
    throw found.reason;
  }
  return { user: found.value, allowance: allowance.value };
}

/**
 * Consumes the code and looks the user up in one round. The client's budget of codes tried is
 * checked inside the consume, before the guess is evaluated. A wrong code wins; when only the
 * lookup failed (database down), a right code is put back, so the owner's retry still works.
 */
async function consumeCodeFindingUser(
  deps: AuthDeps,
  input: {
    mobileNumber: string;
    code: string;
    purpose: OtpPurpose;
    clientIp: string;
    challengeId?: string;
  },
): Promise<{ user: UserRow | null; receipt: CodeReceipt }> {
  const [consumed, found] = await Promise.allSettled([
    consumeCodeWithReceipt(deps, input),
    findUserByMobileNumber(deps.db, input.mobileNumber),
  ]);
  if (consumed.status === "rejected") throw consumed.reason;
  if (found.status === "rejected") {
    await restoreCode(deps, consumed.value);
    throw found.reason;
  }
  return { user: found.value, receipt: consumed.value };
}

/**
 * Runs what a right code authorised (the writes after it). When that fails on an outage (the
 * database: a 503), the code goes back by its consume's token, with the attempts it had spent,
 * before the error is answered: the client's retry of the 503 can still use it (soak finding
 * 9), and whoever is guessing at it gains no guesses from the outage. A refusal (401) keeps the
 * code used.
 */
async function spendingCode<T>(
  deps: AuthDeps,
  receipt: CodeReceipt,
  authorised: () => Promise<T>,
): Promise<T> {
  try {
    return await authorised();
  } catch (err) {
    if (!(err instanceof UnauthorizedError)) await restoreCode(deps, receipt);
    throw err;
  }
}

/**
 * Creates an account; 409 when the number is taken (decided by the unique index, race-free).
 * Limited per client IP before anything is written or hashed, since a signup is also a way to ask
 * whether a number is registered. A failed insert (database down)
 * gives the allowance back, so the same request works once the database is.
 */
export async function signUp(
  deps: AuthDeps,
  input: {
    mobileNumber: string;
    name?: string | null;
    email?: string | null;
    password?: string;
    clientIp: string;
  },
): Promise<{ user: UserRow; signupToken?: string }> {
  // The limit comes before the hash: a refused request must not cost 100,000 PBKDF2 rounds.
  const allowance = await deps.limiters.signupPerIp.limit(input.clientIp);
  if (!allowance.success) {
    throw limitExceeded(allowance, "Too many signups from this network; try again later.");
  }
  const passwordHash = input.password === undefined ? null : await hashPassword(input.password);
  let user: UserRow | null;
  try {
    user = await insertUser(deps.db, {
      id: newId(),
      mobileNumber: input.mobileNumber,
      name: input.name ?? null,
      email: input.email ?? null,
      passwordHash,
    });
  } catch (err) {
    await deps.limiters.signupPerIp.limit(input.clientIp, { rate: -1 }).catch(() => {});
    throw err;
  }
  if (!user) throw new ConflictError("An account with this mobile number already exists.");
  if (!passwordHash) return { user };
  // The password stays pending (login refuses it) until the number is proved by a code; only
  // a verification that presents this token keeps it (docs/adr/0008-credentials.md).
  const signupToken = await signupTokenMac(deps.config.otpSecret, {
    userId: user.id,
    passwordHash,
  });
  return { user, signupToken };
}

/** The pending password a first verification keeps: only with the signup's own token. */
async function pendingPasswordToKeep(
  deps: AuthDeps,
  user: UserRow,
  signupToken: string | undefined,
): Promise<string | null> {
  if (user.mobileVerifiedAt || !user.passwordHash || signupToken === undefined) return null;
  const expected = await signupTokenMac(deps.config.otpSecret, {
    userId: user.id,
    passwordHash: user.passwordHash,
  });
  return timingSafeEqualText(expected, signupToken) ? user.passwordHash : null;
}

function timingSafeEqualText(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** send-otp: a login code for a registered number; 404 user_not_found otherwise (as specified). */
export async function sendLoginCode(
  deps: AuthDeps,
  input: { mobileNumber: string; clientIp: string },
): Promise<SentCode> {
  const { user, allowance } = await findUserTakingSendAllowance(deps, {
    ...input,
    purpose: "login",
  });
  if (!user) throw new NotFoundError("No account uses this mobile number.", "user_not_found");
  return issueCode(deps, { ...input, purpose: "login", allowance });
}

/**
 * verify-otp: consumes a login code, records that the number is proved and starts a session, in
 * one transaction. The first proof drops a pending signup password unless `signupToken` (from
 * that signup's response) comes with it, and revokes any session obtained before the proof.
 */
export async function verifyLoginCode(
  deps: AuthDeps,
  input: {
    mobileNumber: string;
    code: string;
    clientIp: string;
    challengeId?: string;
    signupToken?: string;
  },
): Promise<Session> {
  const { user, receipt } = await consumeCodeFindingUser(deps, { ...input, purpose: "login" });
  // A code is only ever issued to a registered number, so this is a deleted account.
  if (!user)
    throw new UnauthorizedError("The code is wrong, expired or already used.", "invalid_otp");
  // Starting the session may fail on the database after the code was used: it goes back.
  return spendingCode(deps, receipt, async () => {
    if (user.mobileVerifiedAt) return { ...(await startSession(deps, user)), user };
    const now = deps.clock.now();
    const [keepPasswordHash, session] = await Promise.all([
      pendingPasswordToKeep(deps, user, input.signupToken),
      prepareSession(deps, user, now),
    ]);
    const proved = await proveNumberAndStartSession(deps.db, {
      userId: user.id,
      keepPasswordHash,
      now,
      session: session.row,
    });
    if (!proved)
      throw new UnauthorizedError("The code is wrong, expired or already used.", "invalid_otp");
    return { ...session.pair, user: proved };
  });
}

const BAD_CREDENTIALS = "The mobile number or password is wrong.";

/**
 * Password login. An unknown number, a user without a password, a number nobody has proved with a
 * code (its password is only pending) and a wrong password all cost one full hash and give the
 * same 401, so neither the answer nor its timing tells them apart.
 */
export async function logInWithPassword(
  deps: AuthDeps,
  input: { mobileNumber: string; password: string; clientIp: string },
): Promise<Session> {
  const tag = await numberTag(deps.config.otpSecret, input.mobileNumber);
  const [user, allowance] = await Promise.all([
    findUserByMobileNumber(deps.db, input.mobileNumber),
    takePasswordAllowance(deps, {
      numberTag: tag,
      mobileNumber: input.mobileNumber,
      clientIp: input.clientIp,
      perIp: true,
    }),
  ]);
  admitPasswordAttempt(allowance);
  const usable = user?.mobileVerifiedAt ? user.passwordHash : null;
  const ok = usable
    ? await verifyPassword(input.password, usable)
    : await verifyAgainstDummy(input.password);
  if (!user || !usable || !ok) {
    throw new UnauthorizedError(BAD_CREDENTIALS, "invalid_credentials");
  }
  const [session] = await Promise.all([
    startPasswordSession(deps, user, usable),
    // The network proved the number (its password is only usable once a code proved it): its
    // sends and logins are exempt from the strangers' ceilings from now on. Same round.
    rememberNetwork(deps, tag, allowance.network),
  ]);
  // The password was changed or reset while this login checked the old one.
  if (!session) throw new UnauthorizedError(BAD_CREDENTIALS, "invalid_credentials");
  // After the session, which is bound to the hash it verified (a rare extra round).
  if (needsRehash(usable)) {
    await rehash(deps, { userId: user.id, from: usable, password: input.password });
  }
  return { ...session, user };
}

const PASSWORD_STRANGERS = "login";

/**
 * What the password-attempt limits answered for one attempt: what a refusal says, and what a
 * request that then fails before evaluating its guess gives back.
 */
interface PasswordAllowance {
  /** The number's tag (`numberTag`), which keys the budgets. */
  numberTag: string;
  clientIp: string;
  /** The caller's network tag. */
  network: string;
  perNumber: LimitResult;
  perIp: LimitResult | null;
  stranger: StrangerAdmission;
}

/**
 * The password-attempt limits, in one round, before any hash is computed: per (number, client
 * network), so a stranger's wrong passwords lock only the stranger; per number across networks
 * that never proved it (20 an hour), so strangers holding many networks (IPv6 /64s) still meet a
 * per-number ceiling while the owner's known networks are never refused by it; and per client
 * (`perIp`, login only). Keyed by the number's tag, which change-password reads from the access
 * token, so login and change-password spend one budget. `admitPasswordAttempt` says whether
 * they admitted the attempt.
 */
async function takePasswordAllowance(
  deps: AuthDeps,
  input: {
    numberTag: string;
    /** The number, when the caller has read it: its pre-tag known networks count too. */
    mobileNumber?: string;
    clientIp: string;
    perIp: boolean;
  },
): Promise<PasswordAllowance> {
  const network = await networkTag(deps.config.otpSecret, input.clientIp);
  const [perNumber, perIp, stranger] = await Promise.all([
    deps.limiters.loginPerNumber.limit(`${input.numberTag}:${input.clientIp}`),
    input.perIp ? deps.limiters.loginPerIp.limit(input.clientIp) : null,
    admitPasswordStranger(deps, { ...input, network }),
  ]);
  return {
    numberTag: input.numberTag,
    clientIp: input.clientIp,
    network,
    perNumber,
    perIp,
    stranger,
  };
}

/** The strangers' password ceiling for one attempt (a known network passes uncounted). */
function admitPasswordStranger(
  deps: AuthDeps,
  input: { numberTag: string; mobileNumber?: string; network: string },
): Promise<StrangerAdmission> {
  return deps.otpStore.admitStranger({
    numberTag: input.numberTag,
    ...(input.mobileNumber !== undefined ? { mobileNumber: input.mobileNumber } : {}),
    network: input.network,
    ceiling: PASSWORD_STRANGERS,
    max: AUTH_LIMITS.loginStrangerPerHour,
    windowSeconds: 3600,
    nowMs: deps.clock.now().getTime(),
    knownTtlSeconds: AUTH_LIMITS.knownNetworkTtlSeconds,
  });
}

/**
 * change-password's first round takes the budget with the token's tag alone, so a network known
 * only in the number's pre-tag set (ADR 8 item 10) is a stranger's there. When the strangers'
 * ceiling refused it, ask again with the number just read: one more round, only for a refusal,
 * and only during the transition.
 */
async function admitByPreTagKnownNetwork(
  deps: AuthDeps,
  allowance: PasswordAllowance,
  mobileNumber: string,
): Promise<PasswordAllowance> {
  if (
    !allowance.perNumber.success ||
    allowance.stranger.status !== "refused" ||
    !preTagKnownNetworksCount(deps.clock.now().getTime())
  ) {
    return allowance;
  }
  try {
    const stranger = await admitPasswordStranger(deps, { ...allowance, mobileNumber });
    return { ...allowance, stranger };
  } catch (err) {
    // No guess will be evaluated (503): what round 1 took goes back, as for a failed read.
    await giveBackPasswordAllowance(deps, allowance);
    throw err;
  }
}

/** Throws the 429 of a password-attempt limit that refused the attempt. */
function admitPasswordAttempt(allowance: PasswordAllowance): void {
  const { perNumber, perIp, stranger } = allowance;
  if (!perNumber.success) {
    throw limitExceeded(perNumber, "Too many password attempts for this number; try again later.");
  }
  if (stranger.status === "refused") {
    throw new LimitExceededError(
      "Too many password attempts for this number; try again later.",
      stranger.retryAfterSeconds,
    );
  }
  if (perIp && !perIp.success) {
    throw limitExceeded(perIp, "Too many login attempts from this network; try again later.");
  }
}

/**
 * Gives back what an allowance took, for a request that failed before its guess was evaluated
 * (a revoked session, a failed read). Best effort: a failure leaves the attempt spent.
 */
async function giveBackPasswordAllowance(
  deps: AuthDeps,
  allowance: PasswordAllowance,
): Promise<void> {
  const { perNumber, perIp, stranger } = allowance;
  await Promise.allSettled([
    perNumber.success
      ? deps.limiters.loginPerNumber.limit(`${allowance.numberTag}:${allowance.clientIp}`, {
          rate: -1,
        })
      : null,
    perIp?.success ? deps.limiters.loginPerIp.limit(allowance.clientIp, { rate: -1 }) : null,
    stranger.status === "taken"
      ? deps.otpStore.refundStranger({
          numberTag: allowance.numberTag,
          ceiling: PASSWORD_STRANGERS,
        })
      : null,
  ]);
}

/** Best effort: a failure only leaves the network unknown (it meets the strangers' ceilings). */
async function rememberNetwork(deps: AuthDeps, tag: string, network: string) {
  try {
    await deps.otpStore.rememberNetwork({
      numberTag: tag,
      network,
      nowMs: deps.clock.now().getTime(),
      knownTtlSeconds: AUTH_LIMITS.knownNetworkTtlSeconds,
    });
  } catch (err) {
    deps.log.warn("known_network_not_recorded", { error: describeError(err) });
  }
}

/**
 * Re-hashes a password stored with weaker parameters than today's, now that the plain text is
 * at hand (the only moment it is). Best effort: a failure leaves the old hash, which still
 * verifies, and is retried at the next login.
 */
async function rehash(
  deps: AuthDeps,
  input: { userId: string; from: string; password: string },
): Promise<void> {
  try {
    const to = await hashPassword(input.password);
    await upgradePasswordHash(deps.db, {
      userId: input.userId,
      from: input.from,
      to,
      now: deps.clock.now(),
    });
  } catch (err) {
    deps.log.warn("password_rehash_failed", { user_id: input.userId, error: describeError(err) });
  }
}

/**
 * forgot-password: a reset code (purpose `password_reset`, never valid for login). An unknown
 * number gets the same limits, status and body shape, but no code is stored or sent.
 */
export async function sendResetCode(
  deps: AuthDeps,
  input: { mobileNumber: string; clientIp: string },
): Promise<SentCode> {
  const { user, allowance } = await findUserTakingSendAllowance(deps, {
    ...input,
    purpose: "password_reset",
  });
  if (!user) return decoyCode(deps, { ...input, purpose: "password_reset", allowance });
  return issueCode(deps, { ...input, purpose: "password_reset", allowance });
}

/** reset-password: consumes a reset code, sets the password, revokes every session. No login. */
export async function resetPassword(
  deps: AuthDeps,
  input: {
    mobileNumber: string;
    code: string;
    newPassword: string;
    clientIp: string;
    challengeId?: string;
  },
): Promise<void> {
  const { user, receipt } = await consumeCodeFindingUser(deps, {
    mobileNumber: input.mobileNumber,
    code: input.code,
    purpose: "password_reset",
    clientIp: input.clientIp,
    ...(input.challengeId ? { challengeId: input.challengeId } : {}),
  });
  if (!user)
    throw new UnauthorizedError("The code is wrong, expired or already used.", "invalid_otp");
  // The write may fail on the database after the code was used: it goes back.
  await spendingCode(deps, receipt, async () => {
    const passwordHash = await hashPassword(input.newPassword);
    await setPasswordAndRevokeSessions(deps.db, {
      userId: user.id,
      passwordHash,
      now: deps.clock.now(),
      numberProved: true,
    });
  });
}

/** True when the token predates the user's last password change (it must no longer be honoured). */
export function tokenPredatesPasswordChange(user: UserRow, tokenIssuedAt: number): boolean {
  if (!user.passwordChangedAt) return false;
  return Math.round(tokenIssuedAt * 1000) < user.passwordChangedAt.getTime();
}

const STALE_TOKEN = "The bearer token is invalid or expired.";

/**
 * Loads the caller, refusing a token issued before the last password change. Given the token's
 * `session`, the read also carries the whole session check (one query instead of two).
 */
export async function getCurrentUser(
  deps: AuthDeps,
  input: { userId: string; tokenIssuedAt: number; session?: { familyId: string; issuedAt: Date } },
): Promise<UserRow> {
  const user = input.session
    ? await findUserIfSessionLive(deps.db, { userId: input.userId, ...input.session })
    : await findUserById(deps.db, input.userId);
  if (!user || tokenPredatesPasswordChange(user, input.tokenIssuedAt)) {
    throw new UnauthorizedError(STALE_TOKEN);
  }
  return user;
}

export async function updateCurrentUser(
  deps: AuthDeps,
  input: {
    userId: string;
    tokenIssuedAt: number;
    sessionId: string;
    changes: { name?: string | null; email?: string | null };
  },
): Promise<UserRow> {
  const user = await updateUserProfileIfTokenCurrent(deps.db, {
    userId: input.userId,
    tokenIssuedAt: new Date(Math.round(input.tokenIssuedAt * 1000)),
    sessionId: input.sessionId,
    changes: input.changes,
    now: deps.clock.now(),
  });
  if (!user) throw new UnauthorizedError(STALE_TOKEN);
  return user;
}

/**
 * change-password: requires the current password once one is set, and a fresh code for the
 * number (`otp`, from forgot-password) to set a first one: a bearer token alone never sets a
 * password. Revokes every session and returns a fresh token pair for the caller, whose old
 * access token stops working everywhere.
 *
 * Two rounds: [session check ‖ the user ‖ the password budget], then [new hash ‖ revocation ‖
 * new session, one batch]. The budget is keyed by the number's tag, which the access token
 * carries (`numberTag`), so it is taken before the number is read and before the guess is
 * evaluated. A token without the tag (issued before it existed), or whose tag is not the
 * number's (an earlier OTP_SECRET), takes it once the user is read: three rounds.
 */
export async function changePassword(
  deps: AuthDeps,
  input: {
    userId: string;
    tokenIssuedAt: number;
    /** The access token's number tag, when it carries one. */
    numberTag?: string;
    currentPassword?: string;
    otp?: string;
    challengeId?: string;
    newPassword: string;
    clientIp: string;
    /** The caller's session check (auth middleware), awaited in the same round as the read. */
    sessionLive: Promise<void>;
  },
): Promise<Session> {
  // Only a request that brings a guess takes a password attempt.
  const early =
    input.currentPassword !== undefined && input.numberTag !== undefined
      ? takePasswordAllowance(deps, {
          numberTag: input.numberTag,
          clientIp: input.clientIp,
          perIp: false,
        })
      : null;
  const [live, found, taken] = await Promise.allSettled([
    input.sessionLive,
    getCurrentUser(deps, input),
    early,
  ]);
  const tookEarly = taken.status === "fulfilled" ? taken.value : null;
  if (live.status === "rejected" || found.status === "rejected") {
    // No guess will be evaluated: a revoked or stale token must not spend the owner's budget,
    // and neither must a read that failed (the retry then finds its attempt unspent).
    if (tookEarly) await giveBackPasswordAllowance(deps, tookEarly);
    throw live.status === "rejected" ? live.reason : (found as PromiseRejectedResult).reason;
  }
  const user = found.value;
  // The code that authorises a first password, once used: given back if the write fails.
  let code: CodeReceipt | null = null;
  if (!user.passwordHash) {
    if (tookEarly) await giveBackPasswordAllowance(deps, tookEarly);
    if (input.otp === undefined) {
      throw new ForbiddenError(
        "Setting a first password needs a fresh code: request one with /auth/forgot-password and send it as otp.",
        "reauthentication_required",
      );
    }
    const consumed = await consumeCodeFindingUser(deps, {
      mobileNumber: user.mobileNumber,
      code: input.otp,
      purpose: "password_reset",
      clientIp: input.clientIp,
      ...(input.challengeId ? { challengeId: input.challengeId } : {}),
    });
    code = consumed.receipt;
  } else {
    if (input.currentPassword === undefined) {
      throw new ValidationError("The request is invalid.", [
        {
          path: "current_password",
          message: "The current password is required to change it.",
          location: "json",
        },
      ]);
    }
    // A guess here must cost what a login guess costs: the same per-number budgets, or a stolen
    // access token could brute-force the current password without any limit.
    const tag = await numberTag(deps.config.otpSecret, user.mobileNumber);
    let allowance: PasswordAllowance;
    if (input.numberTag === tag) {
      if (taken.status === "rejected") throw taken.reason;
      allowance = await admitByPreTagKnownNetwork(
        deps,
        tookEarly as PasswordAllowance,
        user.mobileNumber,
      );
    } else {
      allowance = await takePasswordAllowance(deps, {
        numberTag: tag,
        mobileNumber: user.mobileNumber,
        clientIp: input.clientIp,
        perIp: false,
      });
    }
    admitPasswordAttempt(allowance);
    if (!(await verifyPassword(input.currentPassword, user.passwordHash))) {
      throw new UnauthorizedError("The current password is wrong.", "invalid_credentials");
    }
  }
  const setPassword = async (): Promise<Session> => {
    const passwordHash = await hashPassword(input.newPassword);
    const now = deps.clock.now();
    const session = await prepareSession(deps, user, now);
    const updated = await setPasswordAndRevokeSessions(deps.db, {
      userId: user.id,
      passwordHash,
      // Only over the password just verified: a concurrent change or reset wins, this one fails.
      expectedHash: user.passwordHash,
      now,
      newSession: session.row,
      numberProved: !user.passwordHash,
    });
    if (!updated) {
      throw new UnauthorizedError(
        "The password was changed while this request ran; try again with the current one.",
        "invalid_credentials",
      );
    }
    return { ...session.pair, user: updated };
  };
  // The write may fail on the database after a code was used: it goes back.
  return code ? spendingCode(deps, code, setPassword) : setPassword();
}
