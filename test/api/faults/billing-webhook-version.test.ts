// A webhook endpoint configured with an older API version (before 2025-03-31.basil) receives
// invoices that name their subscription at the top level and subscriptions that carry their
// period themselves. The Worker must apply them all the same. The endpoint's version is global
// to the local Stripe, hence this folder.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { control } from "../../support/api.ts";
import {
  flushWebhooks,
  paidUser,
  processedCount,
  status,
  waitForTier,
} from "../billing-support.ts";

const OLD_VERSION = "2025-02-24.acacia";
let url: string;

beforeEach(async () => {
  url = (await control("stripe/webhook-endpoint")).body.url as string;
  const res = await control("stripe/webhook-endpoint", { url, api_version: OLD_VERSION });
  expect(res.body.api_version).toBe(OLD_VERSION);
});

afterEach(async () => {
  await control("stripe/webhook-endpoint", { url, api_version: null });
});

describe("webhooks in an older API version than the SDK's", () => {
  it("applies checkout, a failed renewal and the end of retries from pre-basil events", async () => {
    const user = await paidUser();
    expect(await status(user.session)).toMatchObject({ tier: "pro", status: "active" });

    const failed = await control("stripe/advance", {
      subscription: user.subscriptionId,
      outcome: "renew_failed",
    });
    expect(failed.status, failed.text).toBe(200);
    await flushWebhooks();
    const invoiceEvent = (failed.body.events as { id: string; type: string }[]).find(
      (e) => e.type === "invoice.payment_failed",
    );
    expect(invoiceEvent).toBeDefined();
    // Found its subscription through the old top-level `invoice.subscription`.
    expect(await processedCount(invoiceEvent!.id)).toBe(1);
    expect(await status(user.session)).toMatchObject({ tier: "pro", status: "past_due" });

    await control("stripe/advance", { subscription: user.subscriptionId, outcome: "end_period" });
    await flushWebhooks();
    expect(await waitForTier(user.session, "basic")).toMatchObject({ status: "canceled" });
  });
});
