import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { invalidRequest } from "./errors.ts";
import { optString, type Params, reqString } from "./form.ts";
import { newId, nowSeconds } from "./ids.ts";
import type { PortalSession } from "./objects.ts";
import { isUrl, type StripeStore } from "./store.ts";

export function createPortalSession(store: StripeStore, params: Params): PortalSession {
  const customerId = reqString(params, "customer");
  store.get("customer", customerId, "customer", 400);
  const configuration = optString(params, "configuration") ?? store.portalConfiguration;
  if (configuration === null) {
    // Stripe's answer in a mode whose portal settings were never saved (no `code`).
    throw invalidRequest(
      "No configuration provided and your test mode default configuration has not been created. Provide a configuration or create your default by saving your customer portal settings in test mode at https://dashboard.stripe.com/test/settings/billing/portal.",
    );
  }
  const returnUrl = optString(params, "return_url");
  if (returnUrl !== undefined && !isUrl(returnUrl)) {
    throw invalidRequest("Not a valid URL", { code: "url_invalid", param: "return_url" });
  }
  const id = newId("bps");
  const session: PortalSession = {
    id,
    object: "billing_portal.session",
    configuration,
    created: nowSeconds(),
    customer: customerId,
    customer_account: null,
    flow: null,
    livemode: false,
    locale: optString(params, "locale") ?? null,
    on_behalf_of: null,
    return_url: returnUrl ?? null,
    url: `${store.baseUrl}/stripe/portal/${id}`,
  };
  store.objects.set(id, session);
  return session;
}

/** `/v1/billing_portal/sessions`: create. */
export function portalRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/billing_portal/sessions");
  r.post(
    "",
    [
      "after_expiration",
      "configuration",
      "customer",
      "customer_account",
      "expand",
      "flow_data",
      "locale",
      "on_behalf_of",
      "return_url",
    ],
    ({ params }) => createPortalSession(store, params),
  );
  return r.app;
}
