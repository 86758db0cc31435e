// The whole life of a subscription, driven by the local Stripe's clock (`/advance`), with its
// webhooks delivered twice and in reverse order: the Worker re-reads the subscription for every
// event, so what it stores follows Stripe, whatever the delivery.
import { describe, expect, it } from "vitest";
import { call, control, testEnv } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  flushWebhooks,
  pay,
  processedCount,
  status,
  stripe,
  subscribe,
  waitForTier,
} from "./billing-support.ts";

type Mode = "normal" | "duplicate" | "reverse";

const BASIC_LIMIT = Number(testEnv.BASIC_DAILY_LIMIT);
const PRO_LIMIT = Number(testEnv.PRO_DAILY_LIMIT);

async function delivery(customer: string, mode: Mode) {
  const res = await control("stripe/delivery", { mode, customer });
  expect(res.status, res.text).toBe(200);
}

async function advance(subscription: string, outcome: string) {
  const res = await control("stripe/advance", { subscription, outcome });
  expect(res.status, res.text).toBe(200);
  await flushWebhooks();
  return res.body as { events: { id: string; type: string }[] };
}

/** Waits until the stored status is `want` (the webhooks of one step have all been applied). */
async function settled(session: Parameters<typeof status>[0], want: string) {
  for (let i = 0; i < 100; i++) {
    const s = await status(session);
    if (s.status === want) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`status never became ${want}: ${JSON.stringify(await status(session))}`);
}

/** Opens Checkout through the API and pays it; answers the customer and subscription ids. */
async function checkout(session: Parameters<typeof status>[0], mode: Mode) {
  const opened = await subscribe(session);
  expect(opened.status, opened.text).toBe(200);
  const before = await stripe.checkout.sessions.retrieve(opened.body.session_id);
  const customer = before.customer as string;
  await delivery(customer, mode);
  await pay(opened.body.checkout_url);
  await flushWebhooks();
  const paid = await stripe.checkout.sessions.retrieve(opened.body.session_id);
  return { sessionId: paid.id, customer, subscription: paid.subscription as string };
}

describe("subscription lifecycle through the local Stripe's clock", () => {
  it("checkout → renewal → failed renewal → retries exhausted → resubscribe → cancel at period end", async () => {
    const session = await createSession();

    // Checkout, its events delivered in reverse (completed before created).
    const first = await checkout(session, "reverse");
    const paid = await settled(session, "active");
    expect(paid).toMatchObject({ tier: "pro", cancel_at_period_end: false });
    expect(paid.usage.daily_limit).toBe(PRO_LIMIT);

    // A paid renewal, each event delivered twice at once.
    await delivery(first.customer, "duplicate");
    const renewed = await advance(first.subscription, "renew_paid");
    await waitForPeriodAfter(session, paid.current_period_end);
    expect(await status(session)).toMatchObject({ tier: "pro", status: "active" });
    for (const e of renewed.events) {
      expect(await processedCount(e.id), e.type).toBe(
        ["invoice.payment_succeeded"].includes(e.type) ? 0 : 1,
      );
    }

    // A failed renewal: past_due keeps Pro while Stripe retries; a failed retry too.
    await delivery(first.customer, "reverse");
    await advance(first.subscription, "renew_failed");
    expect(await settled(session, "past_due")).toMatchObject({ tier: "pro" });
    await delivery(first.customer, "duplicate");
    await advance(first.subscription, "renew_failed");
    expect(await status(session)).toMatchObject({ tier: "pro", status: "past_due" });

    // Retries exhausted, "cancel the subscription": Basic.
    await advance(first.subscription, "end_period");
    const ended = await settled(session, "canceled");
    expect(ended).toMatchObject({ tier: "basic" });
    expect(ended.usage.daily_limit).toBe(BASIC_LIMIT);

    // Resubscribing works at once: a fresh session, a new subscription, Pro again.
    const second = await checkout(session, "duplicate");
    expect(second.sessionId).not.toBe(first.sessionId);
    expect(second.subscription).not.toBe(first.subscription);
    expect(second.customer).toBe(first.customer);
    expect(await waitForTier(session, "pro")).toMatchObject({ status: "active" });

    // Cancel at period end: still Pro until Stripe ends the period, then Basic.
    await delivery(first.customer, "reverse");
    const cancel = await call("POST", "/subscription/cancel", { token: session.token });
    expect(cancel.status, cancel.text).toBe(200);
    expect(cancel.body).toMatchObject({ tier: "pro", cancel_at_period_end: true });
    await flushWebhooks();
    expect(await status(session)).toMatchObject({
      tier: "pro",
      status: "active",
      cancel_at_period_end: true,
    });
    await advance(second.subscription, "end_period");
    expect(await settled(session, "canceled")).toMatchObject({ tier: "basic" });

    // Every delivery was applied once, whatever the number of copies.
    const events = await control(`stripe/events?customer=${encodeURIComponent(first.customer)}`);
    const views = events.body.data as { id: string; type: string; attempts: { copy: number }[] }[];
    expect(views.some((v) => v.attempts.some((a) => a.copy > 0))).toBe(true);
  });

  it("retries exhausted with 'mark the subscription as unpaid': Basic, and no second checkout", async () => {
    const session = await createSession();
    const { customer, subscription } = await checkout(session, "normal");
    await settled(session, "active");
    await delivery(customer, "reverse");
    await advance(subscription, "renew_failed");
    expect(await settled(session, "past_due")).toMatchObject({ tier: "pro" });
    await advance(subscription, "mark_unpaid");
    expect(await settled(session, "unpaid")).toMatchObject({ tier: "basic" });
    const again = await subscribe(session);
    expect(again.status, again.text).toBe(409);
    expect(again.body.error.code).toBe("already_subscribed");
  });
});

async function waitForPeriodAfter(session: Parameters<typeof status>[0], previous: string | null) {
  for (let i = 0; i < 100; i++) {
    const s = await status(session);
    if (s.current_period_end && previous && s.current_period_end > previous) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("the renewal never reached the stored period");
}
