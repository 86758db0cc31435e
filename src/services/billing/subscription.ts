import { applySubscriptionState, findBillingAccount } from "../../db/queries/subscriptions";
import type { Tier } from "../../db/schema";
import { BillingPortalUnavailableError, ConflictError, NotFoundError } from "../../errors";
import {
  type BillingSubscription,
  PortalNotConfiguredError,
  StaleBillingReferenceError,
} from "../../lib/billing";
import { admit, type BillingAdmission, givingBackOnVendorFailure } from "./admission";
import type { BillingDeps } from "./checkout";
import {
  allowedRedirectOrigins,
  checkRedirectUrl,
  isTerminalStatus,
  storedPriceId,
} from "./policy";

export interface SubscriptionSummary {
  tier: Tier;
  /** Stripe status of the user's current subscription; null when they never subscribed. */
  status: string | null;
  /** The price the current subscription bills; only `STRIPE_PRO_PRICE_ID` grants Pro. */
  priceId: string | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
}

/** The user's tier (the value the chat quota reads) and their current subscription. */
export async function getSubscriptionSummary(
  deps: Pick<BillingDeps, "db" | "config">,
  userId: string,
): Promise<SubscriptionSummary> {
  const { user, subscription } = await findBillingAccount(deps.db, userId, deps.config.proPriceId);
  if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
  return {
    tier: user.tier,
    status: subscription?.status ?? null,
    priceId: subscription?.priceId ?? null,
    currentPeriodEnd: subscription?.currentPeriodEnd ?? null,
    cancelAtPeriodEnd: subscription?.cancelAtPeriodEnd ?? false,
  };
}

/**
 * Schedules the current subscription to end at the period end. Pro stays until then; the
 * `customer.subscription.deleted` webhook brings the user back to Basic.
 */
export async function cancelSubscription(
  deps: BillingDeps,
  input: { userId: string; sessionLive: Promise<void> },
): Promise<SubscriptionSummary> {
  const { userId } = input;
  const admission: BillingAdmission = {
    sessionLive: input.sessionLive,
    limiter: deps.billingLimiters.cancel,
  };
  // A vendor failure after round 1 gives the allowance back (the soak's finding 5).
  return givingBackOnVendorFailure(admission, userId, async () => {
    // Round 1: the account, the session check and the allowance.
    const { user, subscription } = await admit(
      admission,
      userId,
      findBillingAccount(deps.db, userId, deps.config.proPriceId),
    );
    if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
    if (!subscription || isTerminalStatus(subscription.status)) {
      throw new ConflictError("You have no subscription to cancel.", "no_subscription");
    }
    if (subscription.cancelAtPeriodEnd) {
      return { tier: user.tier, ...pick(subscription) };
    }
    const updated = await deps.billing.cancelAtPeriodEnd(subscription.id);
    if (!updated) {
      // Stripe already ended it (Dashboard, portal) and its webhook has not reached us yet: store
      // what Stripe says now instead of waiting for the event, and say there is nothing to cancel.
      const current = await deps.billing.retrieveSubscription(subscription.id);
      if (current) {
        await applySubscriptionState(deps.db, {
          userId,
          state: stateOf(current, deps),
          proPriceId: deps.config.proPriceId,
        });
      }
      throw new ConflictError("You have no subscription to cancel.", "no_subscription");
    }
    const state = stateOf(updated, deps);
    const { tier } = await applySubscriptionState(deps.db, {
      userId,
      state,
      proPriceId: deps.config.proPriceId,
    });
    return {
      tier: tier ?? user.tier,
      status: updated.status,
      priceId: state.priceId,
      currentPeriodEnd: updated.currentPeriodEnd,
      cancelAtPeriodEnd: updated.cancelAtPeriodEnd,
    };
  });
}

/**
 * A Stripe billing portal session for the user's customer (payment method, invoices, plan). It
 * needs a billing account (a Stripe customer, made by the first checkout), not a subscription,
 * and the portal settings saved in the Dashboard.
 */
export async function openBillingPortal(
  deps: BillingDeps,
  input: { userId: string; returnUrl?: string | undefined; sessionLive: Promise<void> },
): Promise<{ url: string }> {
  // Checked before any I/O: a bad return_url costs no round and no allowance.
  const returnUrl = input.returnUrl
    ? checkRedirectUrl(
        "return_url",
        input.returnUrl,
        allowedRedirectOrigins(deps.config.appUrl, deps.config.allowedRedirectOrigins),
      )
    : deps.config.appUrl;
  const admission: BillingAdmission = {
    sessionLive: input.sessionLive,
    limiter: deps.billingLimiters.portal,
  };
  // A vendor failure after round 1 gives the allowance back (the soak's finding 5).
  return givingBackOnVendorFailure(admission, input.userId, async () => {
    // Round 1: the account, the session check and the allowance.
    const { user } = await admit(
      admission,
      input.userId,
      findBillingAccount(deps.db, input.userId),
    );
    if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
    if (!user.stripeCustomerId) {
      throw new ConflictError(
        "You have no billing account yet; subscribe first.",
        "no_subscription",
      );
    }
    try {
      return await deps.billing.createPortalSession({
        customerId: user.stripeCustomerId,
        returnUrl,
      });
    } catch (err) {
      if (err instanceof PortalNotConfiguredError) {
        deps.log.error("billing_portal_not_configured", {
          user_id: input.userId,
          error: err.message,
        });
        throw new BillingPortalUnavailableError();
      }
      if (err instanceof StaleBillingReferenceError) {
        throw new ConflictError(
          "Your billing account no longer exists at Stripe; subscribe again.",
          "no_subscription",
        );
      }
      throw err;
    }
  });
}

/** A subscription read from Stripe, as stored: its price resolved against the Pro price. */
export function stateOf(s: BillingSubscription, deps: Pick<BillingDeps, "clock" | "config">) {
  return {
    ...s,
    priceId: storedPriceId(s, deps.config.proPriceId),
    version: deps.clock.now().getTime(),
  };
}

function pick(s: {
  status: string;
  priceId: string | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
}) {
  return {
    status: s.status,
    priceId: s.priceId,
    currentPeriodEnd: s.currentPeriodEnd,
    cancelAtPeriodEnd: s.cancelAtPeriodEnd,
  };
}
