// Issue 12 leftovers: the billing endpoints that call Stripe are rate-limited per user (counted
// after validation, never for a revoked session), and a revoked session reaches no Stripe call
// and no write (the session check rides in their first round).
import { describe, expect, it } from "vitest";
import { call, uniqueClientIp } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { paidUser, stripe, subscribe } from "./billing-support.ts";

const LIMIT = 10;

const login = async (mobile_number: string, password: string) => {
  const res = await call("POST", "/auth/login", {
    body: { mobile_number, password },
    headers: { "cf-connecting-ip": uniqueClientIp() },
  });
  expect(res.status, res.text).toBe(200);
  return res.body.token as string;
};

const logout = async (s: TestSession) => {
  const out = await call("POST", "/auth/logout", {
    token: s.token,
    body: { refresh_token: s.refresh_token },
  });
  expect(out.status).toBe(204);
};

describe("per-user limits of the Stripe-calling endpoints", () => {
  it("POST /subscribe/pro: invalid requests do not count; the 11th valid one is 429 with Retry-After", async () => {
    const s = await createSession();
    for (let i = 0; i < 15; i++) {
      const bad = await subscribe(s, { success_url: "https://evil.example.com/" });
      expect(bad.status).toBe(400);
      const unknown = await subscribe(s, { price: "price_free" });
      expect(unknown.status).toBe(400);
    }
    for (let i = 0; i < LIMIT; i++) {
      const res = await subscribe(s);
      expect(res.status, `request ${i + 1}: ${res.text}`).toBe(200);
    }
    const limited = await subscribe(s);
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(Number(limited.headers.get("retry-after"))).toBeLessThanOrEqual(600);
    // Per user: someone else is not limited by it.
    expect((await subscribe(await createSession())).status).toBe(200);
  });

  it("POST /subscription/cancel and /subscription/portal count separately per user", async () => {
    const s = await createSession();
    for (let i = 0; i < LIMIT; i++) {
      const res = await call("POST", "/subscription/cancel", { token: s.token });
      expect(res.status, res.text).toBe(409);
    }
    const limited = await call("POST", "/subscription/cancel", { token: s.token });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toMatch(/^\d+$/);
    // The portal's own budget is untouched by the cancels.
    const portal = await call("POST", "/subscription/portal", { token: s.token });
    expect(portal.status).toBe(409);
    for (let i = 1; i < LIMIT; i++) {
      await call("POST", "/subscription/portal", { token: s.token });
    }
    const portalLimited = await call("POST", "/subscription/portal", { token: s.token });
    expect(portalLimited.status).toBe(429);
    expect(portalLimited.body.error.code).toBe("rate_limited");
  });

  it("a revoked session's requests do not use up its owner's allowance", async () => {
    const s = await createSession({ password: "correct horse battery" });
    const other = await login(s.mobile_number, "correct horse battery");
    await logout(s);
    for (let i = 0; i < LIMIT + 5; i++) {
      expect((await subscribe(s)).status).toBe(401);
    }
    for (let i = 0; i < LIMIT; i++) {
      const res = await call("POST", "/subscribe/pro", { token: other });
      expect(res.status, `request ${i + 1}: ${res.text}`).toBe(200);
    }
  });
});

describe("a revoked session reaches no Stripe call and no write", () => {
  it("POST /subscribe/pro creates no Checkout Session", async () => {
    const s = await createSession();
    const first = await subscribe(s);
    expect(first.status).toBe(200);
    const customer = (await stripe.checkout.sessions.retrieve(first.body.session_id))
      .customer as string;
    const before = await stripe.checkout.sessions.list({ customer, limit: 100 });
    await logout(s);
    // Another success_url: a new idempotency key, so a call that reached Stripe would create one.
    const res = await subscribe(s, { success_url: "http://localhost:3000/revoked" });
    expect(res.status).toBe(401);
    const after = await stripe.checkout.sessions.list({ customer, limit: 100 });
    expect(after.data.map((c) => c.id)).toEqual(before.data.map((c) => c.id));
    expect(after.data.find((c) => c.id === first.body.session_id)?.status).toBe("open");
  });

  it("POST /subscription/cancel leaves the subscription running", async () => {
    const paid = await paidUser();
    await logout(paid.session);
    const res = await call("POST", "/subscription/cancel", { token: paid.session.token });
    expect(res.status).toBe(401);
    const sub = await stripe.subscriptions.retrieve(paid.subscriptionId);
    expect(sub.cancel_at_period_end).toBe(false);
  });

  it("POST /subscription/portal opens no portal session", async () => {
    const paid = await paidUser();
    await logout(paid.session);
    const res = await call("POST", "/subscription/portal", { token: paid.session.token });
    expect(res.status).toBe(401);
    expect(res.text).not.toContain("billing.stripe.com");
  });
});
