import { DependencyUnavailableError, LimitExceededError } from "../../errors";
import { isDependencyFailure } from "../../errors/dependency";
import { createRateLimiter, type RateLimiter } from "../../lib/rate-limit";
import type { RedisClient } from "../../lib/redis";

/**
 * Per-user limits of the billing endpoints that call Stripe (issue 12; docs/adr/0008-credentials.md).
 * Each request costs 2–4 Stripe calls: checkout finds or creates the customer, creates a session,
 * lists and expires the open ones; cancel reads and updates the subscription; the portal creates a
 * session. A person clicks these a few times; a script with one stolen or own token should not be
 * able to spend the account's Stripe rate limit (100 operations/s live, 25 in test mode) on them.
 * Each endpoint has its own counter, so opening the portal never blocks a cancel.
 */
export const BILLING_LIMITS = {
  /** Requests per user per sliding 10 minutes, for each of the three endpoints. */
  perUserPer10Min: 10,
} as const;

export type BillingAction = "checkout" | "portal" | "cancel";

export type BillingLimiters = Record<BillingAction, RateLimiter>;

export function createBillingLimiters(redis: RedisClient): BillingLimiters {
  const limiter = (action: BillingAction) =>
    createRateLimiter({
      redis,
      prefix: `rl:billing:${action}`,
      algorithm: "sliding",
      tokens: BILLING_LIMITS.perUserPer10Min,
      window: "10 m",
    });
  return { checkout: limiter("checkout"), portal: limiter("portal"), cancel: limiter("cancel") };
}

/** What lets a billing request through: a live session and the user's allowance for the action. */
export interface BillingAdmission {
  /** `liveSession(c)`: resolves while the caller's session stands, rejects with 401 otherwise. */
  sessionLive: Promise<void>;
  /** The limiter of this action, keyed by user. */
  limiter: RateLimiter;
}

/** Admissions whose allowance `admit` kept (per request objects, so nothing outlives them). */
const held = new WeakSet<BillingAdmission>();

const giveBack = (admission: BillingAdmission, userId: string) =>
  admission.limiter.limit(userId, { rate: -1 }).then(
    () => {},
    () => {},
  );

/**
 * Runs a billing request whose first round is `admit(admission, ...)`. When it then fails on a
 * vendor (Stripe or the database: a 503), the allowance is given back: the user did nothing
 * wrong, and the retry a 503 asks for must not meet a 429 (the chaos soak's finding 5,
 * docs/reliability.md). Not when Stripe refused us with a 429 (rate_limit, lock_timeout): the
 * request did reach Stripe, and giving back there would let one user's loop saturate Stripe
 * without ever meeting the per-user limit (attacker review, finding 3).
 */
export async function givingBackOnVendorFailure<T>(
  admission: BillingAdmission,
  userId: string,
  work: () => Promise<T>,
): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (
      held.has(admission) &&
      err instanceof Error &&
      isDependencyFailure(err) &&
      !isVendorThrottle(err)
    ) {
      held.delete(admission);
      await giveBack(admission, userId);
    }
    throw err;
  }
}

/** Stripe answered 429: a refusal for volume, which counts like any answered request. */
function isVendorThrottle(err: Error): boolean {
  return (
    (err instanceof DependencyUnavailableError && err.throttled) ||
    (err.cause instanceof Error && isVendorThrottle(err.cause))
  );
}

/**
 * The first round of a billing request: the session check, the user's allowance and the
 * request's first read, together. Nothing after it (Stripe calls, writes) runs for a revoked
 * session or a limited user. The allowance is given back when the session is revoked (an old
 * token must not use up its owner's budget) or the read failed (the retry should work).
 */
export async function admit<T>(
  admission: BillingAdmission,
  userId: string,
  firstRead: Promise<T>,
): Promise<T> {
  const [live, allowance, read] = await Promise.allSettled([
    admission.sessionLive,
    admission.limiter.limit(userId),
    firstRead,
  ]);
  const taken = allowance.status === "fulfilled" && allowance.value.success;
  if (live.status === "rejected") {
    if (taken) await giveBack(admission, userId);
    throw live.reason;
  }
  if (allowance.status === "rejected") throw allowance.reason;
  if (!allowance.value.success) {
    throw new LimitExceededError(
      `Too many billing requests; at most ${BILLING_LIMITS.perUserPer10Min} per 10 minutes. Try again later.`,
      allowance.value.retryAfterSeconds,
    );
  }
  if (read.status === "rejected") {
    await giveBack(admission, userId);
    throw read.reason;
  }
  held.add(admission);
  return read.value;
}
