import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import type * as Local from "../../local/stripe/objects.ts";
import { createStripeService } from "../../local/stripe/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";

/** Keys a stripe-node type declares required (present, possibly null). */
type RequiredKeys<T> = {
  [K in keyof T]-?: Record<string, never> extends Pick<T, K> ? never : K;
}[keyof T];
/** `true` when the stand-in's object has every required field of the SDK's type, else the names. */
type Covers<Sdk, Stand> = [Exclude<RequiredKeys<Sdk>, keyof Stand>] extends [never]
  ? true
  : Exclude<RequiredKeys<Sdk>, keyof Stand>;
// Compile-time (npm run typecheck): a field stripe@23 declares and the stand-in omits names itself
// here, e.g. `"adaptive_pricing"` is not assignable to `true`.
const STAND_IN_SHAPES_COVER_SDK: [
  Covers<Stripe.Checkout.Session, Local.CheckoutSession>,
  Covers<Stripe.LineItem, Local.CheckoutLineItem>,
  Covers<Stripe.Customer, Local.Customer>,
  Covers<Stripe.Subscription, Local.Subscription>,
  Covers<Stripe.SubscriptionItem, Local.SubscriptionItem>,
  Covers<Stripe.Invoice, Local.Invoice>,
  Covers<Stripe.InvoiceLineItem, Local.InvoiceLineItem>,
  Covers<Stripe.Price, Local.Price>,
  Covers<Stripe.Plan, Local.Plan>,
  Covers<Stripe.Product, Local.Product>,
  Covers<Stripe.BillingPortal.Session, Local.PortalSession>,
  Covers<Stripe.Event, Local.StripeEvent>,
] = [true, true, true, true, true, true, true, true, true, true, true, true];

/** One webhook request the test's receiver saw. */
interface Delivery {
  raw: string;
  signature: string;
  eventId: string;
  type: string;
  customer: string | null;
  receivedAt: number;
  /** Deliveries of the same event in flight when this one arrived (duplicates overlap). */
  concurrentSameEvent: number;
}

interface AttemptView {
  copy: number;
  attempt: number;
  status: number | null;
  error: string | null;
}

interface EventView {
  id: string;
  type: string;
  customer: string | null;
  delivery: "not_sent" | "pending" | "succeeded" | "failed";
  attempts: AttemptView[];
}

/** How the receiver answers a customer's events: nth delivery of the same event (0-based) → status. */
type Answer = (nth: number) => number;

let cloud: LocalCloud;
let stripe: Stripe;
let receiverServer: ReturnType<typeof serve>;
let webhookUrl: string;
const deliveries: Delivery[] = [];
const answers = new Map<string, Answer>();
const inFlight = new Map<string, number>();
/** Per customer: how long the receiver holds its answer, so overlapping duplicates are observable. */
const holdMs = new Map<string, number>();
const cryptoProvider = Stripe.createSubtleCryptoProvider();

function customerOf(object: Record<string, unknown>): string | null {
  if (object.object === "customer") return String(object.id);
  return typeof object.customer === "string" ? object.customer : null;
}

function sdk(key: string): Stripe {
  return new Stripe(key, {
    host: "127.0.0.1",
    port: cloud.port,
    protocol: "http",
    httpClient: Stripe.createFetchHttpClient(),
    maxNetworkRetries: 0,
  });
}

async function control(
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${cloud.url}/_control/stripe${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function flush(): Promise<void> {
  const res = await control("/flush", { timeout_ms: 15_000 });
  expect(res.body).toEqual({ flushed: true });
}

function deliveriesFor(customer: string): Delivery[] {
  return deliveries.filter((d) => d.customer === customer);
}

async function eventsFor(customer: string): Promise<EventView[]> {
  const res = await control(`/events?customer=${encodeURIComponent(customer)}`);
  return res.body.data as EventView[];
}

/** Verifies a delivery exactly as the Worker does and returns the parsed event. */
function verify(
  d: Delivery,
  secret: string = TEST_KEYS.stripeWebhookSecret,
): Promise<Stripe.Event> {
  return stripe.webhooks.constructEventAsync(d.raw, d.signature, secret, undefined, cryptoProvider);
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error("expected a rejection");
    },
    (e: unknown) => e,
  );
}

async function newCustomer(): Promise<Stripe.Customer> {
  return stripe.customers.create({ email: `${randomUUID()}@example.test` });
}

/** Opens Checkout for a customer and pays on the hosted page like a browser would. */
async function subscribe(
  customer: string,
  extra: Partial<Stripe.Checkout.SessionCreateParams> = {},
): Promise<{ session: Stripe.Checkout.Session; location: string | null; status: number }> {
  const created = await stripe.checkout.sessions.create({
    mode: "subscription",
    customer,
    line_items: [{ price: TEST_KEYS.stripeProPriceId, quantity: 1 }],
    client_reference_id: `user-${customer}`,
    success_url: "http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}",
    cancel_url: "http://localhost:3000/billing/cancel",
    subscription_data: { metadata: { user_id: `user-${customer}` } },
    ...extra,
  });
  const pay = await fetch(created.url ?? "", { method: "POST", redirect: "manual" });
  const session = await stripe.checkout.sessions.retrieve(created.id);
  return { session, location: pay.headers.get("location"), status: pay.status };
}

async function subscribedCustomer(): Promise<{ customer: string; subscription: string }> {
  const customer = (await newCustomer()).id;
  const { session } = await subscribe(customer);
  await flush();
  return { customer, subscription: String(session.subscription) };
}

beforeAll(async () => {
  const app = new Hono();
  app.post("*", async (c) => {
    const raw = await c.req.text();
    const event = JSON.parse(raw) as {
      id: string;
      type: string;
      data: { object: Record<string, unknown> };
    };
    const customer = customerOf(event.data.object);
    const current = inFlight.get(event.id) ?? 0;
    inFlight.set(event.id, current + 1);
    const nth = deliveries.filter((d) => d.eventId === event.id).length;
    deliveries.push({
      raw,
      signature: c.req.header("stripe-signature") ?? "",
      eventId: event.id,
      type: event.type,
      customer,
      receivedAt: performance.now(),
      concurrentSameEvent: current,
    });
    const hold = customer ? (holdMs.get(customer) ?? 0) : 0;
    if (hold > 0) await new Promise((r) => setTimeout(r, hold));
    inFlight.set(event.id, (inFlight.get(event.id) ?? 1) - 1);
    const answer = customer ? answers.get(customer) : undefined;
    const status = answer ? answer(nth) : 200;
    return c.json({ received: true }, status as 200);
  });
  receiverServer = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => receiverServer.once("listening", () => resolve()));
  webhookUrl = `http://127.0.0.1:${(receiverServer.address() as AddressInfo).port}/webhook/stripe`;

  cloud = await startLocalCloud(testCloudConfig({ stripeWebhookUrl: webhookUrl }), [
    createStripeService,
  ]);
  stripe = sdk(TEST_KEYS.stripeSecretKey);
});

afterAll(async () => {
  await cloud?.close();
  await new Promise<void>((resolve) => receiverServer?.close(() => resolve()));
});

describe("local Stripe API", () => {
  it("replays the same customer for a repeated Idempotency-Key and rejects the key with other params", async () => {
    const email = `${randomUUID()}@example.test`;
    const idempotencyKey = randomUUID();
    const first = await stripe.customers.create(
      { email, metadata: { user_id: "u1" } },
      { idempotencyKey },
    );
    const second = await stripe.customers.create(
      { email, metadata: { user_id: "u1" } },
      { idempotencyKey },
    );
    expect(first.id).toMatch(/^cus_[A-Za-z0-9]{14}$/);
    expect(second.id).toBe(first.id);
    expect(first).toMatchObject({
      object: "customer",
      email,
      livemode: false,
      metadata: { user_id: "u1" },
    });
    expect(first.created).toBeGreaterThan(1_700_000_000);
    expect(first.created).toBeLessThanOrEqual(Math.floor(Date.now() / 1000));

    const listed = await stripe.customers.list({ email });
    expect(listed.data.map((c) => c.id)).toEqual([first.id]);
    // The replay did not run the request again: one customer.created, carrying the key.
    await flush();
    const created = deliveriesFor(first.id).filter((d) => d.type === "customer.created");
    expect(created).toHaveLength(1);
    const event = await verify(created[0] as Delivery);
    expect(event.request).toEqual({
      id: expect.stringMatching(/^req_/),
      idempotency_key: idempotencyKey,
    });

    const err = await rejection(
      stripe.customers.create({ email: `other-${email}` }, { idempotencyKey }),
    );
    expect(err).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    expect((err as Stripe.errors.StripeError).statusCode).toBe(400);
  });

  it("rejects a wrong API key with StripeAuthenticationError", async () => {
    const err = await rejection(sdk("sk_test_wrong_key_0000").customers.list());
    expect(err).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect((err as Stripe.errors.StripeError).statusCode).toBe(401);
    expect((err as Stripe.errors.StripeError).message).toContain("Invalid API Key provided");

    const res = await fetch(`${cloud.url}/v1/customers`);
    expect(res.status).toBe(401);
    const body = (await res.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe("invalid_request_error");
    expect(body.error.message).toContain("You did not provide an API key");
  });

  it("answers an unknown id with StripeInvalidRequestError 404 resource_missing", async () => {
    const err = await rejection(stripe.subscriptions.retrieve("sub_doesnotexist"));
    expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect(err).toMatchObject({
      statusCode: 404,
      code: "resource_missing",
      param: "id",
      message: "No such subscription: 'sub_doesnotexist'",
    });
    const missingCustomer = await rejection(stripe.customers.retrieve("cus_nope"));
    expect(missingCustomer).toMatchObject({ statusCode: 404, code: "resource_missing" });
  });

  it("answers a path or method no endpoint serves with 404 once the key is checked", async () => {
    const call = async (method: string, path: string, key?: string) => {
      const res = await fetch(`${cloud.url}${path}`, {
        method,
        headers: key ? { authorization: `Bearer ${key}` } : {},
      });
      return { status: res.status, body: (await res.json()) as { error: { message: string } } };
    };
    for (const [method, path] of [
      ["GET", "/v1/coupons"],
      ["PUT", "/v1/customers"],
      ["GET", "/v1/customers/"],
    ] as const) {
      const answer = await call(method, path, TEST_KEYS.stripeSecretKey);
      expect(answer.status).toBe(404);
      expect(answer.body.error.message).toContain(`Unrecognized request URL (${method}: ${path})`);
    }
    expect((await call("GET", "/v1/coupons")).status).toBe(401);
  });

  it("rejects unknown parameters, missing ones and a price that does not exist", async () => {
    const customer = await newCustomer();
    const unknown = await rejection(
      stripe.customers.update(customer.id, { colour: "red" } as Stripe.CustomerUpdateParams),
    );
    expect(unknown).toMatchObject({ statusCode: 400, code: "parameter_unknown", param: "colour" });

    const missing = await rejection(
      stripe.checkout.sessions.create({ mode: "subscription", customer: customer.id }),
    );
    expect(missing).toMatchObject({
      statusCode: 400,
      code: "parameter_missing",
      param: "line_items",
    });

    const badPrice = await rejection(
      stripe.checkout.sessions.create({
        mode: "subscription",
        customer: customer.id,
        line_items: [{ price: "price_nope", quantity: 1 }],
        success_url: "http://localhost:3000/ok",
      }),
    );
    expect(badPrice).toMatchObject({
      statusCode: 400,
      code: "resource_missing",
      param: "line_items[0][price]",
    });
  });

  it("updates a customer by merging metadata and unsetting keys sent empty", async () => {
    const customer = await stripe.customers.create({
      email: `${randomUUID()}@example.test`,
      metadata: { a: "1", b: "2" },
    });
    const updated = await stripe.customers.update(customer.id, {
      name: "Ada",
      metadata: { b: "", c: "3" },
    });
    expect(updated.name).toBe("Ada");
    expect(updated.metadata).toEqual({ a: "1", c: "3" });
    expect((await stripe.customers.retrieve(customer.id)) as Stripe.Customer).toMatchObject({
      name: "Ada",
      metadata: { a: "1", c: "3" },
    });
  });

  it("serves the seeded Pro price as a monthly recurring price with its product", async () => {
    const price = await stripe.prices.retrieve(TEST_KEYS.stripeProPriceId, { expand: ["product"] });
    expect(price).toMatchObject({
      id: TEST_KEYS.stripeProPriceId,
      object: "price",
      active: true,
      type: "recurring",
      currency: "usd",
      recurring: { interval: "month", interval_count: 1 },
    });
    expect(price.unit_amount).toBeGreaterThan(0);
    expect((price.product as Stripe.Product).object).toBe("product");
  });
});

describe("local Stripe Checkout", () => {
  it("shows the price and a Pay button, and paying redirects 303 to success_url with the session id", async () => {
    const customer = await newCustomer();
    const created = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer: customer.id,
      line_items: [{ price: TEST_KEYS.stripeProPriceId, quantity: 1 }],
      client_reference_id: "user-42",
      metadata: { purpose: "upgrade" },
      subscription_data: { metadata: { user_id: "user-42" } },
      success_url: "http://localhost:3000/billing/success?session_id={CHECKOUT_SESSION_ID}",
      cancel_url: "http://localhost:3000/billing/cancel",
    });
    expect(created.id).toMatch(/^cs_test_/);
    expect(created).toMatchObject({
      object: "checkout.session",
      mode: "subscription",
      status: "open",
      payment_status: "unpaid",
      customer: customer.id,
      client_reference_id: "user-42",
      metadata: { purpose: "upgrade" },
      subscription: null,
      livemode: false,
    });
    expect(created.url).toBe(`${cloud.url}/stripe/checkout/${created.id}`);

    const page = await fetch(created.url ?? "");
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<form method="post" action="\/stripe\/checkout\/cs_test_[^"]+">/);
    expect(html).toMatch(/<button[^>]*>Pay<\/button>/);
    expect(html).toContain("$10.00");

    const pay = await fetch(created.url ?? "", { method: "POST", redirect: "manual" });
    expect(pay.status).toBe(303);
    expect(pay.headers.get("location")).toBe(
      `http://localhost:3000/billing/success?session_id=${created.id}`,
    );

    const session = await stripe.checkout.sessions.retrieve(created.id, {
      expand: ["subscription", "line_items"],
    });
    expect(session).toMatchObject({ status: "complete", payment_status: "paid", url: null });
    const subscription = session.subscription as Stripe.Subscription;
    expect(subscription.id).toMatch(/^sub_/);
    expect(subscription).toMatchObject({
      object: "subscription",
      status: "active",
      customer: customer.id,
      cancel_at_period_end: false,
      metadata: { user_id: "user-42" },
    });
    const item = subscription.items.data[0];
    expect(item?.price.id).toBe(TEST_KEYS.stripeProPriceId);
    const start = item?.current_period_start ?? 0;
    const end = item?.current_period_end ?? 0;
    expect(end - start).toBeGreaterThanOrEqual(28 * 86400);
    expect(end - start).toBeLessThanOrEqual(31 * 86400);
    expect(session.line_items?.data[0]?.price?.id).toBe(TEST_KEYS.stripeProPriceId);

    const invoice = await stripe.invoices.retrieve(String(subscription.latest_invoice));
    expect(invoice.id).toMatch(/^in_/);
    expect(invoice).toMatchObject({
      status: "paid",
      billing_reason: "subscription_create",
      customer: customer.id,
      amount_paid: invoice.amount_due,
      parent: { subscription_details: { subscription: subscription.id } },
    });
  });

  it("sends subscription.created, invoice.paid and checkout.session.completed signed so constructEventAsync accepts them", async () => {
    const customer = (await newCustomer()).id;
    const { session } = await subscribe(customer);
    await flush();

    // Events of the payment itself; the customer was created earlier through the API.
    const got = deliveriesFor(customer).filter((d) => d.type !== "customer.created");
    const types = got.map((d) => d.type);
    expect(types).toEqual(
      expect.arrayContaining([
        "customer.subscription.created",
        "invoice.paid",
        "checkout.session.completed",
      ]),
    );
    for (const d of got) {
      expect(d.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      const event = await verify(d);
      expect(event.id).toMatch(/^evt_/);
      expect(event).toMatchObject({
        object: "event",
        livemode: false,
        api_version: expect.any(String),
        pending_webhooks: expect.any(Number),
      });
      expect(event.request).toEqual({ id: null, idempotency_key: null });
    }

    const completedDelivery = got.find((d) => d.type === "checkout.session.completed");
    if (!completedDelivery) throw new Error("no checkout.session.completed");
    const completed = (await verify(completedDelivery)) as Stripe.CheckoutSessionCompletedEvent;
    expect(completed.data.object).toMatchObject({
      id: session.id,
      client_reference_id: `user-${customer}`,
      subscription: session.subscription,
      customer,
      payment_status: "paid",
    });
    const created = got.find((d) => d.type === "customer.subscription.created");
    if (!created) throw new Error("no customer.subscription.created");
    const createdEvent = (await verify(created)) as Stripe.CustomerSubscriptionCreatedEvent;
    expect(createdEvent.data.object.metadata).toEqual({ user_id: `user-${customer}` });

    // The signature binds the exact bytes and the secret.
    await expect(verify(completedDelivery, "whsec_some_other_secret")).rejects.toBeInstanceOf(
      Stripe.errors.StripeSignatureVerificationError,
    );
    await expect(
      stripe.webhooks.constructEventAsync(
        completedDelivery.raw.replace('"paid"', '"unpaid"'),
        completedDelivery.signature,
        TEST_KEYS.stripeWebhookSecret,
        undefined,
        cryptoProvider,
      ),
    ).rejects.toBeInstanceOf(Stripe.errors.StripeSignatureVerificationError);
  });

  it("declares every field stripe@23's types require on each object it serves (typecheck)", () => {
    expect(STAND_IN_SHAPES_COVER_SDK.every((covered) => covered === true)).toBe(true);
  });

  it("takes the ui_mode values of the pinned API version and refuses the removed ones", async () => {
    const customer = (await newCustomer()).id;
    const base = {
      mode: "subscription" as const,
      customer,
      line_items: [{ price: TEST_KEYS.stripeProPriceId, quantity: 1 }],
    };
    const hosted = await stripe.checkout.sessions.create({
      ...base,
      success_url: "http://localhost:3000/ok",
    });
    expect(hosted).toMatchObject({ ui_mode: "hosted_page", client_secret: null });
    expect(hosted.url).toMatch(/\/stripe\/checkout\/cs_test_/);
    // Fields stripe@23 declares required, present as Stripe sends them.
    expect(hosted).toMatchObject({
      adaptive_pricing: { enabled: false },
      allowed_payment_method_types: null,
    });

    const embedded = await stripe.checkout.sessions.create({
      ...base,
      ui_mode: "embedded_page",
      return_url: "http://localhost:3000/return?session_id={CHECKOUT_SESSION_ID}",
    });
    expect(embedded).toMatchObject({ ui_mode: "embedded_page", url: null });
    expect(embedded.client_secret).toMatch(/^cs_test_\w+_secret_\w+$/);
    const elements = await stripe.checkout.sessions.create({
      ...base,
      ui_mode: "elements",
      redirect_on_completion: "never",
    });
    expect(elements).toMatchObject({ ui_mode: "elements", url: null });

    for (const removed of ["hosted", "embedded", "custom"]) {
      const err = await rejection(
        stripe.checkout.sessions.create({
          ...base,
          ui_mode: removed as "hosted_page",
          success_url: "http://localhost:3000/ok",
        }),
      );
      expect(err, removed).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect((err as Stripe.errors.StripeError).param).toBe("ui_mode");
    }
    const mixed = await rejection(
      stripe.checkout.sessions.create({
        ...base,
        ui_mode: "embedded_page",
        success_url: "http://localhost:3000/ok",
        return_url: "http://localhost:3000/return",
      }),
    );
    expect(mixed).toMatchObject({ param: "success_url" });
    const noReturn = await rejection(
      stripe.checkout.sessions.create({ ...base, ui_mode: "embedded_page" }),
    );
    expect(noReturn).toMatchObject({ param: "return_url" });
  });

  it("creates the customer when the session has only an email and sends customer.created", async () => {
    const email = `${randomUUID()}@example.test`;
    const created = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer_email: email,
      line_items: [{ price: TEST_KEYS.stripeProPriceId, quantity: 1 }],
      success_url: "http://localhost:3000/ok",
    });
    await fetch(created.url ?? "", { method: "POST", redirect: "manual" });
    const session = await stripe.checkout.sessions.retrieve(created.id);
    expect(String(session.customer)).toMatch(/^cus_/);
    const customer = (await stripe.customers.retrieve(String(session.customer))) as Stripe.Customer;
    expect(customer.email).toBe(email);
    await flush();
    expect(deliveriesFor(customer.id).map((d) => d.type)).toContain("customer.created");
  });

  it("paying a completed session again creates no second subscription", async () => {
    const customer = (await newCustomer()).id;
    const { session } = await subscribe(customer);
    const again = await fetch(`${cloud.url}/stripe/checkout/${session.id}`, {
      method: "POST",
      redirect: "manual",
    });
    expect(again.status).toBe(303);
    const subs = await stripe.subscriptions.list({ customer });
    expect(subs.data.map((s) => s.id)).toEqual([session.subscription]);
  });

  it("rejects a success_url that is not a URL", async () => {
    const customer = (await newCustomer()).id;
    const err = await rejection(
      stripe.checkout.sessions.create({
        mode: "subscription",
        customer,
        line_items: [{ price: TEST_KEYS.stripeProPriceId, quantity: 1 }],
        success_url: "not a url",
      }),
    );
    expect(err).toMatchObject({ statusCode: 400, code: "url_invalid", param: "success_url" });
  });
});

describe("local Stripe subscriptions and portal", () => {
  it("cancel_at_period_end sets cancel_at and emits customer.subscription.updated with previous_attributes", async () => {
    const { customer, subscription } = await subscribedCustomer();
    const before = deliveriesFor(customer).length;
    const updated = await stripe.subscriptions.update(subscription, { cancel_at_period_end: true });
    expect(updated.cancel_at_period_end).toBe(true);
    expect(updated.cancel_at).toBe(updated.items.data[0]?.current_period_end);
    expect(updated.status).toBe("active");
    expect((await stripe.subscriptions.retrieve(subscription)).cancel_at_period_end).toBe(true);

    await flush();
    const [delivery] = deliveriesFor(customer).slice(before);
    if (!delivery) throw new Error("no delivery");
    const event = (await verify(delivery)) as Stripe.CustomerSubscriptionUpdatedEvent;
    expect(event.type).toBe("customer.subscription.updated");
    expect(event.data.object.cancel_at_period_end).toBe(true);
    expect(event.data.previous_attributes).toMatchObject({
      cancel_at_period_end: false,
      cancel_at: null,
    });
    expect(event.request?.id).toMatch(/^req_/);
  });

  it("cancel ends the subscription now, emits customer.subscription.deleted and a second cancel is 404", async () => {
    const { customer, subscription } = await subscribedCustomer();
    const before = deliveriesFor(customer).length;
    const canceled = await stripe.subscriptions.cancel(subscription);
    expect(canceled.status).toBe("canceled");
    expect(canceled.ended_at).not.toBeNull();
    await flush();
    const got = deliveriesFor(customer).slice(before);
    expect(got.map((d) => d.type)).toEqual(["customer.subscription.deleted"]);
    const event = await verify(got[0] as Delivery);
    expect((event.data.object as Stripe.Subscription).status).toBe("canceled");

    expect(await rejection(stripe.subscriptions.cancel(subscription))).toMatchObject({
      statusCode: 404,
      code: "resource_missing",
    });
    expect(
      await rejection(stripe.subscriptions.update(subscription, { cancel_at_period_end: true })),
    ).toMatchObject({ statusCode: 400 });
  });

  it("lists a customer's subscriptions, leaving canceled ones out unless status=all", async () => {
    const { customer, subscription } = await subscribedCustomer();
    expect((await stripe.subscriptions.list({ customer })).data.map((s) => s.id)).toEqual([
      subscription,
    ]);
    await stripe.subscriptions.cancel(subscription);
    expect((await stripe.subscriptions.list({ customer })).data).toEqual([]);
    const all = await stripe.subscriptions.list({ customer, status: "all" });
    expect(all.data.map((s) => [s.id, s.status])).toEqual([[subscription, "canceled"]]);
  });

  it("creates a portal session whose page lists the subscription and can cancel it at period end", async () => {
    const { customer, subscription } = await subscribedCustomer();
    const portal = await stripe.billingPortal.sessions.create({
      customer,
      return_url: "http://localhost:3000/account",
    });
    expect(portal.id).toMatch(/^bps_/);
    expect(portal.url).toBe(`${cloud.url}/stripe/portal/${portal.id}`);
    const page = await fetch(portal.url);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(`data-subscription="${subscription}"`);
    expect(html).toContain('href="http://localhost:3000/account"');

    const cancel = await fetch(
      `${cloud.url}/stripe/portal/${portal.id}/subscriptions/${subscription}/cancel`,
      { method: "POST", redirect: "manual" },
    );
    expect(cancel.status).toBe(303);
    expect((await stripe.subscriptions.retrieve(subscription)).cancel_at_period_end).toBe(true);
  });
});

describe("local Stripe simulation controls", () => {
  it("fails every API call with 500 api_error while the API fault is on, then serves again", async () => {
    expect((await control("/fault", { mode: "error" })).status).toBe(200);
    try {
      const err = await stripe.customers.create({}).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Stripe.errors.StripeAPIError);
      expect((err as Stripe.errors.StripeError).statusCode).toBe(500);
    } finally {
      await control("/fault", { mode: "none" });
    }
    expect((await stripe.customers.create({})).id).toMatch(/^cus_/);
    expect((await control("/fault", { mode: "sideways" })).status).toBe(400);
  });

  it("saves a 500 under its idempotency key and replays it, with Stripe-Should-Retry: false", async () => {
    // docs.stripe.com/api/idempotent_requests: the first response after execution began is
    // saved, 500s included; stripe-node then does not retry (RequestSender._shouldRetry).
    const retrying = new Stripe(TEST_KEYS.stripeSecretKey, {
      host: "127.0.0.1",
      port: cloud.port,
      protocol: "http",
      httpClient: Stripe.createFetchHttpClient(),
      maxNetworkRetries: 2,
    });
    let attempts = 0;
    retrying.on("request", () => {
      attempts += 1;
    });
    const metadata = { user_id: `replay-${randomUUID()}` };
    const idempotencyKey = randomUUID();
    await control("/fault", { mode: "error", count: 1, method: "POST", path: "/v1/customers" });
    const first = await rejection(retrying.customers.create({ metadata }, { idempotencyKey }));
    expect(first).toBeInstanceOf(Stripe.errors.StripeAPIError);
    const raw = first as Stripe.errors.StripeError;
    expect(raw.statusCode).toBe(500);
    expect(raw.headers?.["stripe-should-retry"]).toBe("false");
    // One attempt: the SDK honoured the header instead of retrying (into the same replay).
    expect(attempts).toBe(1);
    expect((await control("/fault", { mode: "none" })).body).toMatchObject({ mode: "none" });
    const again = await rejection(retrying.customers.create({ metadata }, { idempotencyKey }));
    expect(again).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect((again as Stripe.errors.StripeError).headers?.["idempotent-replayed"]).toBe("true");
    expect((again as Stripe.errors.StripeError).requestId).not.toBe(raw.requestId);
    expect(
      (await stripe.customers.search({ query: `metadata['user_id']:'${metadata.user_id}'` })).data,
    ).toEqual([]);
    // Another key runs the request.
    const created = await retrying.customers.create({ metadata }, { idempotencyKey: randomUUID() });
    expect(created.metadata).toEqual(metadata);

    // A 500 after the work was done: the customer exists, the key replays the 500.
    const late = { user_id: `late-${randomUUID()}` };
    const lateKey = randomUUID();
    await control("/fault", {
      mode: "error",
      count: 1,
      method: "POST",
      path: "/v1/customers",
      when: "after",
    });
    expect(
      await rejection(stripe.customers.create({ metadata: late }, { idempotencyKey: lateKey })),
    ).toBeInstanceOf(Stripe.errors.StripeAPIError);
    expect(
      await rejection(stripe.customers.create({ metadata: late }, { idempotencyKey: lateKey })),
    ).toBeInstanceOf(Stripe.errors.StripeAPIError);
    const found = await stripe.customers.search({ query: `metadata['user_id']:'${late.user_id}'` });
    expect(found.data).toHaveLength(1);
  });

  it("searches customers by metadata and deletes them like Stripe", async () => {
    const userId = `search-${randomUUID()}`;
    const a = await stripe.customers.create({ metadata: { user_id: userId } });
    const b = await stripe.customers.create({
      metadata: { user_id: userId },
      email: `${userId}@example.test`,
    });
    await stripe.customers.create({ metadata: { user_id: `${userId}-other` } });
    const found = await stripe.customers.search({ query: `metadata['user_id']:'${userId}'` });
    expect(found.object).toBe("search_result");
    expect(found.data.map((c) => c.id).sort()).toEqual([a.id, b.id].sort());
    const both = await stripe.customers.search({
      query: `metadata['user_id']:'${userId}' AND email:'${userId}@example.test'`,
    });
    expect(both.data.map((c) => c.id)).toEqual([b.id]);
    expect(await rejection(stripe.customers.search({ query: "nonsense" }))).toBeInstanceOf(
      Stripe.errors.StripeInvalidRequestError,
    );

    const deleted = await stripe.customers.del(a.id);
    expect(deleted).toMatchObject({ id: a.id, object: "customer", deleted: true });
    expect(await stripe.customers.retrieve(a.id)).toMatchObject({ id: a.id, deleted: true });
    const after = await stripe.customers.search({ query: `metadata['user_id']:'${userId}'` });
    expect(after.data.map((c) => c.id)).toEqual([b.id]);
    const err = await rejection(
      stripe.checkout.sessions.create({
        mode: "subscription",
        customer: a.id,
        line_items: [{ price: TEST_KEYS.stripeProPriceId, quantity: 1 }],
        success_url: "http://localhost:3000/ok",
      }),
    );
    expect(err).toMatchObject({ code: "resource_missing", param: "customer" });
  });

  it("refuses portal sessions until the portal settings are saved", async () => {
    const customer = (await newCustomer()).id;
    expect((await control("/portal-configuration", { saved: false })).body).toEqual({
      saved: false,
    });
    try {
      const err = await rejection(stripe.billingPortal.sessions.create({ customer }));
      expect(err).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
      expect((err as Stripe.errors.StripeError).statusCode).toBe(400);
      expect((err as Stripe.errors.StripeError).code).toBeUndefined();
      expect((err as Error).message).toContain(
        "No configuration provided and your test mode default configuration has not been created",
      );
    } finally {
      expect((await control("/portal-configuration", { saved: true })).body).toEqual({
        saved: true,
      });
    }
    const portal = await stripe.billingPortal.sessions.create({ customer });
    expect(portal.configuration).toMatch(/^bpc_/);
  });

  it("switches a subscription's item to another price, as the portal's plan switch does", async () => {
    const team = (await control("/prices", { nickname: "Team", unit_amount: 3000 })).body;
    expect(team).toMatchObject({ object: "price", unit_amount: 3000, type: "recurring" });
    const { customer, subscription } = await subscribedCustomer();
    const before = await stripe.subscriptions.retrieve(subscription);
    const item = before.items.data[0] as Stripe.SubscriptionItem;
    const mark = deliveriesFor(customer).length;
    const after = await stripe.subscriptions.update(subscription, {
      items: [{ id: item.id, price: String(team.id) }],
    });
    expect(after.items.data).toHaveLength(1);
    expect(after.items.data[0]).toMatchObject({
      id: item.id,
      price: { id: team.id },
      current_period_end: item.current_period_end,
    });
    await flush();
    const updated = deliveriesFor(customer)
      .slice(mark)
      .find((d) => d.type === "customer.subscription.updated");
    expect(updated).toBeDefined();
    const event = await verify(updated as Delivery);
    expect(event.data.previous_attributes).toHaveProperty("items");
  });

  it("renew_paid moves to the next period with a paid cycle invoice and emits updated and invoice.paid", async () => {
    const { customer, subscription } = await subscribedCustomer();
    const before = await stripe.subscriptions.retrieve(subscription);
    const oldEnd = before.items.data[0]?.current_period_end ?? 0;
    const mark = deliveriesFor(customer).length;

    const res = await control("/advance", { subscription, outcome: "renew_paid" });
    expect(res.status).toBe(200);
    const after = await stripe.subscriptions.retrieve(subscription);
    expect(after.status).toBe("active");
    expect(after.items.data[0]?.current_period_start).toBe(oldEnd);
    expect(after.items.data[0]?.current_period_end).toBeGreaterThan(oldEnd + 27 * 86400);
    expect(after.latest_invoice).not.toBe(before.latest_invoice);
    const invoice = await stripe.invoices.retrieve(String(after.latest_invoice));
    expect(invoice).toMatchObject({ status: "paid", billing_reason: "subscription_cycle" });

    await flush();
    const got = deliveriesFor(customer).slice(mark);
    expect(got.map((d) => d.type)).toEqual(
      expect.arrayContaining(["customer.subscription.updated", "invoice.paid"]),
    );
    const updated = got.find((d) => d.type === "customer.subscription.updated") as Delivery;
    const event = (await verify(updated)) as Stripe.CustomerSubscriptionUpdatedEvent;
    expect(event.data.object.items.data[0]?.current_period_start).toBe(oldEnd);
    expect(event.data.previous_attributes).toHaveProperty("items");
  });

  it("renew_failed makes the subscription past_due with invoice.payment_failed, and a paid retry restores it", async () => {
    const { customer, subscription } = await subscribedCustomer();
    const mark = deliveriesFor(customer).length;
    expect((await control("/advance", { subscription, outcome: "renew_failed" })).status).toBe(200);
    const pastDue = await stripe.subscriptions.retrieve(subscription);
    expect(pastDue.status).toBe("past_due");
    const open = await stripe.invoices.retrieve(String(pastDue.latest_invoice));
    expect(open).toMatchObject({ status: "open", amount_paid: 0, attempted: true });

    await flush();
    const failed = deliveriesFor(customer).slice(mark);
    expect(failed.map((d) => d.type)).toEqual([
      "invoice.payment_failed",
      "customer.subscription.updated",
    ]);
    const updated = (await verify(
      failed[1] as Delivery,
    )) as Stripe.CustomerSubscriptionUpdatedEvent;
    expect(updated.data.object.status).toBe("past_due");
    expect(updated.data.previous_attributes).toMatchObject({ status: "active" });

    const mark2 = deliveriesFor(customer).length;
    expect((await control("/advance", { subscription, outcome: "renew_paid" })).status).toBe(200);
    const recovered = await stripe.subscriptions.retrieve(subscription);
    expect(recovered.status).toBe("active");
    expect(recovered.latest_invoice).toBe(pastDue.latest_invoice);
    expect((await stripe.invoices.retrieve(String(recovered.latest_invoice))).status).toBe("paid");
    await flush();
    expect(
      deliveriesFor(customer)
        .slice(mark2)
        .map((d) => d.type),
    ).toEqual(expect.arrayContaining(["invoice.paid", "customer.subscription.updated"]));
  });

  it("end_period cancels a subscription set to cancel at period end and emits customer.subscription.deleted", async () => {
    const { customer, subscription } = await subscribedCustomer();
    const refused = await control("/advance", { subscription, outcome: "end_period" });
    expect(refused.status).toBe(409);

    await stripe.subscriptions.update(subscription, { cancel_at_period_end: true });
    await flush();
    const mark = deliveriesFor(customer).length;
    expect((await control("/advance", { subscription, outcome: "end_period" })).status).toBe(200);
    expect((await stripe.subscriptions.retrieve(subscription)).status).toBe("canceled");
    await flush();
    const got = deliveriesFor(customer).slice(mark);
    expect(got.map((d) => d.type)).toEqual(["customer.subscription.deleted"]);
    const event = await verify(got[0] as Delivery);
    expect((event.data.object as Stripe.Subscription).status).toBe("canceled");
  });
});

describe("local Stripe webhook delivery", () => {
  it("retries a delivery the endpoint answered with 500 until it gets a 2xx", async () => {
    const customer = (await newCustomer()).id;
    await flush();
    answers.set(customer, (nth) => (nth < 2 ? 500 : 200));
    const sent = await control("/send", {
      type: "customer.updated",
      object: { id: customer, object: "customer" },
    });
    expect(sent.body.id).toMatch(/^evt_/);
    await flush();
    const got = deliveriesFor(customer).filter((d) => d.eventId === sent.body.id);
    expect(got).toHaveLength(3);
    const [view] = (await eventsFor(customer)).filter((e) => e.id === sent.body.id);
    expect(view?.delivery).toBe("succeeded");
    expect(view?.attempts.map((a) => a.status)).toEqual([500, 500, 200]);
  });

  it("gives up after four attempts when the endpoint is unreachable and records each failure", async () => {
    const customer = (await newCustomer()).id;
    await flush();
    await control("/webhook-endpoint", { url: "http://127.0.0.1:9/webhook/stripe" });
    try {
      const sent = await control("/send", {
        type: "invoice.paid",
        object: { id: "in_test", object: "invoice", customer },
      });
      await flush();
      const [view] = (await eventsFor(customer)).filter((e) => e.id === sent.body.id);
      expect(view?.delivery).toBe("failed");
      expect(view?.attempts).toHaveLength(4);
      for (const a of view?.attempts ?? []) {
        expect(a.status).toBeNull();
        expect(a.error).toBeTruthy();
      }
    } finally {
      await control("/webhook-endpoint", { url: webhookUrl });
    }
  });

  it("renders events in the endpoint's older API version (pre-basil invoice and subscription shapes)", async () => {
    const version = "2025-02-24.acacia";
    expect(
      (await control("/webhook-endpoint", { url: webhookUrl, api_version: version })).body,
    ).toMatchObject({
      api_version: version,
    });
    try {
      const { customer, subscription } = await subscribedCustomer();
      const got = deliveriesFor(customer);
      const paid = got.find((d) => d.type === "invoice.paid") as Delivery;
      const created = got.find((d) => d.type === "customer.subscription.created") as Delivery;
      // Still signed like every delivery; the body is the old shape.
      const invoiceEvent = await verify(paid);
      expect(invoiceEvent.api_version).toBe(version);
      const invoice = invoiceEvent.data.object as unknown as Record<string, unknown>;
      expect(invoice.subscription).toBe(subscription);
      expect(invoice).not.toHaveProperty("parent");
      const sub = (await verify(created)).data.object as unknown as Record<string, unknown>;
      expect(typeof sub.current_period_end).toBe("number");
      const items = (sub.items as { data: Record<string, unknown>[] }).data;
      expect(items[0]).not.toHaveProperty("current_period_end");
      // The API still answers in the request's (the SDK's) version.
      const current = await stripe.subscriptions.retrieve(subscription);
      expect(current.items.data[0]?.current_period_end).toBe(sub.current_period_end);
    } finally {
      await control("/webhook-endpoint", { url: webhookUrl, api_version: null });
    }
  });

  it("duplicate mode delivers each event of that customer twice, concurrently", async () => {
    const customer = (await newCustomer()).id;
    await flush();
    await control("/delivery", { mode: "duplicate", customer });
    holdMs.set(customer, 150);
    const { session } = await subscribe(customer);
    await flush();
    const got = deliveriesFor(customer).filter((d) => d.type !== "customer.created");
    const byEvent = new Map<string, Delivery[]>();
    for (const d of got) byEvent.set(d.eventId, [...(byEvent.get(d.eventId) ?? []), d]);
    expect(byEvent.size).toBeGreaterThanOrEqual(3);
    for (const copies of byEvent.values()) {
      expect(copies).toHaveLength(2);
      // The second copy arrived while the first was still being answered.
      expect(Math.max(...copies.map((c) => c.concurrentSameEvent))).toBe(1);
      const [a, b] = copies;
      expect(a?.raw).toBe(b?.raw);
    }
    expect(got.filter((d) => d.type === "checkout.session.completed")).toHaveLength(2);
    expect(session.status).toBe("complete");

    // Other customers are unaffected by a customer-scoped mode.
    const other = (await newCustomer()).id;
    await subscribe(other);
    await flush();
    const otherGot = deliveriesFor(other);
    expect(new Set(otherGot.map((d) => d.eventId)).size).toBe(otherGot.length);
  });

  it("reverse mode delivers a flow's events in reverse order", async () => {
    const customer = (await newCustomer()).id;
    await flush();
    await control("/delivery", { mode: "reverse", customer });
    await subscribe(customer);
    await flush();
    const types = deliveriesFor(customer)
      .filter((d) => d.type !== "customer.created")
      .map((d) => d.type);
    expect(types[0]).toBe("checkout.session.completed");
    expect(types.at(-1)).toBe("customer.subscription.created");
    expect(types.indexOf("invoice.paid")).toBeGreaterThan(0);

    const views = (await eventsFor(customer)).filter((e) => e.type !== "customer.created");
    expect(views.map((v) => v.type)).toEqual([...types].reverse());
  });

  it("sends an arbitrary event built and signed like Stripe's", async () => {
    const customer = (await newCustomer()).id;
    await flush();
    const sent = await control("/send", {
      type: "charge.refund.updated",
      object: { id: "re_123", object: "refund", customer },
    });
    await flush();
    const [d] = deliveriesFor(customer).filter((x) => x.eventId === sent.body.id);
    if (!d) throw new Error("no delivery");
    const event = await verify(d);
    expect(event.type).toBe("charge.refund.updated");
    expect(event.data.object).toEqual({ id: "re_123", object: "refund", customer });
    const fetched = await stripe.events.retrieve(event.id);
    expect(fetched.type).toBe("charge.refund.updated");
  });
});
