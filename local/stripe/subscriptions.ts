import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { invalidRequest, noSuchObject } from "./errors.ts";
import {
  asParams,
  mergeMetadata,
  optArray,
  optBool,
  optInt,
  optObject,
  optString,
  type Params,
  reqString,
} from "./form.ts";
import { addMonth, newId, nowSeconds } from "./ids.ts";
import { newInvoice } from "./invoices.ts";
import { listOf, PAGINATION } from "./list.ts";
import type { Plan, Price, StripeEvent, Subscription, SubscriptionItem } from "./objects.ts";
import {
  AUTOMATIC,
  previousAttributes,
  type RequestRef,
  type StripeStore,
  snapshot,
} from "./store.ts";

/**
 * What Stripe does on its own when time passes: a renewal paid or failed (a failed one on a
 * past_due subscription is the next dunning retry), the period ending (a subscription set to
 * cancel, or a past_due one whose retries ran out with "cancel the subscription"), or
 * `mark_unpaid`: retries ran out with the setting "mark the subscription as unpaid".
 */
export type AdvanceOutcome = "renew_paid" | "renew_failed" | "end_period" | "mark_unpaid";

/** A simulation request that does not fit the subscription's state (control API answers 409). */
export class SimulationConflict extends Error {}

// Parameter names from stripe@23's *Params types (API 2026-10-28), as for every endpoint.
const SUBSCRIPTION_UPDATE = [
  "add_invoice_items",
  "application_fee_percent",
  "automatic_tax",
  "billing_cycle_anchor",
  "billing_schedules",
  "billing_thresholds",
  "cancel_at",
  "cancel_at_period_end",
  "cancellation_details",
  "collection_method",
  "days_until_due",
  "default_payment_method",
  "default_source",
  "default_tax_rates",
  "description",
  "discounts",
  "expand",
  "invoice_settings",
  "items",
  "metadata",
  "off_session",
  "on_behalf_of",
  "pause_collection",
  "payment_behavior",
  "payment_settings",
  "pending_invoice_item_interval",
  "proration_behavior",
  "proration_date",
  "transfer_data",
  "trial_end",
  "trial_from_plan",
  "trial_settings",
];

export function newSubscriptionItem(
  subscriptionId: string,
  price: Price,
  quantity: number,
  start: number,
): SubscriptionItem {
  const productId = typeof price.product === "string" ? price.product : price.product.id;
  const plan: Plan = {
    id: price.id,
    object: "plan",
    active: price.active,
    amount: price.unit_amount,
    amount_decimal: price.unit_amount_decimal,
    billing_scheme: "per_unit",
    created: price.created,
    currency: price.currency,
    interval: price.recurring.interval,
    interval_count: price.recurring.interval_count,
    livemode: false,
    metadata: { ...price.metadata },
    meter: null,
    nickname: price.nickname,
    product: productId,
    tiers_mode: null,
    transform_usage: null,
    trial_period_days: null,
    usage_type: "licensed",
  };
  return {
    id: newId("si"),
    object: "subscription_item",
    billing_thresholds: null,
    created: start,
    current_period_end: addMonth(start),
    current_period_start: start,
    current_trial: null,
    discounts: [],
    metadata: {},
    plan,
    price: structuredClone(price),
    quantity,
    subscription: subscriptionId,
    tax_rates: [],
  };
}

export function currentPeriodEnd(subscription: Subscription): number {
  return subscription.items.data[0]?.current_period_end ?? subscription.billing_cycle_anchor;
}

export function updateSubscription(
  store: StripeStore,
  id: string,
  params: Params,
  request: RequestRef,
): Subscription {
  const subscription = store.get("subscription", id);
  const before = snapshot(subscription);
  if (subscription.status === "canceled") {
    const allowed = new Set(["metadata", "cancellation_details", "expand"]);
    if (Object.keys(params).some((k) => !allowed.has(k))) {
      throw invalidRequest(
        "A canceled subscription can only update its cancellation_details and metadata.",
      );
    }
  }
  const itemChanges = optArray(params, "items");
  if (itemChanges !== undefined) {
    // A plan switch (as the portal does it): `items[n][id]` names an item, `[price]` its new
    // price; the period stays (no proration invoice in the stand-in).
    itemChanges.forEach((raw, i) => {
      const label = `items[${i}]`;
      const change = asParams(raw, label);
      const itemId = reqString(change, "id", `${label}[id]`);
      const index = subscription.items.data.findIndex((it) => it.id === itemId);
      const current = subscription.items.data[index];
      if (!current) throw noSuchObject("subscription_item", itemId, `${label}[id]`, 400);
      const priceId = optString(change, "price", `${label}[price]`);
      if (priceId === undefined) return;
      const price = store.get("price", priceId, `${label}[price]`, 400);
      const replaced = newSubscriptionItem(
        subscription.id,
        price,
        current.quantity,
        current.current_period_start,
      );
      subscription.items.data[index] = {
        ...replaced,
        id: current.id,
        created: current.created,
        current_period_end: current.current_period_end,
      };
    });
  }
  const now = nowSeconds();
  const atPeriodEnd = optBool(params, "cancel_at_period_end");
  const cancelAtRaw = params.cancel_at;
  if (atPeriodEnd !== undefined && cancelAtRaw !== undefined && cancelAtRaw !== "") {
    throw invalidRequest(
      "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
      { code: "parameters_exclusive", param: "cancel_at" },
    );
  }
  if (atPeriodEnd === true) {
    subscription.cancel_at_period_end = true;
    subscription.cancel_at = currentPeriodEnd(subscription);
    subscription.canceled_at = now;
    subscription.cancellation_details.reason = "cancellation_requested";
  } else if (atPeriodEnd === false || cancelAtRaw === "") {
    subscription.cancel_at_period_end = false;
    subscription.cancel_at = null;
    subscription.canceled_at = null;
    subscription.cancellation_details.reason = null;
  } else if (cancelAtRaw !== undefined) {
    const cancelAt = optInt(params, "cancel_at");
    if (cancelAt !== undefined) {
      subscription.cancel_at = cancelAt;
      subscription.cancel_at_period_end = cancelAt === currentPeriodEnd(subscription);
      subscription.canceled_at = now;
      subscription.cancellation_details.reason = "cancellation_requested";
    }
  }
  const details = optObject(params, "cancellation_details");
  if (details) {
    const comment = optString(details, "comment", "cancellation_details[comment]");
    const feedback = optString(details, "feedback", "cancellation_details[feedback]");
    if (comment !== undefined) subscription.cancellation_details.comment = comment || null;
    if (feedback !== undefined) subscription.cancellation_details.feedback = feedback || null;
  }
  const description = optString(params, "description");
  if (description !== undefined) subscription.description = description || null;
  const metadata = mergeMetadata(params, subscription.metadata);
  if (metadata) subscription.metadata = metadata;

  const previous = previousAttributes(before, snapshot(subscription));
  if (Object.keys(previous).length > 0) {
    store.publish(
      [store.emit("customer.subscription.updated", subscription, request, previous)],
      subscription.customer,
    );
  }
  return subscription;
}

export function cancelSubscription(
  store: StripeStore,
  id: string,
  params: Params,
  request: RequestRef,
): Subscription {
  const subscription = store.get("subscription", id);
  // Stripe treats a canceled subscription as gone for this call.
  if (subscription.status === "canceled") throw noSuchObject("subscription", id);
  const details = optObject(params, "cancellation_details");
  const now = nowSeconds();
  subscription.status = "canceled";
  subscription.canceled_at = now;
  subscription.ended_at = now;
  subscription.cancellation_details = {
    comment: details ? (optString(details, "comment") ?? null) : null,
    feedback: details ? (optString(details, "feedback") ?? null) : null,
    reason: "cancellation_requested",
  };
  store.publish(
    [store.emit("customer.subscription.deleted", subscription, request)],
    subscription.customer,
  );
  return subscription;
}

/** Simulates what Stripe does on its own at the end of a billing period. */
export function advance(
  store: StripeStore,
  id: string,
  outcome: AdvanceOutcome,
): { subscription: Subscription; events: StripeEvent[] } {
  const subscription = store.get("subscription", id);
  const customer = store.get("customer", subscription.customer);
  if (subscription.status === "canceled") {
    throw new SimulationConflict(`subscription ${id} is already canceled`);
  }
  const before = snapshot(subscription);
  const events: StripeEvent[] = [];
  const updated = () => {
    const previous = previousAttributes(before, snapshot(subscription));
    return store.emit("customer.subscription.updated", subscription, AUTOMATIC, previous);
  };
  const latest = subscription.latest_invoice
    ? store.find("invoice", subscription.latest_invoice)
    : undefined;

  if (outcome === "mark_unpaid") {
    if (subscription.status !== "past_due" || latest?.status !== "open") {
      throw new SimulationConflict(`subscription ${id} is not past_due with an open invoice`);
    }
    // The last retry fails; the invoice stays open, Stripe stops retrying it.
    latest.attempt_count += 1;
    latest.next_payment_attempt = null;
    subscription.status = "unpaid";
    events.push(store.emit("invoice.payment_failed", latest, AUTOMATIC), updated());
  } else if (outcome === "end_period") {
    if (!subscription.cancel_at_period_end && subscription.cancel_at === null) {
      if (subscription.status !== "past_due") {
        throw new SimulationConflict(
          `subscription ${id} is not set to cancel at period end (and is not past_due)`,
        );
      }
      subscription.cancellation_details.reason = "payment_failed";
    }
    const now = nowSeconds();
    subscription.status = "canceled";
    subscription.ended_at = now;
    subscription.canceled_at ??= now;
    if (latest && latest.status === "open") latest.next_payment_attempt = null;
    events.push(store.emit("customer.subscription.deleted", subscription, AUTOMATIC));
  } else if (subscription.status === "past_due" && latest?.status === "open") {
    // Dunning: a retry of the open renewal invoice, not a new period.
    latest.attempt_count += 1;
    if (outcome === "renew_paid") {
      const now = nowSeconds();
      latest.status = "paid";
      latest.amount_paid = latest.amount_due;
      latest.amount_remaining = 0;
      latest.next_payment_attempt = null;
      latest.auto_advance = false;
      latest.status_transitions.paid_at = now;
      subscription.status = "active";
      events.push(
        store.emit("invoice.paid", latest, AUTOMATIC),
        store.emit("invoice.payment_succeeded", latest, AUTOMATIC),
        updated(),
      );
    } else {
      latest.next_payment_attempt = nowSeconds() + 3 * 24 * 3600;
      events.push(store.emit("invoice.payment_failed", latest, AUTOMATIC));
    }
  } else {
    if (subscription.cancel_at_period_end) {
      throw new SimulationConflict(
        `subscription ${id} cancels at period end; advance it with end_period`,
      );
    }
    const previousStart = subscription.items.data[0]?.current_period_start ?? 0;
    const previousEnd = currentPeriodEnd(subscription);
    const anchorDay = new Date(subscription.billing_cycle_anchor * 1000).getUTCDate();
    for (const item of subscription.items.data) {
      item.current_period_start = previousEnd;
      item.current_period_end = addMonth(previousEnd, anchorDay);
    }
    const paid = outcome === "renew_paid";
    // A renewal invoice's own period is the period that just ended.
    const invoice = newInvoice(
      store,
      subscription,
      customer,
      "subscription_cycle",
      previousStart,
      previousEnd,
      paid,
    );
    subscription.latest_invoice = invoice.id;
    if (paid) {
      subscription.status = "active";
      events.push(
        updated(),
        store.emit("invoice.paid", invoice, AUTOMATIC),
        store.emit("invoice.payment_succeeded", invoice, AUTOMATIC),
      );
    } else {
      subscription.status = "past_due";
      events.push(store.emit("invoice.payment_failed", invoice, AUTOMATIC), updated());
    }
  }
  store.publish(events, subscription.customer);
  return { subscription, events };
}

/** `/v1/subscriptions`: list, retrieve, update (cancel at period end, plan switch), cancel. */
export function subscriptionRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/subscriptions");
  r.get(
    "",
    [
      "automatic_tax",
      "collection_method",
      "created",
      "current_period_end",
      "current_period_start",
      "customer",
      "customer_account",
      "expand",
      "plan",
      "price",
      "status",
      "test_clock",
      ...PAGINATION,
    ],
    ({ params }) => {
      const customer = optString(params, "customer");
      const price = optString(params, "price") ?? optString(params, "plan");
      const status = optString(params, "status");
      const items = store.all("subscription").filter((s) => {
        if (customer !== undefined && s.customer !== customer) return false;
        if (price !== undefined && !s.items.data.some((i) => i.price.id === price)) return false;
        // Without a status filter Stripe lists only subscriptions that are not canceled.
        if (status === undefined) return s.status !== "canceled";
        if (status === "all") return true;
        if (status === "ended") return s.status === "canceled";
        return s.status === status;
      });
      return listOf(items, params, "/v1/subscriptions", "subscription");
    },
  );
  r.get("/:id", ["expand"], ({ path }) => store.get("subscription", path.id ?? ""));
  r.post("/:id", SUBSCRIPTION_UPDATE, ({ path, params, request }) =>
    updateSubscription(store, path.id ?? "", params, request),
  );
  r.delete(
    "/:id",
    ["cancellation_details", "expand", "invoice_now", "prorate"],
    ({ path, params, request }) => cancelSubscription(store, path.id ?? "", params, request),
  );
  return r.app;
}
