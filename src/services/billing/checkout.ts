import type { ServiceConfig } from "../../config";
import type { Database } from "../../db/client";
import { findBillingAccount, setStripeCustomerId } from "../../db/queries/subscriptions";
import { ConflictError, NotFoundError } from "../../errors";
import { type Billing, StaleBillingReferenceError } from "../../lib/billing";
import type { Clock } from "../../lib/clock";
import { newId } from "../../lib/ids";
import type { Logger } from "../../log";
import { describeError } from "../../log";
import {
  admit,
  type BillingAdmission,
  type BillingLimiters,
  givingBackOnVendorFailure,
} from "./admission";
import {
  allowedRedirectOrigins,
  checkoutIdempotencyKey,
  checkRedirectUrl,
  customerIdempotencyKey,
  isTerminalStatus,
} from "./policy";

/** The slice of the service context (src/context.ts) the billing services touch. */
export interface BillingDeps {
  db: Database;
  billing: Billing;
  clock: Clock;
  log: Logger;
  /** Per-user limits of the endpoints that call Stripe. */
  billingLimiters: BillingLimiters;
  /** `proPriceId`: only a subscription to this price grants Pro. */
  config: Pick<ServiceConfig, "proPriceId" | "appUrl" | "allowedRedirectOrigins">;
}

/**
 * Starts a Pro Checkout Session. One Stripe customer per user: created once (idempotency key
 * derived from the user id) and stored with a conditional update, then reused. Opening a session
 * expires the user's other open ones (read alongside the create), so two tabs cannot both be
 * paid into two subscriptions.
 */
export async function startProCheckout(
  deps: BillingDeps,
  input: {
    userId: string;
    successUrl?: string | undefined;
    cancelUrl?: string | undefined;
    /** `liveSession(c)`: resolves while the caller's session stands. */
    sessionLive: Promise<void>;
  },
): Promise<{ checkoutUrl: string; sessionId: string }> {
  const { config } = deps;
  const allowed = allowedRedirectOrigins(config.appUrl, config.allowedRedirectOrigins);
  const base = config.appUrl.replace(/\/+$/, "");
  const urls = {
    successUrl: input.successUrl
      ? checkRedirectUrl("success_url", input.successUrl, allowed)
      : `${base}/?checkout=success&session_id={CHECKOUT_SESSION_ID}`,
    cancelUrl: input.cancelUrl
      ? checkRedirectUrl("cancel_url", input.cancelUrl, allowed)
      : `${base}/?checkout=canceled`,
  };

  const admission: BillingAdmission = {
    sessionLive: input.sessionLive,
    limiter: deps.billingLimiters.checkout,
  };
  // A vendor failure after round 1 gives the allowance back (the soak's finding 5).
  return givingBackOnVendorFailure(admission, input.userId, async () => {
    // Round 1: the account, the session check and the allowance (the URLs are checked above).
    const { user, subscription } = await admit(
      admission,
      input.userId,
      findBillingAccount(deps.db, input.userId, config.proPriceId),
    );
    if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
    if (user.tier === "pro") {
      throw new ConflictError("You already have an active Pro subscription.", "already_subscribed");
    }
    // An unpaid, incomplete or paused subscription still exists: a second one would bill twice.
    if (subscription && !isTerminalStatus(subscription.status)) {
      throw new ConflictError(
        subscription.priceId !== config.proPriceId
          ? `You already pay for another plan (${subscription.priceId ?? "unknown price"}, ${subscription.status}); switch plans in the billing portal.`
          : `Your subscription is ${subscription.status}; settle it in the billing portal.`,
        "already_subscribed",
      );
    }

    const customerId = user.stripeCustomerId ?? (await newCustomer(deps, user.id, null));
    const checkout = async (customer: string, after: string | null = null) => {
      const request = { customerId: customer, ...urls };
      return deps.billing.createCheckoutSession({
        userId: user.id,
        priceId: config.proPriceId,
        ...request,
        idempotencyKey: await checkoutIdempotencyKey(user.id, request, deps.clock.now(), after),
      });
    };
    const [created, open] = await Promise.allSettled([
      checkout(customerId),
      deps.billing.listOpenCheckoutSessions(customerId),
    ]);
    if (created.status === "rejected") {
      const err = created.reason;
      // Stripe no longer knows the stored customer: replace it once (a new customer has no other
      // sessions), then check out again.
      if (!(err instanceof StaleBillingReferenceError) || err.param !== "customer") throw err;
      const session = await checkout(await newCustomer(deps, user.id, customerId));
      return { checkoutUrl: session.url, sessionId: session.id };
    }
    let session = created.value;
    // A retried click gets the same session back (idempotency key). Stripe replays the session as
    // it was created, so a replayed one may have been paid or expired since (a resubscribe within
    // the key's window): then a fresh session, under a key naming the stale one.
    for (let i = 0; i < 3 && session.replayed; i++) {
      const stillOpen =
        open.status === "fulfilled" && i === 0
          ? open.value.includes(session.id)
          : (await deps.billing.checkoutSessionStatus(session.id)) === "open";
      if (stillOpen) break;
      session = await checkout(customerId, session.id);
    }
    if (open.status === "rejected") {
      deps.log.warn("checkout_open_sessions_unread", {
        user_id: user.id,
        error: describeError(open.reason),
      });
    }
    const others = open.status === "fulfilled" ? open.value.filter((id) => id !== session.id) : [];
    await Promise.all(others.map((id) => deps.billing.expireCheckoutSession(id)));
    return { checkoutUrl: session.url, sessionId: session.id };
  });
}

/**
 * Finds or creates the user's Stripe customer (or the replacement of one Stripe no longer knows)
 * and stores it; answers the stored id, which a concurrent checkout may have set first.
 * - A customer an earlier attempt created (its answer lost, or the store failed) is found by
 *   `metadata.user_id` and reused.
 * - The create's idempotency key is per attempt, so a 500 Stripe saved under it costs one
 *   attempt, not 24 hours of replays.
 * - Two concurrent first checkouts may both create: the conditional store keeps one, and the
 *   other deletes the customer it made (nothing refers to it yet), so the user keeps one.
 */
async function newCustomer(
  deps: BillingDeps,
  userId: string,
  replacing: string | null,
): Promise<string> {
  const found = await deps.billing.findCustomerByUserId(userId);
  const customerId =
    found && found !== replacing
      ? found
      : (
          await deps.billing.createCustomer({
            userId,
            idempotencyKey: customerIdempotencyKey(userId, newId()),
          })
        ).id;
  const stored =
    (await setStripeCustomerId(deps.db, userId, customerId, replacing, deps.clock.now())) ??
    customerId;
  if (stored !== customerId && customerId !== found) {
    await deps.billing.deleteCustomer(customerId).catch((err: unknown) => {
      deps.log.warn("stripe_customer_orphaned", {
        user_id: userId,
        customer_id: customerId,
        error: describeError(err),
      });
    });
  }
  return stored;
}
