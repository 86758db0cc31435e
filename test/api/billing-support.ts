// Helpers shared by the billing API tests: the Stripe SDK pointed at the local Stripe, a direct
// database client (to set up "the Worker has not seen these events yet"), and signed deliveries.
import { eq, inArray } from "drizzle-orm";
import Stripe from "stripe";
import { expect } from "vitest";
import { createDatabase } from "../../src/db/client.ts";
import { processedWebhookEvents, subscriptions, users } from "../../src/db/schema/index.ts";
import { type ApiResponse, call, cloudUrl, control, testEnv, waitFor } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";

const cloud = new URL(cloudUrl);
export const stripe = new Stripe(testEnv.STRIPE_SECRET_KEY as string, {
  host: cloud.hostname,
  port: cloud.port,
  protocol: "http",
  httpClient: Stripe.createFetchHttpClient(),
});

export const db = createDatabase(
  testEnv.DATABASE_URL as string,
  testEnv.NEON_FETCH_ENDPOINT as string,
);

export const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Posts a raw body to the Worker's webhook, signed for real with the test webhook secret. */
export async function deliver(
  payload: string,
  opts: { timestamp?: number; secret?: string; header?: string } = {},
): Promise<ApiResponse> {
  const header =
    opts.header ??
    (await stripe.webhooks.generateTestHeaderStringAsync({
      payload,
      secret: opts.secret ?? (testEnv.STRIPE_WEBHOOK_SECRET as string),
      timestamp: opts.timestamp ?? nowSeconds(),
    }));
  return call("POST", "/webhook/stripe", {
    rawBody: payload,
    headers: { "content-type": "application/json", "stripe-signature": header },
  });
}

/** Delivers a Stripe event object (as Stripe stored it) and expects the 200 acknowledgement. */
export async function deliverEvent(event: Stripe.Event | Record<string, unknown>) {
  const res = await deliver(JSON.stringify(event));
  expect(res.status, res.text).toBe(200);
  expect(res.body).toEqual({ received: true });
  return res;
}

/** An event envelope as Stripe sends it, for an object the test picks. */
export function envelope(type: string, object: object, id = `evt_test_${crypto.randomUUID()}`) {
  return {
    id,
    object: "event",
    api_version: "2026-10-28.endive",
    created: nowSeconds(),
    data: { object },
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
  };
}

export async function flushWebhooks(): Promise<void> {
  const res = await control("stripe/flush", { timeout_ms: 20_000 });
  expect(res.status, res.text).toBe(200);
}

export async function subscribe(session: TestSession, body?: Record<string, unknown>) {
  return call("POST", "/subscribe/pro", { token: session.token, ...(body ? { body } : {}) });
}

export async function status(session: TestSession) {
  const res = await call("GET", "/subscription/status", { token: session.token });
  expect(res.status, res.text).toBe(200);
  return res.body as {
    tier: "basic" | "pro";
    status: string | null;
    price_id: string | null;
    current_period_end: string | null;
    cancel_at_period_end: boolean;
    usage: { used_today: number; daily_limit: number; resets_at: string };
  };
}

/** Presses Pay on the local Checkout page, as the user's browser would. */
export async function pay(checkoutUrl: string): Promise<Response> {
  const res = await fetch(checkoutUrl, { method: "POST", redirect: "manual" });
  expect([200, 303]).toContain(res.status);
  return res;
}

/**
 * A paid-for-later Checkout Session opened straight on Stripe for the user's customer (as from
 * the Dashboard), outside the API: the way a user ends up with a second subscription, since the
 * API expires a user's other open sessions.
 */
export async function checkoutOutsideTheApi(customerId: string, userId: string) {
  const session = await stripe.checkout.sessions.create({
    mode: "subscription",
    customer: customerId,
    line_items: [{ price: testEnv.STRIPE_PRO_PRICE_ID as string, quantity: 1 }],
    client_reference_id: userId,
    metadata: { user_id: userId },
    subscription_data: { metadata: { user_id: userId } },
    success_url: "http://localhost:3000/ok",
    cancel_url: "http://localhost:3000/no",
  });
  return { id: session.id, url: session.url as string };
}

/** Two paid subscriptions for one user: one through the API's checkout, one outside it. */
export async function twoPaidSubscriptions(session: TestSession): Promise<string[]> {
  const a = await subscribe(session);
  expect(a.status, a.text).toBe(200);
  const { customer } = await stripe.checkout.sessions.retrieve(a.body.session_id);
  const b = await checkoutOutsideTheApi(customer as string, session.user.id);
  await pay(a.body.checkout_url);
  await pay(b.url);
  await flushWebhooks();
  await waitFor(async () => (await storedSubscriptions(session.user.id)).length === 2);
  return Promise.all(
    [a.body.session_id as string, b.id].map(
      async (id) => (await stripe.checkout.sessions.retrieve(id)).subscription as string,
    ),
  );
}

export async function waitForTier(session: TestSession, tier: "basic" | "pro") {
  return waitFor(async () => {
    const s = await status(session);
    return s.tier === tier ? s : null;
  });
}

export interface PaidUser {
  session: TestSession;
  customerId: string;
  subscriptionId: string;
  checkoutSessionId: string;
}

/** A user who went through Checkout and paid; every resulting webhook has been delivered. */
export async function paidUser(): Promise<PaidUser> {
  const session = await createSession();
  const res = await subscribe(session);
  expect(res.status, res.text).toBe(200);
  await pay(res.body.checkout_url);
  const checkout = await stripe.checkout.sessions.retrieve(res.body.session_id);
  await flushWebhooks();
  await waitForTier(session, "pro");
  return {
    session,
    customerId: checkout.customer as string,
    subscriptionId: checkout.subscription as string,
    checkoutSessionId: checkout.id,
  };
}

/** The full events Stripe emitted for a customer, in emission order (re-read with the SDK). */
export async function customerEvents(customerId: string): Promise<Stripe.Event[]> {
  const res = await control(`stripe/events?customer=${encodeURIComponent(customerId)}`);
  expect(res.status).toBe(200);
  const ids = (res.body.data as { id: string }[]).map((e) => e.id);
  const events = await Promise.all(ids.map((id) => stripe.events.retrieve(id)));
  return events;
}

/**
 * Puts the user back where the Worker stood before it saw any of `eventIds`: no subscription
 * rows, Basic, the events unrecorded (and, with `forgetCustomer`, no stored customer id, so
 * only metadata can map the events). The Stripe side is untouched.
 */
export async function forgetBilling(
  userId: string,
  eventIds: string[],
  opts: { forgetCustomer?: boolean } = {},
): Promise<void> {
  await db.batch([
    db.delete(subscriptions).where(eq(subscriptions.userId, userId)),
    db
      .update(users)
      .set({ tier: "basic", ...(opts.forgetCustomer ? { stripeCustomerId: null } : {}) })
      .where(eq(users.id, userId)),
    db
      .delete(processedWebhookEvents)
      .where(inArray(processedWebhookEvents.id, eventIds.length > 0 ? eventIds : ["-"])),
  ]);
}

export async function storedSubscriptions(userId: string) {
  return db.select().from(subscriptions).where(eq(subscriptions.userId, userId));
}

export async function processedCount(eventId: string): Promise<number> {
  const rows = await db
    .select()
    .from(processedWebhookEvents)
    .where(eq(processedWebhookEvents.id, eventId));
  return rows.length;
}
