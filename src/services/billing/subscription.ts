import { applySubscriptionState, findBillingAccount } from "../../db/queries/subscriptions";
import type { Tier } from "../../db/schema";
import { ConflictError, NotFoundError } from "../../errors";
import { StaleBillingReferenceError } from "../../lib/billing";
import type { BillingDeps } from "./checkout";
import { isTerminalStatus } from "./policy";

export interface SubscriptionSummary {
  tier: Tier;
  /** Stripe status of the user's current subscription; null when they never subscribed. */
  status: string | null;
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
}

/** The user's tier (the value the chat quota reads) and their current subscription. */
export async function getSubscriptionSummary(
  deps: Pick<BillingDeps, "db">,
  userId: string,
): Promise<SubscriptionSummary> {
  const { user, subscription } = await findBillingAccount(deps.db, userId);
  if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
  return {
    tier: user.tier,
    status: subscription?.status ?? null,
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
  userId: string,
): Promise<SubscriptionSummary> {
  const { user, subscription } = await findBillingAccount(deps.db, userId);
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
        state: { ...current, version: deps.clock.now().getTime() },
      });
    }
    throw new ConflictError("You have no subscription to cancel.", "no_subscription");
  }
  const { tier } = await applySubscriptionState(deps.db, {
    userId,
    state: { ...updated, version: deps.clock.now().getTime() },
  });
  return {
    tier: tier ?? user.tier,
    status: updated.status,
    currentPeriodEnd: updated.currentPeriodEnd,
    cancelAtPeriodEnd: updated.cancelAtPeriodEnd,
  };
}

/** A Stripe billing portal session for the user's customer (payment method, invoices). */
export async function openBillingPortal(
  deps: BillingDeps,
  input: { userId: string; returnUrl: string },
): Promise<{ url: string }> {
  const { user } = await findBillingAccount(deps.db, input.userId);
  if (!user) throw new NotFoundError("The user no longer exists.", "user_not_found");
  if (!user.stripeCustomerId) {
    throw new ConflictError("You have no billing account yet; subscribe first.", "no_subscription");
  }
  try {
    return await deps.billing.createPortalSession({
      customerId: user.stripeCustomerId,
      returnUrl: input.returnUrl,
    });
  } catch (err) {
    if (err instanceof StaleBillingReferenceError) {
      throw new ConflictError(
        "Your billing account no longer exists at Stripe; subscribe again.",
        "no_subscription",
      );
    }
    throw err;
  }
}

function pick(s: { status: string; currentPeriodEnd: Date | null; cancelAtPeriodEnd: boolean }) {
  return {
    status: s.status,
    currentPeriodEnd: s.currentPeriodEnd,
    cancelAtPeriodEnd: s.cancelAtPeriodEnd,
  };
}
