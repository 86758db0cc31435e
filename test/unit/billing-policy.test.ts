import { describe, expect, it } from "vitest";
import { httpOf } from "../../src/errors/http.ts";
import { ValidationError } from "../../src/errors/index.ts";
import {
  allowedRedirectOrigins,
  CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS,
  checkoutIdempotencyKey,
  checkRedirectUrl,
  isTerminalStatus,
  storedPriceId,
  tierForStatus,
} from "../../src/services/billing/policy.ts";
import { pickUser } from "../../src/services/billing/webhooks.ts";

describe("tierForStatus", () => {
  it.each([
    ["active", "pro"],
    ["trialing", "pro"],
    ["past_due", "pro"],
    ["canceled", "basic"],
    ["unpaid", "basic"],
    ["incomplete", "basic"],
    ["incomplete_expired", "basic"],
    ["paused", "basic"],
    [null, "basic"],
  ] as const)("maps status %s to %s", (status, tier) => {
    expect(tierForStatus(status)).toBe(tier);
  });

  it("treats canceled and incomplete_expired as terminal, nothing else", () => {
    expect(isTerminalStatus("canceled")).toBe(true);
    expect(isTerminalStatus("incomplete_expired")).toBe(true);
    expect(isTerminalStatus("unpaid")).toBe(false);
    expect(isTerminalStatus("past_due")).toBe(false);
  });
});

describe("checkRedirectUrl", () => {
  const allowed = allowedRedirectOrigins(
    "https://api.example.com/base",
    " https://app.example.com , not a url,http://localhost:3000/x",
  );

  it("accepts APP_URL's origin and every configured origin", () => {
    expect([...allowed].sort()).toEqual([
      "http://localhost:3000",
      "https://api.example.com",
      "https://app.example.com",
    ]);
    expect(checkRedirectUrl("success_url", "https://app.example.com/done", allowed)).toBe(
      "https://app.example.com/done",
    );
  });

  it("keeps Stripe's {CHECKOUT_SESSION_ID} placeholder literal", () => {
    expect(
      checkRedirectUrl(
        "success_url",
        "https://api.example.com/ok?session_id={CHECKOUT_SESSION_ID}",
        allowed,
      ),
    ).toBe("https://api.example.com/ok?session_id={CHECKOUT_SESSION_ID}");
  });

  it.each([
    "https://evil.example.com/",
    "https://app.example.com.evil.com/",
    "http://app.example.com/",
    "javascript:alert(1)",
    "//app.example.com/x",
    "/relative",
    "https://app.example.com@evil.com/",
  ])("refuses %s with a 400", (url) => {
    let thrown: unknown;
    try {
      checkRedirectUrl("cancel_url", url, allowed);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    expect((thrown as ValidationError).code).toBe("invalid_request");
    expect(httpOf(thrown as ValidationError).status).toBe(400);
  });
});

describe("storedPriceId", () => {
  it("stores the Pro price when any item bills it, else the first item's price", () => {
    expect(
      storedPriceId({ priceId: "price_a", priceIds: ["price_a", "price_pro"] }, "price_pro"),
    ).toBe("price_pro");
    expect(storedPriceId({ priceId: "price_a", priceIds: ["price_a"] }, "price_pro")).toBe(
      "price_a",
    );
    expect(storedPriceId({ priceId: null, priceIds: [] }, "price_pro")).toBeNull();
  });
});

describe("checkoutIdempotencyKey", () => {
  const urls = {
    customerId: "cus_1",
    successUrl: "https://a.example/ok",
    cancelUrl: "https://a.example/no",
  };
  const t0 = new Date(Date.UTC(2026, 0, 1, 12, 0, 0));

  it("is the same for a retried click within the window", async () => {
    const later = new Date(t0.getTime() + (CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS - 1) * 1000);
    expect(await checkoutIdempotencyKey("u1", urls, later)).toBe(
      await checkoutIdempotencyKey("u1", urls, t0),
    );
  });

  it("names the stale session it follows, so a replay of a paid session leads to a fresh one", async () => {
    const base = await checkoutIdempotencyKey("u1", urls, t0);
    const after = await checkoutIdempotencyKey("u1", urls, t0, "cs_paid");
    expect(after).toBe(`${base}:after:cs_paid`);
    expect(after.length).toBeLessThanOrEqual(255);
  });

  it("differs for another user, customer, other URLs and the next window", async () => {
    const base = await checkoutIdempotencyKey("u1", urls, t0);
    const next = new Date(t0.getTime() + CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS * 1000);
    expect(await checkoutIdempotencyKey("u2", urls, t0)).not.toBe(base);
    expect(await checkoutIdempotencyKey("u1", { ...urls, customerId: "cus_2" }, t0)).not.toBe(base);
    expect(
      await checkoutIdempotencyKey("u1", { ...urls, cancelUrl: "https://a.example/x" }, t0),
    ).not.toBe(base);
    expect(await checkoutIdempotencyKey("u1", urls, next)).not.toBe(base);
  });
});

describe("pickUser", () => {
  const subscription = {
    id: "sub_1",
    customerId: "cus_1",
    status: "active",
    priceId: null,
    priceIds: [],
    currentPeriodEnd: null,
    cancelAtPeriodEnd: false,
    userId: "meta-user",
  };
  const event = {
    id: "evt_1",
    type: "customer.subscription.updated",
    created: 1,
    subscriptionId: "sub_1",
    customerId: "cus_1",
    userId: "ref-user",
  };

  it("prefers the owner of the customer id over metadata", () => {
    const users = [
      { id: "meta-user", stripeCustomerId: null },
      { id: "owner", stripeCustomerId: "cus_1" },
    ];
    expect(pickUser(users, subscription, event)).toBe("owner");
  });

  it("falls back to the metadata user, then to client_reference_id", () => {
    expect(
      pickUser(
        [
          { id: "ref-user", stripeCustomerId: null },
          { id: "meta-user", stripeCustomerId: null },
        ],
        subscription,
        event,
      ),
    ).toBe("meta-user");
    expect(pickUser([{ id: "ref-user", stripeCustomerId: null }], subscription, event)).toBe(
      "ref-user",
    );
  });

  it("answers null when nobody matches", () => {
    expect(pickUser([{ id: "someone", stripeCustomerId: "cus_2" }], subscription, event)).toBe(
      null,
    );
  });
});
