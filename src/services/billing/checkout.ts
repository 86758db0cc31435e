import type { Database } from "../../db/client";
import { findBillingAccount, setStripeCustomerId } from "../../db/queries/subscriptions";
import { ConflictError, NotFoundError } from "../../errors";
import type { Billing } from "../../lib/billing";
import type { Clock } from "../../lib/clock";
import {
  allowedRedirectOrigins,
  checkoutIdempotencyKey,
  checkRedirectUrl,
  customerIdempotencyKey,
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
 * derived from the user id) and stored with a conditional update, then reused.
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

  const { user } = await findBillingAccount(deps.db, input.userId);
  if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
  if (user.tier === "pro") {
    throw new ConflictError("You already have an active Pro subscription.", "already_subscribed");
  }

  let customerId = user.stripeCustomerId;
  if (!customerId) {
    const customer = await deps.billing.createCustomer({
      userId: user.id,
      idempotencyKey: customerIdempotencyKey(user.id),
    });
    customerId = (await setStripeCustomerId(deps.db, user.id, customer.id)) ?? customer.id;
  }

  const session = await deps.billing.createCheckoutSession({
    userId: user.id,
    customerId,
    priceId: config.proPriceId,
    ...urls,
    idempotencyKey: await checkoutIdempotencyKey(user.id, urls, deps.clock.now()),
  });
  return { checkoutUrl: session.url, sessionId: session.id };
}
