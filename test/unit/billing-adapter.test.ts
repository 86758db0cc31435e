import Stripe from "stripe";
import { describe, expect, it } from "vitest";
import {
  createBilling,
  toBillingEvent,
  toSubscription,
  WebhookSignatureError,
} from "../../src/lib/billing.ts";

const SECRET = "whsec_unit_0123456789abcdef";
const stripe = new Stripe("sk_test_unit");
const billing = createBilling({
  secretKey: "sk_test_unit",
  webhookSecret: SECRET,
  apiBase: "http://127.0.0.1:9",
});
const now = new Date(Date.UTC(2026, 5, 1, 12, 0, 0));
const nowSeconds = Math.floor(now.getTime() / 1000);

const payload = JSON.stringify({
  id: "evt_unit_1",
  object: "event",
  type: "customer.subscription.updated",
  created: nowSeconds - 5,
  data: { object: { id: "sub_1", object: "subscription", customer: "cus_1", metadata: {} } },
});

const sign = (body: string, timestamp = nowSeconds, secret = SECRET) =>
  stripe.webhooks.generateTestHeaderStringAsync({ payload: body, secret, timestamp });

describe("verifyWebhook", () => {
  it("accepts a correctly signed event and reduces it to its references", async () => {
    const event = await billing.verifyWebhook(payload, await sign(payload), now);
    expect(event).toEqual({
      id: "evt_unit_1",
      type: "customer.subscription.updated",
      created: nowSeconds - 5,
      subscriptionId: "sub_1",
      customerId: "cus_1",
      userId: null,
    });
  });

  it("accepts timestamps 299 s old and 299 s ahead", async () => {
    await expect(
      billing.verifyWebhook(payload, await sign(payload, nowSeconds - 299), now),
    ).resolves.toMatchObject({ id: "evt_unit_1" });
    await expect(
      billing.verifyWebhook(payload, await sign(payload, nowSeconds + 299), now),
    ).resolves.toMatchObject({ id: "evt_unit_1" });
  });

  it("refuses a timestamp 301 s old", async () => {
    await expect(
      billing.verifyWebhook(payload, await sign(payload, nowSeconds - 301), now),
    ).rejects.toBeInstanceOf(WebhookSignatureError);
  });

  it("refuses a timestamp an hour in the future, which stripe-node alone would accept", async () => {
    const header = await sign(payload, nowSeconds + 3600);
    await expect(
      stripe.webhooks.constructEventAsync(payload, header, SECRET, 300, undefined, now.getTime()),
    ).resolves.toBeDefined();
    await expect(billing.verifyWebhook(payload, header, now)).rejects.toBeInstanceOf(
      WebhookSignatureError,
    );
  });

  it("refuses a future timestamp hidden behind an earlier t= element (stripe-node reads the last)", async () => {
    const header = `t=${nowSeconds},${await sign(payload, nowSeconds + 3600)}`;
    // stripe-node verifies this header against the future t, and accepts it on its own.
    await expect(
      stripe.webhooks.constructEventAsync(payload, header, SECRET, 300, undefined, now.getTime()),
    ).resolves.toBeDefined();
    await expect(billing.verifyWebhook(payload, header, now)).rejects.toBeInstanceOf(
      WebhookSignatureError,
    );
  });

  it("refuses a changed byte, a re-serialised body, another secret and missing headers", async () => {
    const header = await sign(payload);
    const changed = payload.replace("sub_1", "sub_2");
    const reserialised = JSON.stringify(JSON.parse(payload), null, 1);
    const cases: [string, string | undefined][] = [
      [changed, header],
      [reserialised, header],
      [payload, await sign(payload, nowSeconds, "whsec_other_secret")],
      [payload, undefined],
      [payload, ""],
      [payload, "t=,v1="],
      [payload, `t=${nowSeconds}`],
    ];
    for (const [body, sig] of cases) {
      await expect(billing.verifyWebhook(body, sig, now)).rejects.toBeInstanceOf(
        WebhookSignatureError,
      );
    }
  });

  it("accepts a header carrying an old and a new v1 signature (secret rotation)", async () => {
    const good = await sign(payload);
    const old = await sign(payload, nowSeconds, "whsec_old_secret");
    const v1 = (h: string) => h.split(",").find((p) => p.startsWith("v1="));
    const header = `t=${nowSeconds},${v1(old)},${v1(good)}`;
    await expect(billing.verifyWebhook(payload, header, now)).resolves.toMatchObject({
      id: "evt_unit_1",
    });
  });

  it("refuses a signed body that is not JSON as a signature error, not a crash", async () => {
    const body = "not json";
    await expect(billing.verifyWebhook(body, await sign(body), now)).rejects.toBeInstanceOf(
      WebhookSignatureError,
    );
  });
});

describe("toBillingEvent", () => {
  const event = (type: string, object: Record<string, unknown>) =>
    toBillingEvent({ id: "evt_x", type, created: 100, data: { object } });

  it("takes the subscription and user from a Checkout Session", () => {
    expect(
      event("checkout.session.completed", {
        id: "cs_1",
        subscription: "sub_1",
        customer: "cus_1",
        client_reference_id: "user-1",
        metadata: { user_id: "user-meta" },
      }),
    ).toMatchObject({ subscriptionId: "sub_1", customerId: "cus_1", userId: "user-1" });
  });

  it("takes the subscription from an invoice's parent (API 2025-03-31+) or the legacy field", () => {
    expect(
      event("invoice.paid", {
        id: "in_1",
        customer: { id: "cus_1" },
        parent: {
          type: "subscription_details",
          subscription_details: { subscription: "sub_1", metadata: { user_id: "user-1" } },
        },
      }),
    ).toMatchObject({ subscriptionId: "sub_1", customerId: "cus_1", userId: "user-1" });
    expect(
      event("invoice.payment_failed", { id: "in_2", customer: "cus_1", subscription: "sub_9" }),
    ).toMatchObject({ subscriptionId: "sub_9" });
  });

  it("uses the object id for subscription events and nothing for other types", () => {
    expect(
      event("customer.subscription.deleted", { id: "sub_3", customer: "cus_3" }),
    ).toMatchObject({ subscriptionId: "sub_3", customerId: "cus_3" });
    expect(event("charge.refund.updated", { id: "re_1", customer: "cus_3" })).toMatchObject({
      subscriptionId: null,
    });
  });
});

describe("toSubscription", () => {
  it("reads the period end from the items (current API) and metadata.user_id", () => {
    expect(
      toSubscription({
        id: "sub_1",
        customer: "cus_1",
        status: "past_due",
        cancel_at_period_end: true,
        metadata: { user_id: "u1" },
        items: {
          data: [{ current_period_end: 1_800_000_000, price: { id: "price_pro" } }],
        },
      }),
    ).toEqual({
      id: "sub_1",
      customerId: "cus_1",
      status: "past_due",
      priceId: "price_pro",
      priceIds: ["price_pro"],
      currentPeriodEnd: new Date(1_800_000_000_000),
      cancelAtPeriodEnd: true,
      userId: "u1",
    });
  });

  it("falls back to the legacy subscription-level period end", () => {
    expect(
      toSubscription({
        id: "sub_2",
        customer: { id: "cus_2" },
        status: "active",
        current_period_end: 1_700_000_000,
        metadata: {},
        items: { data: [] },
      }),
    ).toMatchObject({ customerId: "cus_2", currentPeriodEnd: new Date(1_700_000_000_000) });
  });
});
