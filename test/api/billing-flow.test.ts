import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { subscriptions, users } from "../../src/db/schema/index.ts";
import { call, control, testEnv, waitFor } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  db,
  flushWebhooks,
  paidUser,
  pay,
  status,
  storedSubscriptions,
  stripe,
  subscribe,
  twoPaidSubscriptions,
  waitForTier,
} from "./billing-support.ts";

const BASIC_LIMIT = Number(testEnv.BASIC_DAILY_LIMIT);
const PRO_LIMIT = Number(testEnv.PRO_DAILY_LIMIT);

describe("GET /subscription/status", () => {
  it("shows Basic, no subscription and the Basic daily limit for a new user", async () => {
    const session = await createSession();
    const s = await status(session);
    expect(s).toEqual({
      tier: "basic",
      status: null,
      price_id: null,
      current_period_end: null,
      cancel_at_period_end: false,
      usage: { used_today: 0, daily_limit: BASIC_LIMIT, resets_at: expect.any(String) },
    });
    const resetsAt = new Date(s.usage.resets_at).getTime();
    expect(resetsAt).toBeGreaterThan(Date.now());
    expect(resetsAt - Date.now()).toBeLessThanOrEqual(86_400_000);
  });

  it("answers 401 without a bearer token", async () => {
    expect((await call("GET", "/subscription/status")).status).toBe(401);
  });
});

describe("subscription lifecycle through the local Stripe", () => {
  it("subscribe → pay → Pro with the Pro limit → cancel → period end → Basic", async () => {
    const session = await createSession();
    const started = await subscribe(session);
    expect(started.status, started.text).toBe(200);

    const paid = await pay(started.body.checkout_url);
    expect(paid.headers.get("location")).toContain(`session_id=${started.body.session_id}`);

    const pro = await waitForTier(session, "pro");
    expect(pro).toMatchObject({ status: "active", cancel_at_period_end: false });
    expect(pro.usage.daily_limit).toBe(PRO_LIMIT);
    expect(new Date(pro.current_period_end!).getTime()).toBeGreaterThan(Date.now());

    const canceled = await call("POST", "/subscription/cancel", { token: session.token });
    expect(canceled.status, canceled.text).toBe(200);
    expect(canceled.body).toMatchObject({
      tier: "pro",
      status: "active",
      cancel_at_period_end: true,
      current_period_end: pro.current_period_end,
    });
    const again = await call("POST", "/subscription/cancel", { token: session.token });
    expect(again.status).toBe(200);
    expect(again.body.cancel_at_period_end).toBe(true);
    expect(await status(session)).toMatchObject({ tier: "pro", cancel_at_period_end: true });

    const checkout = await stripe.checkout.sessions.retrieve(started.body.session_id);
    const subscription = await stripe.subscriptions.retrieve(checkout.subscription as string);
    expect(subscription.cancel_at_period_end).toBe(true);
    const ended = await control("stripe/advance", {
      subscription: subscription.id,
      outcome: "end_period",
    });
    expect(ended.status, ended.text).toBe(200);

    const basic = await waitForTier(session, "basic");
    expect(basic.status).toBe("canceled");
    expect(basic.usage.daily_limit).toBe(BASIC_LIMIT);

    const none = await call("POST", "/subscription/cancel", { token: session.token });
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe("no_subscription");
    // Canceled is not terminal for the user: they can subscribe again.
    expect((await subscribe(session)).status).toBe(200);
  });

  it("renews: a paid renewal moves the period on, a failed one keeps Pro while past_due", async () => {
    const session = await createSession();
    const started = await subscribe(session);
    await pay(started.body.checkout_url);
    const first = await waitForTier(session, "pro");
    const subscriptionId = (await stripe.checkout.sessions.retrieve(started.body.session_id))
      .subscription as string;

    await control("stripe/advance", { subscription: subscriptionId, outcome: "renew_paid" });
    const renewed = await waitFor(async () => {
      const s = await status(session);
      return s.current_period_end !== first.current_period_end ? s : null;
    });
    expect(renewed).toMatchObject({ tier: "pro", status: "active" });
    expect(new Date(renewed.current_period_end!).getTime()).toBeGreaterThan(
      new Date(first.current_period_end!).getTime(),
    );

    await control("stripe/advance", { subscription: subscriptionId, outcome: "renew_failed" });
    const pastDue = await waitFor(async () => {
      const s = await status(session);
      return s.status === "past_due" ? s : null;
    });
    expect(pastDue.tier).toBe("pro");
    expect(pastDue.usage.daily_limit).toBe(PRO_LIMIT);

    // Dunning gives up: Stripe cancels the past_due subscription at period end.
    await control("stripe/advance", { subscription: subscriptionId, outcome: "end_period" });
    const basic = await waitForTier(session, "basic");
    expect(basic.status).toBe("canceled");
  });

  it("keeps Pro while either of two subscriptions (a user who paid twice) is active", async () => {
    const session = await createSession();
    const subs = await twoPaidSubscriptions(session);
    expect((await status(session)).tier).toBe("pro");
    // Once Pro, a third checkout is refused.
    expect((await subscribe(session)).status).toBe(409);

    await stripe.subscriptions.update(subs[0]!, { cancel_at_period_end: true });
    await control("stripe/advance", { subscription: subs[0], outcome: "end_period" });
    await flushWebhooks();
    await waitFor(async () =>
      (await storedSubscriptions(session.user.id)).some((s) => s.status === "canceled"),
    );
    expect(await status(session)).toMatchObject({ tier: "pro", status: "active" });

    await stripe.subscriptions.update(subs[1]!, { cancel_at_period_end: true });
    await control("stripe/advance", { subscription: subs[1], outcome: "end_period" });
    expect((await waitForTier(session, "basic")).status).toBe("canceled");
  });

  it("cancels each of two paid subscriptions in turn, and reports the one still renewing", async () => {
    const session = await createSession();
    const subs = await twoPaidSubscriptions(session);

    const first = await call("POST", "/subscription/cancel", { token: session.token });
    expect(first.status).toBe(200);
    expect(first.body.cancel_at_period_end).toBe(true);
    // The other subscription still renews: that is what the status must say.
    expect(await status(session)).toMatchObject({ tier: "pro", cancel_at_period_end: false });

    const second = await call("POST", "/subscription/cancel", { token: session.token });
    expect(second.status).toBe(200);
    expect(second.body.cancel_at_period_end).toBe(true);
    const inStripe = await Promise.all(subs.map((id) => stripe.subscriptions.retrieve(id)));
    expect(inStripe.map((s) => s.cancel_at_period_end)).toEqual([true, true]);
    expect(await status(session)).toMatchObject({ tier: "pro", cancel_at_period_end: true });
  });

  it("answers 409 and stores Stripe's state when Stripe already ended the subscription", async () => {
    const user = await paidUser();
    await stripe.subscriptions.cancel(user.subscriptionId);
    await flushWebhooks();
    await waitForTier(user.session, "basic");
    // As if the customer.subscription.deleted delivery had not reached the Worker yet.
    await db.batch([
      db
        .update(subscriptions)
        .set({ status: "active" })
        .where(eq(subscriptions.id, user.subscriptionId)),
      db.update(users).set({ tier: "pro" }).where(eq(users.id, user.session.user.id)),
    ]);

    const res = await call("POST", "/subscription/cancel", { token: user.session.token });
    expect(res.status, res.text).toBe(409);
    expect(res.body.error.code).toBe("no_subscription");
    expect(await status(user.session)).toMatchObject({ tier: "basic", status: "canceled" });
  });

  it("answers 409 no_subscription when cancelling without a subscription", async () => {
    const session = await createSession();
    const res = await call("POST", "/subscription/cancel", { token: session.token });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("no_subscription");
  });
});
