// Stripe's API failing while webhooks still arrive (the local Stripe's API fault is a global
// switch, hence this folder): what was applied is acknowledged, what was not is retried.
import { afterEach, describe, expect, it } from "vitest";
import { control } from "../../support/api.ts";
import {
  customerEvents,
  deliver,
  envelope,
  paidUser,
  processedCount,
  status,
} from "../billing-support.ts";

afterEach(async () => {
  await control("stripe/fault", { mode: "none" });
});

describe("webhooks while Stripe's API fails", () => {
  it("acknowledges a redelivered applied event; a new one is 503 and applies once Stripe is back", async () => {
    const user = await paidUser();
    const [applied] = (await customerEvents(user.customerId)).filter(
      (e) => e.type === "customer.subscription.created",
    );
    expect(applied).toBeDefined();
    const fresh = envelope("customer.subscription.updated", {
      id: user.subscriptionId,
      object: "subscription",
      customer: user.customerId,
      status: "active",
    });

    await control("stripe/fault", { mode: "error" });
    const again = await deliver(JSON.stringify(applied));
    expect(again.status, again.text).toBe(200);
    expect(again.body).toEqual({ received: true });
    const refused = await deliver(JSON.stringify(fresh));
    expect(refused.status, refused.text).toBe(503);
    expect(refused.body.error.code).toBe("dependency_unavailable");
    expect(await processedCount(fresh.id)).toBe(0);

    await control("stripe/fault", { mode: "none" });
    expect((await deliver(JSON.stringify(fresh))).status).toBe(200);
    expect(await processedCount(fresh.id)).toBe(1);
    expect((await status(user.session)).tier).toBe("pro");
  });
});
