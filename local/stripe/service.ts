import { Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import { type ApiFault, StripeApi } from "./api.ts";
import { checkoutRoutes } from "./checkout.ts";
import { createStripeControl } from "./control.ts";
import { customerRoutes } from "./customers.ts";
import { eventRoutes } from "./events.ts";
import { invoiceRoutes } from "./invoices.ts";
import { mountPages } from "./pages.ts";
import { portalRoutes } from "./portal.ts";
import { priceRoutes, productRoutes, seedCatalog } from "./prices.ts";
import { StripeStore } from "./store.ts";
import { subscriptionRoutes } from "./subscriptions.ts";
import { StripeUsage } from "./usage.ts";
import { WebhookDispatcher } from "./webhooks.ts";

/**
 * Local Stripe: the `/v1` API as stripe-node calls it (one Hono sub-app per resource over one
 * store), hosted Checkout and portal pages under `/stripe/...`, and signed webhook delivery to
 * `config.stripeWebhookUrl`.
 */
export async function createStripeService(config: LocalCloudConfig): Promise<LocalService> {
  const webhooks = new WebhookDispatcher({
    url: config.stripeWebhookUrl,
    secret: config.stripeWebhookSecret,
    timeScale: config.qstashTimeScale,
  });
  const store = new StripeStore(webhooks);
  seedCatalog(store, config.stripeProPriceId);
  if (config.stripePortalSettingsSaved) store.savePortalSettings(true);
  const apiFault: ApiFault = { mode: "none" };
  const usage = new StripeUsage();
  const api = new StripeApi(store, config.stripeSecretKey, apiFault, usage);

  const app = new Hono();
  app.route("/v1/customers", customerRoutes(api, store));
  app.route("/v1/prices", priceRoutes(api, store));
  app.route("/v1/products", productRoutes(api, store));
  app.route("/v1/checkout/sessions", checkoutRoutes(api, store));
  app.route("/v1/subscriptions", subscriptionRoutes(api, store));
  app.route("/v1/billing_portal/sessions", portalRoutes(api, store));
  app.route("/v1/invoices", invoiceRoutes(api, store));
  app.route("/v1/events", eventRoutes(api, store));
  // Any other /v1 path: Stripe's 404 once the key is checked.
  app.all("/v1/*", (c) => api.run(c.req.raw, null));
  mountPages(app, store);

  return {
    name: "stripe",
    prefix: "/",
    app,
    control: createStripeControl(store, webhooks, apiFault),
    usage,
    onListen(baseUrl) {
      store.baseUrl = baseUrl;
    },
    async close() {
      webhooks.close();
    },
  };
}
