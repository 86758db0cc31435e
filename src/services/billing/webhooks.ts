import { applySubscriptionState, findBillingUsers } from "../../db/queries/subscriptions";
import { isWebhookEventProcessed } from "../../db/queries/webhook-events";
import type { Tier } from "../../db/schema";
import type { BillingEvent, BillingSubscription } from "../../lib/billing";
import type { BillingDeps } from "./checkout";
import { storedPriceId } from "./policy";

/** Event types that can change a subscription; every other type is acknowledged and ignored. */
export const HANDLED_EVENT_TYPES: ReadonlySet<string> = new Set([
  "checkout.session.completed",
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "invoice.paid",
  "invoice.payment_failed",
]);

export type WebhookOutcome =
  | { outcome: "ignored" }
  | { outcome: "duplicate" }
  /** A handled type whose object carries no subscription (e.g. a one-off payment Checkout). */
  | { outcome: "no_subscription" }
  /** Stripe does not know the subscription: a permanent error, logged, not retried. */
  | { outcome: "unknown_subscription"; subscriptionId: string }
  /** No user matches the metadata or the customer: a permanent error, logged, not retried. */
  | { outcome: "unmapped"; subscriptionId: string; customerId: string }
  | {
      /** `applied` wrote the state; `superseded` found the event recorded or newer state stored. */
      outcome: "applied" | "superseded";
      subscriptionId: string;
      userId: string;
      status: string;
      tier: Tier | null;
    };

/**
 * Applies a verified Stripe event. The event only says which subscription changed: its current
 * state is read back from Stripe, so delivery order does not matter, and it is written with the
 * event id in one transaction, so a redelivery (even a parallel one) applies nothing twice.
 * Database and Stripe failures propagate (503) so that Stripe retries the delivery.
 */
export async function handleStripeEvent(
  deps: BillingDeps,
  event: BillingEvent,
): Promise<WebhookOutcome> {
  if (!HANDLED_EVENT_TYPES.has(event.type)) return { outcome: "ignored" };
  const subscriptionId = event.subscriptionId;
  if (!subscriptionId) return { outcome: "no_subscription" };

  const hintIds = event.userId ? [event.userId] : [];
  const [processed, read, found] = await Promise.allSettled([
    isWebhookEventProcessed(deps.db, event.id),
    deps.billing
      .retrieveSubscription(subscriptionId)
      .then((subscription) => ({ subscription, readAt: deps.clock.now().getTime() })),
    findBillingUsers(deps.db, { userIds: hintIds, customerId: event.customerId }),
  ]);
  // A redelivery of an applied event is acknowledged even while Stripe's API is failing.
  if (processed.status === "fulfilled" && processed.value) return { outcome: "duplicate" };
  if (processed.status === "rejected") throw processed.reason;
  if (read.status === "rejected") throw read.reason;
  if (found.status === "rejected") throw found.reason;
  const { subscription, readAt } = read.value;
  const candidates = found.value;
  if (!subscription) return { outcome: "unknown_subscription", subscriptionId };

  let userId = pickUser(candidates, subscription, event);
  if (!userId && subscription.userId && !hintIds.includes(subscription.userId)) {
    const more = await findBillingUsers(deps.db, {
      userIds: [subscription.userId],
      customerId: subscription.customerId,
    });
    userId = pickUser(more, subscription, event);
  }
  if (!userId) {
    return { outcome: "unmapped", subscriptionId, customerId: subscription.customerId };
  }

  const result = await applySubscriptionState(deps.db, {
    userId,
    state: {
      ...subscription,
      priceId: storedPriceId(subscription, deps.config.proPriceId),
      version: readAt,
    },
    proPriceId: deps.config.proPriceId,
    event: { id: event.id, type: event.type },
  });
  return {
    outcome: result.applied ? "applied" : "superseded",
    subscriptionId,
    userId,
    status: subscription.status,
    tier: result.tier,
  };
}

/**
 * The customer's owner wins (the customer id is ours to assign); otherwise the user named by
 * the subscription's metadata, then by the event's `client_reference_id`.
 */
export function pickUser(
  candidates: { id: string; stripeCustomerId: string | null }[],
  subscription: BillingSubscription,
  event: BillingEvent,
): string | null {
  const byCustomer = candidates.find((u) => u.stripeCustomerId === subscription.customerId);
  if (byCustomer) return byCustomer.id;
  for (const id of [subscription.userId, event.userId]) {
    if (id && candidates.some((u) => u.id === id)) return id;
  }
  return null;
}
