import { Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import { type ApiFault, StripeApi } from "./api.ts";
import { Billing } from "./billing.ts";
import { createStripeControl } from "./control.ts";
import { mountPages } from "./pages.ts";
import { StripeUsage } from "./usage.ts";
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
  const apiFault: ApiFault = { mode: "none" };
  const usage = new StripeUsage();
  const api = new StripeApi(billing, config.stripeSecretKey, apiFault, usage);

  const app = new Hono();
  app.all("/v1/*", (c) => api.handle(c.req.raw));
  mountPages(app, billing);

  return {
    name: "stripe",
    prefix: "/",
    app,
    control: createStripeControl(billing, webhooks, apiFault),
    usage,
    onListen(baseUrl) {
      billing.baseUrl = baseUrl;
    },
    async close() {
      webhooks.close();
    },
  };
}
