import type Stripe from "stripe";
import { describe, expect, it } from "vitest";
import { call, control, waitFor } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  customerEvents,
  deliver,
  deliverEvent,
  envelope,
  flushWebhooks,
  forgetBilling,
  nowSeconds,
  type PaidUser,
  paidUser,
  pay,
  processedCount,
  status,
  storedSubscriptions,
  stripe,
  subscribe,
} from "./billing-support.ts";

const HANDLED = new Set([
  "checkout.session.completed",
  "customer.subscription.created",
  "customer.subscription.updated",
  "customer.subscription.deleted",
  "invoice.paid",
  "invoice.payment_failed",
]);

async function handledEvents(user: PaidUser): Promise<Stripe.Event[]> {
  return (await customerEvents(user.customerId)).filter((e) => HANDLED.has(e.type));
}

describe("POST /webhook/stripe signature checks", () => {
  const body = () =>
    JSON.stringify(envelope("customer.subscription.updated", { id: "sub_does_not_exist" }));

  it("answers 400 invalid_signature for a forged, missing or malformed signature", async () => {
    const payload = body();
    const forged = await deliver(payload, { secret: "whsec_not_the_real_secret" });
    const missing = await call("POST", "/webhook/stripe", {
      rawBody: payload,
      headers: { "content-type": "application/json" },
    });
    const empty = await deliver(payload, { header: "" });
    const malformed = await deliver(payload, { header: "t=,v1=" });
    for (const res of [forged, missing, empty, malformed]) {
      expect(res.status, res.text).toBe(400);
      expect(res.body.error.code).toBe("invalid_signature");
    }
  });

  it("answers 400 when one byte of a correctly signed body changes, or it is re-serialised", async () => {
    const payload = body();
    const header = await stripe.webhooks.generateTestHeaderStringAsync({
      payload,
      secret: (await import("../support/api.ts")).testEnv.STRIPE_WEBHOOK_SECRET as string,
      timestamp: nowSeconds(),
    });
    const changed = payload.replace("sub_does_not_exist", "sub_does_not_exisT");
    const reserialised = JSON.stringify(JSON.parse(payload), null, 2);
    for (const raw of [changed, reserialised]) {
      const res = await deliver(raw, { header });
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("invalid_signature");
    }
  });

  it("refuses a timestamp 301 s old and one an hour ahead, accepts 299 s old", async () => {
    const stale = await deliver(body(), { timestamp: nowSeconds() - 301 });
    const future = await deliver(body(), { timestamp: nowSeconds() + 3600 });
    const recent = await deliver(body(), { timestamp: nowSeconds() - 299 });
    expect(stale.status).toBe(400);
    expect(stale.body.error.code).toBe("invalid_signature");
    expect(future.status).toBe(400);
    expect(future.body.error.code).toBe("invalid_signature");
    expect(recent.status, recent.text).toBe(200);
  });

  it("answers 413 to a 2 MB body before any signature work", async () => {
    const res = await deliver(JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
  });

  it("acknowledges an unknown event type without recording it", async () => {
    const event = envelope("charge.refund.updated", { id: "re_123", object: "refund" });
    await deliverEvent(event);
    expect(await processedCount(event.id)).toBe(0);
  });

  it("acknowledges an event for a subscription Stripe does not know (no retry storm)", async () => {
    const event = envelope("customer.subscription.updated", {
      id: "sub_never_created",
      object: "subscription",
      customer: "cus_never_created",
    });
    await deliverEvent(event);
    expect(await processedCount(event.id)).toBe(0);
  });

  it("answers 405 to GET and takes no user bearer token as a signature", async () => {
    const session = await createSession();
    const get = await call("GET", "/webhook/stripe");
    expect(get.status).toBe(405);
    const withJwt = await call("POST", "/webhook/stripe", {
      body: envelope("invoice.paid", {}),
      token: session.token,
    });
    expect(withJwt.status).toBe(400);
    expect(withJwt.body.error.code).toBe("invalid_signature");
  });
});

describe("POST /webhook/stripe applies each handled event", () => {
  it("makes the user Pro from any one of the events a paid Checkout emits", async () => {
    const user = await paidUser();
    const events = await handledEvents(user);
    expect(events.map((e) => e.type).sort()).toEqual([
      "checkout.session.completed",
      "customer.subscription.created",
      "invoice.paid",
    ]);
    for (const event of events) {
      // Without the stored customer id, only client_reference_id / metadata can map the user.
      await forgetBilling(
        user.session.user.id,
        events.map((e) => e.id),
        { forgetCustomer: true },
      );
      expect((await status(user.session)).tier).toBe("basic");
      await deliverEvent(event);
      const s = await status(user.session);
      expect(s, event.type).toMatchObject({ tier: "pro", status: "active" });
      expect(s.current_period_end).not.toBeNull();
      expect(await processedCount(event.id)).toBe(1);
    }
  });

  it("applies checkout.session.completed alone, before any subscription event, then the rest as no-ops", async () => {
    const user = await paidUser();
    const events = await handledEvents(user);
    await forgetBilling(
      user.session.user.id,
      events.map((e) => e.id),
    );
    const completed = events.find((e) => e.type === "checkout.session.completed")!;
    await deliverEvent(completed);
    expect(await status(user.session)).toMatchObject({ tier: "pro", status: "active" });
    const [before] = await storedSubscriptions(user.session.user.id);
    for (const e of events.filter((x) => x !== completed)) await deliverEvent(e);
    const after = await storedSubscriptions(user.session.user.id);
    expect(after).toHaveLength(1);
    expect(after[0]).toMatchObject({ id: before!.id, status: "active" });
  });

  it("applies the same event once when it arrives 10 times in parallel, then 10 times in a row", async () => {
    const user = await paidUser();
    const events = await handledEvents(user);
    await forgetBilling(
      user.session.user.id,
      events.map((e) => e.id),
    );
    const created = events.find((e) => e.type === "customer.subscription.created")!;

    const parallel = await Promise.all(
      Array.from({ length: 10 }, () => deliver(JSON.stringify(created))),
    );
    expect(parallel.map((r) => r.status)).toEqual(Array(10).fill(200));
    expect(await processedCount(created.id)).toBe(1);
    const [first] = await storedSubscriptions(user.session.user.id);
    expect(first).toMatchObject({ status: "active" });

    for (let i = 0; i < 10; i++) await deliverEvent(created);
    const rows = await storedSubscriptions(user.session.user.id);
    expect(rows).toHaveLength(1);
    // A duplicate is a no-op: the stored state was not even rewritten.
    expect(rows[0]!.stateVersion).toBe(first!.stateVersion);
    expect(rows[0]!.updatedAt.getTime()).toBe(first!.updatedAt.getTime());
    expect((await status(user.session)).tier).toBe("pro");
  });

  it("ends in Stripe's current state for every ordered pair of lifecycle events (deleted wins)", async () => {
    const user = await paidUser();
    await call("POST", "/subscription/cancel", { token: user.session.token });
    const ended = await control("stripe/advance", {
      subscription: user.subscriptionId,
      outcome: "end_period",
    });
    expect(ended.status, ended.text).toBe(200);
    await flushWebhooks();
    const events = await handledEvents(user);
    const types = events.map((e) => e.type);
    expect(types).toContain("customer.subscription.updated");
    expect(types).toContain("customer.subscription.deleted");

    for (const a of events) {
      for (const b of events) {
        if (a === b) continue;
        await forgetBilling(
          user.session.user.id,
          events.map((e) => e.id),
        );
        await deliverEvent(b);
        await deliverEvent(a);
        const s = await status(user.session);
        expect(s, `${b.type} then ${a.type}`).toMatchObject({ tier: "basic", status: "canceled" });
      }
    }
  });

  it("does not let updated(active) after deleted bring Pro back", async () => {
    const user = await paidUser();
    await call("POST", "/subscription/cancel", { token: user.session.token });
    await control("stripe/advance", { subscription: user.subscriptionId, outcome: "end_period" });
    await flushWebhooks();
    expect((await status(user.session)).tier).toBe("basic");
    // A late copy of an "active" update, carrying the old object, created after the deletion.
    const activeCopy = envelope("customer.subscription.updated", {
      id: user.subscriptionId,
      object: "subscription",
      customer: user.customerId,
      status: "active",
      metadata: { user_id: user.session.user.id },
    });
    await deliverEvent(activeCopy);
    expect(await status(user.session)).toMatchObject({ tier: "basic", status: "canceled" });
  });

  it("keeps Pro through a failed renewal (past_due) and stays Pro when it is paid", async () => {
    const user = await paidUser();
    const failed = await control("stripe/advance", {
      subscription: user.subscriptionId,
      outcome: "renew_failed",
    });
    expect(failed.status, failed.text).toBe(200);
    await flushWebhooks();
    await waitFor(async () => (await status(user.session)).status === "past_due");
    expect((await status(user.session)).tier).toBe("pro");

    // Each renewal event alone, replayed from scratch, lands on the same state.
    const events = (await handledEvents(user)).filter((e) =>
      ["invoice.payment_failed", "customer.subscription.updated"].includes(e.type),
    );
    expect(events).toHaveLength(2);
    for (const e of events) {
      await forgetBilling(
        user.session.user.id,
        events.map((x) => x.id),
      );
      await deliverEvent(e);
      expect(await status(user.session), e.type).toMatchObject({ tier: "pro", status: "past_due" });
    }

    await control("stripe/advance", { subscription: user.subscriptionId, outcome: "renew_paid" });
    await flushWebhooks();
    await waitFor(async () => (await status(user.session)).status === "active");
    expect((await status(user.session)).tier).toBe("pro");
  });

  it("acknowledges events of a customer no user is mapped to, with one attempt each", async () => {
    // A Checkout created straight on Stripe: no client_reference_id, metadata or known customer.
    const customer = await stripe.customers.create({ email: "stranger@example.com" });
    const session = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer: customer.id,
      line_items: [{ price: "price_local_pro_monthly", quantity: 1 }],
      success_url: "http://localhost:3000/ok",
    });
    await pay(session.url!);
    await flushWebhooks();
    const res = await control(`stripe/events?customer=${customer.id}`);
    const handled = (
      res.body.data as { type: string; attempts: { status: number | null }[] }[]
    ).filter((e) => HANDLED.has(e.type));
    expect(handled.length).toBeGreaterThanOrEqual(3);
    for (const e of handled) {
      expect(
        e.attempts.map((a) => a.status),
        e.type,
      ).toEqual([200]);
    }
  });
});

describe("local Stripe delivery modes", () => {
  it("ends Pro exactly once when every event is delivered twice at once, or in reverse", async () => {
    for (const mode of ["duplicate", "reverse"] as const) {
      const session = await createSession();
      const res = await subscribe(session);
      const checkout = await stripe.checkout.sessions.retrieve(res.body.session_id);
      await control("stripe/delivery", { mode, customer: checkout.customer });
      await pay(res.body.checkout_url);
      await flushWebhooks();
      const s = await waitFor(async () => {
        const st = await status(session);
        return st.tier === "pro" ? st : null;
      });
      expect(s.status).toBe("active");
      expect(await storedSubscriptions(session.user.id)).toHaveLength(1);
      await control("stripe/delivery", { mode: "normal", customer: checkout.customer });
    }
  });
});
