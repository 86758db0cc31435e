// Switches the GLOBAL database fault: lives under faults/ so it runs alone.
import { afterEach, describe, expect, it } from "vitest";
import { control, waitFor } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import {
  customerEvents,
  deliver,
  deliverEvent,
  flushWebhooks,
  forgetBilling,
  paidUser,
  pay,
  processedCount,
  status,
  storedSubscriptions,
  stripe,
  subscribe,
  waitForTier,
} from "../billing-support.ts";

const setDatabase = (mode: "down" | "none") => control("neon/fault", { mode });

describe("Stripe webhook during a database outage", () => {
  afterEach(async () => {
    await setDatabase("none");
  });

  it("answers 503 while the database is down, and the retry applies the event once", async () => {
    const user = await paidUser();
    const events = await customerEvents(user.customerId);
    const created = events.find((e) => e.type === "customer.subscription.created")!;
    await forgetBilling(
      user.session.user.id,
      events.map((e) => e.id),
    );

    await setDatabase("down");
    const failed = await deliver(JSON.stringify(created));
    expect(failed.status, failed.text).toBe(503);
    expect(failed.body.error.code).toBe("dependency_unavailable");
    await setDatabase("none");

    expect(await processedCount(created.id)).toBe(0);
    expect((await status(user.session)).tier).toBe("basic");
    await deliverEvent(created);
    await deliverEvent(created);
    expect(await processedCount(created.id)).toBe(1);
    expect(await storedSubscriptions(user.session.user.id)).toHaveLength(1);
    expect((await status(user.session)).tier).toBe("pro");
  });

  it("lets the local Stripe's own deliveries fail with 5xx and a resend after recovery apply", async () => {
    const session = await createSession();
    const started = await subscribe(session);
    const checkout = await stripe.checkout.sessions.retrieve(started.body.session_id);
    const customerId = checkout.customer as string;

    await setDatabase("down");
    try {
      await pay(started.body.checkout_url);
      await flushWebhooks();
    } finally {
      await setDatabase("none");
    }
    const res = await control(`stripe/events?customer=${customerId}`);
    const completed = (
      res.body.data as { id: string; type: string; attempts: { status: number | null }[] }[]
    ).find((e) => e.type === "checkout.session.completed")!;
    expect(completed.attempts.length).toBeGreaterThan(1);
    expect(completed.attempts.every((a) => a.status === 503)).toBe(true);
    expect((await status(session)).tier).toBe("basic");

    // Stripe's next retry (here: a resend) after the database is back.
    const resent = await control("stripe/resend", { event: completed.id });
    expect(resent.status, resent.text).toBe(200);
    await waitForTier(session, "pro");
    await flushWebhooks();
    expect(await processedCount(completed.id)).toBe(1);
    expect(await storedSubscriptions(session.user.id)).toHaveLength(1);
    await waitFor(async () => (await status(session)).status === "active");
  });
});
