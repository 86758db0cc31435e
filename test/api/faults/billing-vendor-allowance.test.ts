// The chaos soak's finding 5 (docs/reliability.md): a billing request that failed on Stripe used
// up one of the user's 10 per 10 minutes, so the retries a 503 asks for met 429. A request that
// fails on a vendor now gives its allowance back; the limit still holds for requests that ran.
// (The local Stripe's API fault is a global switch, hence this folder.)
import { afterEach, describe, expect, it } from "vitest";
import { BILLING_LIMITS } from "../../../src/services/billing/admission.ts";
import { call, control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { paidUser, subscribe } from "../billing-support.ts";

const LIMIT = BILLING_LIMITS.perUserPer10Min;

afterEach(async () => {
  await control("stripe/fault", { mode: "none" });
});

describe("billing allowance when Stripe fails", () => {
  it("POST /subscribe/pro: 503s from Stripe cost no allowance; the limit still holds after", async () => {
    const s = await createSession();
    await control("stripe/fault", { mode: "error" });
    for (let i = 0; i < LIMIT + 2; i++) {
      const res = await subscribe(s);
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(503);
      expect(res.body.error.code).toBe("dependency_unavailable");
    }
    await control("stripe/fault", { mode: "none" });
    for (let i = 0; i < LIMIT; i++) {
      const res = await subscribe(s);
      expect(res.status, `request ${i + 1} once Stripe is back: ${res.text}`).toBe(200);
    }
    expect((await subscribe(s)).status).toBe(429);
  });

  it("POST /subscribe/pro: Stripe's 429 rate_limit is no outage: the 11th request is 429", async () => {
    // Attacker review, finding 3: a 429 used to be given back like an outage, so a loop that
    // kept Stripe saturated never met the per-user limit.
    const s = await createSession();
    await control("stripe/fault", {
      mode: "rate_limit",
      method: "POST",
      path: "/v1/checkout/sessions",
    });
    for (let i = 0; i < LIMIT; i++) {
      const res = await subscribe(s);
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(503);
      expect(res.body.error.code).toBe("dependency_unavailable");
    }
    const over = await subscribe(s);
    expect(over.status, over.text).toBe(429);
    expect(Number(over.headers.get("retry-after"))).toBeGreaterThan(0);
  });

  it("POST /subscription/cancel: 503s from Stripe cost no allowance", async () => {
    const { session, subscriptionId } = await paidUser();
    // Only the cancel's own Stripe call fails; the session check and the account read work.
    await control("stripe/fault", {
      mode: "error",
      method: "POST",
      path: `/v1/subscriptions/${subscriptionId}`,
    });
    for (let i = 0; i < LIMIT + 2; i++) {
      const res = await call("POST", "/subscription/cancel", { token: session.token });
      expect(res.status, `attempt ${i + 1}: ${res.text}`).toBe(503);
    }
    await control("stripe/fault", { mode: "none" });
    const res = await call("POST", "/subscription/cancel", { token: session.token });
    expect(res.status, res.text).toBe(200);
    expect(res.body.cancel_at_period_end).toBe(true);
  });
});
