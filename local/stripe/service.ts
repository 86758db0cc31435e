import { Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import { StripeApi } from "./api.ts";
import { Billing } from "./billing.ts";
import { type ApiFault, createStripeControl } from "./control.ts";
import { mountPages } from "./pages.ts";
import { WebhookDispatcher } from "./webhooks.ts";

/**
 * Local Stripe: the `/v1` API as stripe-node calls it, hosted Checkout and portal pages under
 * `/stripe/...`, and signed webhook delivery to `config.stripeWebhookUrl`.
 */
export async function createStripeService(config: LocalCloudConfig): Promise<LocalService> {
  const webhooks = new WebhookDispatcher({
    url: config.stripeWebhookUrl,
    secret: config.stripeWebhookSecret,
    timeScale: config.qstashTimeScale,
  });
  const billing = new Billing(config, webhooks);
  const api = new StripeApi(billing, config.stripeSecretKey);

  const apiFault: ApiFault = { mode: "none" };
  const app = new Hono();
  app.all("/v1/*", (c) => {
    if (apiFault.mode === "error") {
      // What Stripe answers when it fails on its side; stripe-node retries it, then throws.
      return c.json(
        { error: { type: "api_error", message: "local stripe: API fault switched on" } },
        500,
      );
    }
    return api.handle(c.req.raw);
  });
  mountPages(app, billing);

  return {
    name: "stripe",
    prefix: "/",
    app,
    control: createStripeControl(billing, webhooks, apiFault),
    onListen(baseUrl) {
      billing.baseUrl = baseUrl;
    },
    async close() {
      webhooks.close();
    },
  };
}
