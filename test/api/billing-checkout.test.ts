import { describe, expect, it } from "vitest";
import { call, testEnv, workerUrl } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import { paidUser, stripe, subscribe } from "./billing-support.ts";

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
    const later = await subscribe(session, { cancel_url: "http://localhost:3000/other" });
    const laterSession = await stripe.checkout.sessions.retrieve(later.body.session_id);
    expect(laterSession.customer).toBe(sessions[0]!.customer);
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
