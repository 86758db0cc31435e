// Stripe saves a 500 under its idempotency key and replays it for 24 hours: a transient failure
// while creating the user's customer must cost one click, never a day, and never a second
// customer. The local Stripe's fault is a global switch, hence this folder.
import { afterEach, describe, expect, it } from "vitest";
import { call, control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { stripe, subscribe } from "../billing-support.ts";

afterEach(async () => {
  await control("stripe/fault", { mode: "none" });
});

async function customersOf(userId: string) {
  const found = await stripe.customers.search({ query: `metadata['user_id']:'${userId}'` });
  return found.data.map((c) => c.id);
}

const createCustomerFault = (when: "before" | "after") =>
  control("stripe/fault", {
    mode: "error",
    count: 1,
    method: "POST",
    path: "/v1/customers",
    when,
  });

describe("a Stripe 500 while creating the customer", () => {
  it("fails that checkout with 503 and the next click subscribes", async () => {
    const session = await createSession();
    await createCustomerFault("before");
    const failed = await subscribe(session);
    expect(failed.status, failed.text).toBe(503);
    expect(failed.body.error.code).toBe("dependency_unavailable");
    expect(failed.headers.get("retry-after")).toBeTruthy();

    // With a key fixed per user, Stripe would replay that 500 here for 24 hours.
    const next = await subscribe(session);
    expect(next.status, next.text).toBe(200);
    const checkout = await stripe.checkout.sessions.retrieve(next.body.session_id);
    expect(await customersOf(session.user.id)).toEqual([checkout.customer]);
  });

  it("reuses the customer Stripe created before answering 500: the user has one customer", async () => {
    const session = await createSession();
    await createCustomerFault("after");
    const failed = await subscribe(session);
    expect(failed.status, failed.text).toBe(503);
    const [created, ...more] = await customersOf(session.user.id);
    expect(created).toMatch(/^cus_/);
    expect(more).toEqual([]);

    const next = await subscribe(session);
    expect(next.status, next.text).toBe(200);
    const checkout = await stripe.checkout.sessions.retrieve(next.body.session_id);
    expect(checkout.customer).toBe(created);
    expect(await customersOf(session.user.id)).toEqual([created]);
  });
});

describe("a Stripe 500 while creating the Checkout Session", () => {
  it("fails that click with 503; the next click, with the same key, gets a session at once", async () => {
    const session = await createSession();
    // The customer exists already: only the session create fails.
    const first = await subscribe(session, { success_url: "http://localhost:3000/first" });
    expect(first.status, first.text).toBe(200);

    await control("stripe/fault", {
      mode: "error",
      count: 1,
      method: "POST",
      path: "/v1/checkout/sessions",
    });
    const failed = await subscribe(session);
    expect(failed.status, failed.text).toBe(503);
    // Same URLs within the key's 60 s window: Stripe would replay the saved 500.
    const next = await subscribe(session);
    expect(next.status, next.text).toBe(200);
    const fresh = await stripe.checkout.sessions.retrieve(next.body.session_id);
    expect(fresh.status).toBe("open");
    // A double click after the failure converges on that session.
    const twice = await subscribe(session);
    expect(twice.body.session_id).toBe(next.body.session_id);
    expect((await stripe.checkout.sessions.retrieve(first.body.session_id)).status).toBe("expired");
  });
});

describe("POST /subscription/portal without saved portal settings", () => {
  afterEach(async () => {
    await control("stripe/portal-configuration", { saved: true });
  });

  it("answers 503 billing_portal_unavailable telling the operator what to save", async () => {
    const session = await createSession();
    expect((await subscribe(session)).status).toBe(200);
    await control("stripe/portal-configuration", { saved: false });
    const res = await control("stripe/portal-configuration");
    expect(res.body).toEqual({ saved: false });

    const portal = await call("POST", "/subscription/portal", { token: session.token });
    expect(portal.status, portal.text).toBe(503);
    expect(portal.body.error.code).toBe("billing_portal_unavailable");
    expect(portal.body.error.message).toContain("Customer portal");
    expect(portal.headers.get("retry-after")).toBe("300");

    await control("stripe/portal-configuration", { saved: true });
    const ok = await call("POST", "/subscription/portal", { token: session.token });
    expect(ok.status, ok.text).toBe(200);
  });
});
