import type { Database } from "../../db/client";
import { findBillingAccount, setStripeCustomerId } from "../../db/queries/subscriptions";
import { ConflictError, describeError, NotFoundError } from "../../errors";
import { type Billing, StaleBillingReferenceError } from "../../lib/billing";
import type { Clock } from "../../lib/clock";
import {
  allowedRedirectOrigins,
  checkoutIdempotencyKey,
  checkRedirectUrl,
  customerIdempotencyKey,
  isTerminalStatus,
} from "./policy";

export interface BillingDeps {
  db: Database;
  billing: Billing;
  clock: Clock;
}

export interface CheckoutConfig {
  appUrl: string;
  allowedRedirectOrigins: string;
  proPriceId: string;
}

/**
 * Starts a Pro Checkout Session. One Stripe customer per user: created once (idempotency key
 * derived from the user id) and stored with a conditional update, then reused. Opening a session
 * expires the user's other open ones (read alongside the create), so two tabs cannot both be
 * paid into two subscriptions.
 */
export async function startProCheckout(
  deps: BillingDeps,
  config: CheckoutConfig,
  input: { userId: string; successUrl?: string | undefined; cancelUrl?: string | undefined },
): Promise<{ checkoutUrl: string; sessionId: string }> {
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

  const { user, subscription } = await findBillingAccount(deps.db, input.userId);
  if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
  if (user.tier === "pro") {
    throw new ConflictError("You already have an active Pro subscription.", "already_subscribed");
  }
  // An unpaid, incomplete or paused subscription still exists: a second one would bill twice.
  if (subscription && !isTerminalStatus(subscription.status)) {
    throw new ConflictError(
      `Your subscription is ${subscription.status}; settle it in the billing portal.`,
      "already_subscribed",
    );
  }

  const customerId = user.stripeCustomerId ?? (await newCustomer(deps, user.id, null));
  const checkout = async (customer: string) => {
    const request = { customerId: customer, ...urls };
    return deps.billing.createCheckoutSession({
      userId: user.id,
      priceId: config.proPriceId,
      ...request,
      idempotencyKey: await checkoutIdempotencyKey(user.id, request, deps.clock.now()),
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
  const session = created.value;
  // A retried click gets the same session back (idempotency key), which stays open.
  if (open.status === "rejected") {
    console.warn(
      JSON.stringify({
        level: "warn",
        msg: "checkout_open_sessions_unread",
        user_id: user.id,
        error: describeError(open.reason),
      }),
    );
  }
  const others = open.status === "fulfilled" ? open.value.filter((id) => id !== session.id) : [];
  await Promise.all(others.map((id) => deps.billing.expireCheckoutSession(id)));
  return { checkoutUrl: session.url, sessionId: session.id };
}

/**
 * Creates the user's Stripe customer (or the replacement of one Stripe no longer knows) and
 * stores it; answers the stored id, which a concurrent checkout may have set first.
 */
async function newCustomer(
  deps: BillingDeps,
  userId: string,
  replacing: string | null,
): Promise<string> {
  const customer = await deps.billing.createCustomer({
    userId,
    idempotencyKey: customerIdempotencyKey(userId, replacing),
  });
  return (await setStripeCustomerId(deps.db, userId, customer.id, replacing)) ?? customer.id;
}
