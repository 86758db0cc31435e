import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import { subscriptions, users } from "../../src/db/schema/index.ts";
import { call, testEnv, workerUrl } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  db,
  flushWebhooks,
  paidUser,
  pay,
  storedSubscriptions,
  stripe,
  subscribe,
  waitForTier,
} from "./billing-support.ts";

describe("POST /subscribe/pro", () => {
  it("answers a Checkout Session for Pro that carries the user id, on the local Stripe", async () => {
    const session = await createSession();
    const res = await subscribe(session);
    expect(res.status, res.text).toBe(200);
    expect(res.body).toEqual({ checkout_url: expect.any(String), session_id: expect.any(String) });

    const checkout = await stripe.checkout.sessions.retrieve(res.body.session_id, {
      expand: ["line_items"],
    });
    expect(checkout.url).toBe(res.body.checkout_url);
    expect(checkout.mode).toBe("subscription");
    expect(checkout.client_reference_id).toBe(session.user.id);
    expect(checkout.metadata).toEqual({ user_id: session.user.id });
    expect(checkout.line_items?.data.map((l) => [l.price?.id, l.quantity])).toEqual([
      [testEnv.STRIPE_PRO_PRICE_ID, 1],
    ]);
    expect(checkout.success_url).toBe(
      `${workerUrl}/?checkout=success&session_id={CHECKOUT_SESSION_ID}`,
    );
    expect(checkout.cancel_url).toBe(`${workerUrl}/?checkout=canceled`);
    const customer = await stripe.customers.retrieve(checkout.customer as string);
    expect(customer).toMatchObject({ metadata: { user_id: session.user.id } });
  });

  it("returns the same session for a retried click", async () => {
    const session = await createSession();
    const window = (ms: number) => Math.floor(ms / 60_000);
    // The key has a 60 s bucket: redo the pair if it happened to straddle a bucket boundary.
    for (;;) {
      const started = Date.now();
      const first = await subscribe(session);
      const second = await subscribe(session);
      if (window(started) !== window(Date.now())) continue;
      expect(second.status).toBe(200);
      expect(second.body.session_id).toBe(first.body.session_id);
      // The retry must not expire the session it was handed back.
      expect((await stripe.checkout.sessions.retrieve(first.body.session_id)).status).toBe("open");
      break;
    }
  });

  it("creates one Stripe customer per user, even for parallel first checkouts", async () => {
    const session = await createSession();
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        subscribe(session, { success_url: `http://localhost:3000/done/${i}` }),
      ),
    );
    expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
    const sessions = await Promise.all(
      results.map((r) => stripe.checkout.sessions.retrieve(r.body.session_id)),
    );
    expect(new Set(sessions.map((s) => s.id)).size).toBe(5);
    expect(new Set(sessions.map((s) => s.customer)).size).toBe(1);
    // Creates that lost the race deleted their customer: Stripe holds one for the user.
    const found = await stripe.customers.search({
      query: `metadata['user_id']:'${session.user.id}'`,
    });
    expect(found.data.map((c) => c.id)).toEqual([sessions[0]!.customer]);
    const later = await subscribe(session, { cancel_url: "http://localhost:3000/other" });
    const laterSession = await stripe.checkout.sessions.retrieve(later.body.session_id);
    expect(laterSession.customer).toBe(sessions[0]!.customer);
  });

  it("expires the user's other open session, so two tabs cannot both be paid", async () => {
    const session = await createSession();
    const a = await subscribe(session, { success_url: "http://localhost:3000/a" });
    const b = await subscribe(session, { success_url: "http://localhost:3000/b" });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(b.body.session_id).not.toBe(a.body.session_id);
    expect((await stripe.checkout.sessions.retrieve(a.body.session_id)).status).toBe("expired");
    expect((await stripe.checkout.sessions.retrieve(b.body.session_id)).status).toBe("open");

    // The first tab's Pay button is refused by Stripe; the second one subscribes.
    const stale = await fetch(a.body.checkout_url, { method: "POST", redirect: "manual" });
    expect(stale.status).toBe(410);
    await pay(b.body.checkout_url);
    await flushWebhooks();
    await waitForTier(session, "pro");
    expect(await storedSubscriptions(session.user.id)).toHaveLength(1);
  });

  it("gives a fresh session to a user resubscribing right after the subscription ended", async () => {
    const user = await paidUser();
    // Ended at once (an immediate cancel in the portal), within the checkout key's 60 s window.
    await stripe.subscriptions.cancel(user.subscriptionId);
    await flushWebhooks();
    await waitForTier(user.session, "basic");

    const res = await subscribe(user.session);
    expect(res.status, res.text).toBe(200);
    expect(res.body.session_id).not.toBe(user.checkoutSessionId);
    const fresh = await stripe.checkout.sessions.retrieve(res.body.session_id);
    expect(fresh.status).toBe("open");
    await pay(res.body.checkout_url);
    await flushWebhooks();
    await waitForTier(user.session, "pro");
  });

  it("gives a fresh session when the one the key answers was expired by another tab", async () => {
    const session = await createSession();
    const a = await subscribe(session, { success_url: "http://localhost:3000/a" });
    const b = await subscribe(session, { success_url: "http://localhost:3000/b" });
    expect((await stripe.checkout.sessions.retrieve(a.body.session_id)).status).toBe("expired");
    const again = await subscribe(session, { success_url: "http://localhost:3000/a" });
    expect(again.status, again.text).toBe(200);
    expect(again.body.session_id).not.toBe(a.body.session_id);
    expect((await stripe.checkout.sessions.retrieve(again.body.session_id)).status).toBe("open");
    expect((await stripe.checkout.sessions.retrieve(b.body.session_id)).status).toBe("expired");
    // A double click on it still gets that same session back.
    const twice = await subscribe(session, { success_url: "http://localhost:3000/a" });
    expect(twice.body.session_id).toBe(again.body.session_id);
  });

  it("refuses a second checkout while an unpaid subscription still exists", async () => {
    const user = await paidUser();
    // Stripe gave up collecting: `unpaid` is Basic, but the subscription is not over.
    await db.batch([
      db
        .update(subscriptions)
        .set({ status: "unpaid" })
        .where(eq(subscriptions.id, user.subscriptionId)),
      db.update(users).set({ tier: "basic" }).where(eq(users.id, user.session.user.id)),
    ]);
    const res = await subscribe(user.session);
    expect(res.status, res.text).toBe(409);
    expect(res.body.error.code).toBe("already_subscribed");
    expect(res.body.error.message).toContain("unpaid");
  });

  it("replaces a stored customer Stripe no longer knows, once, and checks out with the new one", async () => {
    const session = await createSession();
    const gone = `cus_gone${crypto.randomUUID().replaceAll("-", "").slice(0, 14)}`;
    await db.update(users).set({ stripeCustomerId: gone }).where(eq(users.id, session.user.id));

    const portal = await call("POST", "/subscription/portal", { token: session.token });
    expect(portal.status, portal.text).toBe(409);
    expect(portal.body.error.code).toBe("no_subscription");

    const res = await subscribe(session);
    expect(res.status, res.text).toBe(200);
    const [stored] = await db
      .select({ customerId: users.stripeCustomerId })
      .from(users)
      .where(eq(users.id, session.user.id));
    expect(stored?.customerId).toMatch(/^cus_/);
    expect(stored?.customerId).not.toBe(gone);
    const checkout = await stripe.checkout.sessions.retrieve(res.body.session_id);
    expect(checkout.customer).toBe(stored?.customerId);
    // The replacement is kept: the next checkout reuses it.
    const again = await subscribe(session, { success_url: "http://localhost:3000/again" });
    const next = await stripe.checkout.sessions.retrieve(again.body.session_id);
    expect(next.customer).toBe(stored?.customerId);
  });

  it("accepts redirect URLs on APP_URL's origin and on ALLOWED_REDIRECT_ORIGINS", async () => {
    const session = await createSession();
    const res = await subscribe(session, {
      success_url: "http://localhost:3000/billing/done?session_id={CHECKOUT_SESSION_ID}",
      cancel_url: `${workerUrl}/billing/canceled`,
    });
    expect(res.status, res.text).toBe(200);
    const checkout = await stripe.checkout.sessions.retrieve(res.body.session_id);
    expect(checkout.success_url).toBe(
      "http://localhost:3000/billing/done?session_id={CHECKOUT_SESSION_ID}",
    );
    expect(checkout.cancel_url).toBe(`${workerUrl}/billing/canceled`);
  });

  it("refuses redirect URLs on other origins with 400 (no open redirect)", async () => {
    const session = await createSession();
    for (const body of [
      { success_url: "https://evil.example.com/phish" },
      { cancel_url: "javascript:alert(1)" },
      { success_url: "http://localhost:3001/" },
      { cancel_url: "/relative" },
    ]) {
      const res = await subscribe(session, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
  });

  it("refuses client-chosen price, quantity, tier or user with 400", async () => {
    const session = await createSession();
    for (const body of [
      { price: "price_cheap" },
      { quantity: -1 },
      { tier: "pro" },
      { user_id: "someone-else" },
    ]) {
      const res = await subscribe(session, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
  });

  it("answers 401 without a bearer token", async () => {
    const res = await call("POST", "/subscribe/pro");
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
  });

  it("answers 409 already_subscribed once the user is Pro", async () => {
    const user = await paidUser();
    const res = await subscribe(user.session);
    expect(res.status, res.text).toBe(409);
    expect(res.body.error.code).toBe("already_subscribed");
  });
});

describe("POST /subscription/portal", () => {
  it("answers a billing portal URL for the user's customer", async () => {
    const user = await paidUser();
    const res = await call("POST", "/subscription/portal", { token: user.session.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/stripe\/portal\//);
  });

  it("refuses a return_url on another origin and answers 409 before any checkout", async () => {
    const user = await paidUser();
    const bad = await call("POST", "/subscription/portal", {
      token: user.session.token,
      body: { return_url: "https://evil.example.com/" },
    });
    expect(bad.status).toBe(400);
    const fresh = await createSession();
    const none = await call("POST", "/subscription/portal", { token: fresh.token });
    expect(none.status).toBe(409);
    expect(none.body.error.code).toBe("no_subscription");
  });
});
