import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { newCustomer } from "./customers.ts";
import { invalidRequest, missingParam } from "./errors.ts";
import {
  asParams,
  mergeMetadata,
  optArray,
  optBool,
  optInt,
  optObject,
  optString,
  type Params,
  reqString,
} from "./form.ts";
import { newId, nowSeconds, randomCode } from "./ids.ts";
import { newInvoice } from "./invoices.ts";
import { listOf, PAGINATION, paginate } from "./list.ts";
import {
  type CheckoutLineItem,
  type CheckoutSession,
  type StripeEvent,
  type Subscription,
  UI_MODES,
  type UiMode,
} from "./objects.ts";
import { productName } from "./prices.ts";
import { AUTOMATIC, isUrl, type RequestRef, type StripeStore } from "./store.ts";
import { newSubscriptionItem } from "./subscriptions.ts";

// Parameter names from stripe@23's *Params types (API 2026-10-28), as for every endpoint.
const CHECKOUT_CREATE = [
  "adaptive_pricing",
  "after_expiration",
  "allow_promotion_codes",
  "allowed_payment_method_types",
  "automatic_tax",
  "billing_address_collection",
  "branding_settings",
  "cancel_url",
  "client_reference_id",
  "consent_collection",
  "currency",
  "custom_fields",
  "custom_text",
  "customer",
  "customer_account",
  "customer_creation",
  "customer_email",
  "customer_update",
  "discounts",
  "excluded_payment_method_types",
  "expand",
  "expires_at",
  "integration_identifier",
  "invoice_creation",
  "line_items",
  "locale",
  "managed_payments",
  "metadata",
  "mode",
  "name_collection",
  "optional_items",
  "origin_context",
  "payment_intent_data",
  "payment_method_collection",
  "payment_method_configuration",
  "payment_method_data",
  "payment_method_options",
  "payment_method_types",
  "permissions",
  "phone_number_collection",
  "redirect_on_completion",
  "return_url",
  "saved_payment_method_options",
  "setup_intent_data",
  "shipping_address_collection",
  "shipping_options",
  "submit_type",
  "subscription_data",
  "success_url",
  "tax_id_collection",
  "ui_mode",
  "wallet_options",
];

export function createCheckoutSession(store: StripeStore, params: Params): CheckoutSession {
  const mode = reqString(params, "mode");
  if (mode !== "subscription") {
    throw invalidRequest(
      `The local Stripe stand-in only supports mode=subscription (got '${mode}').`,
      { param: "mode" },
    );
  }
  // API 2026-03-25.dahlia renamed the values (hosted → hosted_page, embedded → embedded_page,
  // custom → elements) and removed the old ones: docs.stripe.com/changelog/dahlia/2026-03-25/
  // updates-available-checkout-session-ui-modes. stripe@23 (2026-10-28) types these four.
  const uiModeParam = optString(params, "ui_mode") ?? "hosted_page";
  if (!(UI_MODES as readonly string[]).includes(uiModeParam)) {
    throw invalidRequest(
      `Invalid ui_mode: must be one of ${UI_MODES.slice(0, -1).join(", ")}, or ${UI_MODES.at(-1)}`,
      { param: "ui_mode" },
    );
  }
  const uiMode = uiModeParam as UiMode;
  const hosted = uiMode === "hosted_page";
  const returnUrl = optString(params, "return_url");
  const redirectOnCompletion = optString(params, "redirect_on_completion");
  if (hosted && returnUrl !== undefined) {
    throw invalidRequest(
      "`return_url` can only be used with ui_mode `embedded_page`, `elements` or `form`.",
      {
        param: "return_url",
      },
    );
  }
  if (!hosted) {
    for (const name of ["success_url", "cancel_url"] as const) {
      if (params[name] !== undefined) {
        throw invalidRequest(`\`${name}\` cannot be used with ui_mode \`${uiMode}\`.`, {
          param: name,
        });
      }
    }
    if (returnUrl === undefined && redirectOnCompletion !== "never") {
      throw invalidRequest(
        `\`return_url\` is required with ui_mode \`${uiMode}\` unless redirect_on_completion is \`never\`.`,
        { param: "return_url" },
      );
    }
    if (returnUrl !== undefined && !isUrl(returnUrl)) {
      throw invalidRequest("Not a valid URL", { code: "url_invalid", param: "return_url" });
    }
  }
  const customerId = optString(params, "customer");
  const customerEmail = optString(params, "customer_email");
  if (customerId && customerEmail) {
    throw invalidRequest(
      "You may only specify one of these parameters: customer, customer_email.",
      { code: "parameters_exclusive", param: "customer_email" },
    );
  }
  if (customerId) store.get("customer", customerId, "customer", 400);

  const successUrl = optString(params, "success_url");
  const cancelUrl = optString(params, "cancel_url");
  for (const [name, value] of [
    ["success_url", successUrl],
    ["cancel_url", cancelUrl],
  ] as const) {
    if (value !== undefined && !isUrl(value)) {
      throw invalidRequest("Not a valid URL", { code: "url_invalid", param: name });
    }
  }

  const rawItems = optArray(params, "line_items");
  if (!rawItems || rawItems.length === 0) throw missingParam("line_items");
  const lines: CheckoutLineItem[] = rawItems.map((raw, i) => {
    const label = `line_items[${i}]`;
    const item = asParams(raw, label);
    if (item.price_data !== undefined) {
      throw invalidRequest("The local Stripe stand-in does not support price_data.", {
        param: `${label}[price_data]`,
      });
    }
    const priceId = reqString(item, "price", `${label}[price]`);
    const price = store.get("price", priceId, `${label}[price]`, 400);
    const quantity = optInt(item, "quantity", `${label}[quantity]`) ?? 1;
    if (quantity < 1) {
      throw invalidRequest("This value must be greater than or equal to 1.", {
        code: "parameter_invalid_integer",
        param: `${label}[quantity]`,
      });
    }
    const amount = price.unit_amount * quantity;
    return {
      id: newId("li"),
      object: "item",
      adjustable_quantity: null,
      amount_discount: 0,
      amount_subtotal: amount,
      amount_tax: 0,
      amount_total: amount,
      currency: price.currency,
      description: productName(store, price),
      metadata: {},
      price: structuredClone(price),
      quantity,
    };
  });
  const total = lines.reduce((sum, l) => sum + l.amount_total, 0);

  const subscriptionData = optObject(params, "subscription_data");
  const subscriptionMetadata = subscriptionData ? (mergeMetadata(subscriptionData) ?? {}) : {};
  const created = nowSeconds();
  const id = newId("cs_test");
  const session: CheckoutSession = {
    id,
    object: "checkout.session",
    adaptive_pricing: { enabled: false },
    after_expiration: null,
    allow_promotion_codes: optBool(params, "allow_promotion_codes") ?? null,
    allowed_payment_method_types: null,
    amount_subtotal: total,
    amount_total: total,
    automatic_tax: { enabled: false, liability: null, provider: null, status: null },
    billing_address_collection: optString(params, "billing_address_collection") ?? null,
    cancel_url: cancelUrl ?? null,
    client_reference_id: optString(params, "client_reference_id") ?? null,
    // Embedded and Elements sessions are driven from the browser with this secret.
    client_secret: hosted ? null : `${id}_secret_${randomCode(24)}`,
    collected_information: null,
    consent: null,
    consent_collection: null,
    created,
    currency: lines[0]?.currency ?? "usd",
    currency_conversion: null,
    custom_fields: [],
    custom_text: {
      after_submit: null,
      shipping_address: null,
      submit: null,
      terms_of_service_acceptance: null,
    },
    customer: customerId ?? null,
    customer_account: null,
    customer_creation: customerId ? null : "always",
    customer_details: customerEmail
      ? {
          address: null,
          business_name: null,
          email: customerEmail,
          individual_name: null,
          name: null,
          phone: null,
          tax_exempt: "none",
          tax_ids: [],
        }
      : null,
    customer_email: customerEmail ?? null,
    discounts: [],
    expires_at: optInt(params, "expires_at") ?? created + 24 * 3600,
    integration_identifier: null,
    invoice: null,
    invoice_creation: null,
    livemode: false,
    locale: optString(params, "locale") ?? null,
    managed_payments: null,
    metadata: mergeMetadata(params) ?? {},
    mode: "subscription",
    origin_context: null,
    payment_intent: null,
    payment_link: null,
    payment_method_collection: "always",
    payment_method_configuration_details: null,
    payment_method_options: {},
    payment_method_types: ["card"],
    payment_status: "unpaid",
    permissions: null,
    recovered_from: null,
    saved_payment_method_options: null,
    setup_intent: null,
    shipping_address_collection: null,
    shipping_cost: null,
    shipping_options: [],
    status: "open",
    submit_type: null,
    subscription: null,
    success_url: successUrl ?? null,
    total_details: { amount_discount: 0, amount_shipping: 0, amount_tax: 0 },
    ...(hosted
      ? {}
      : {
          redirect_on_completion: (redirectOnCompletion ?? "always") as "always",
          ...(returnUrl !== undefined ? { return_url: returnUrl } : {}),
        }),
    ui_mode: uiMode,
    // Only a hosted page has a URL; the stand-in's page still serves any session for tests.
    url: hosted ? `${store.baseUrl}/stripe/checkout/${id}` : null,
    wallet_options: null,
  };
  store.objects.set(id, session);
  store.sessionLines.set(id, lines);
  store.sessionSubscriptionData.set(id, { metadata: subscriptionMetadata });
  return session;
}

export function expireCheckoutSession(
  store: StripeStore,
  id: string,
  request: RequestRef,
): CheckoutSession {
  const session = store.get("checkout.session", id);
  if (session.status !== "open") {
    throw invalidRequest(
      `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${session.status}".`,
    );
  }
  session.status = "expired";
  session.url = null;
  store.publish([store.emit("checkout.session.expired", session, request)], session.customer);
  return session;
}

/**
 * The customer pays on the hosted page: the subscription starts, its first invoice is paid and
 * Checkout's events go out. Paying a completed session again changes nothing.
 */
export function payCheckoutSession(store: StripeStore, id: string): CheckoutSession {
  const session = store.get("checkout.session", id);
  if (session.status === "complete") return session;
  if (session.status === "expired") {
    throw invalidRequest("This Checkout Session is no longer active.", {
      code: "checkout_session_expired",
    });
  }
  const events: StripeEvent[] = [];
  let customer = session.customer ? store.get("customer", session.customer) : undefined;
  if (!customer) {
    customer = newCustomer(store, { email: session.customer_email });
    events.push(store.emit("customer.created", customer, AUTOMATIC));
  }

  const now = nowSeconds();
  const subscriptionId = newId("sub");
  const items = store
    .checkoutLineItems(id)
    .map((line) => newSubscriptionItem(subscriptionId, line.price, line.quantity, now));
  const subscription: Subscription = {
    id: subscriptionId,
    object: "subscription",
    application: null,
    application_fee_percent: null,
    automatic_tax: { disabled_reason: null, enabled: false, liability: null },
    billing_cycle_anchor: now,
    billing_cycle_anchor_config: null,
    billing_mode: { flexible: null, type: "classic" },
    billing_schedules: [],
    billing_thresholds: null,
    cancel_at: null,
    cancel_at_period_end: false,
    canceled_at: null,
    cancellation_details: { comment: null, feedback: null, reason: null },
    collection_method: "charge_automatically",
    created: now,
    currency: session.currency,
    customer: customer.id,
    customer_account: null,
    days_until_due: null,
    default_payment_method: null,
    default_source: null,
    default_tax_rates: [],
    description: null,
    discounts: [],
    ended_at: null,
    invoice_settings: { account_tax_ids: null, issuer: { type: "self" } },
    items: {
      object: "list",
      data: items,
      has_more: false,
      total_count: items.length,
      url: `/v1/subscription_items?subscription=${subscriptionId}`,
    },
    latest_invoice: null,
    livemode: false,
    managed_payments: null,
    metadata: { ...(store.sessionSubscriptionData.get(id)?.metadata ?? {}) },
    next_pending_invoice_item_invoice: null,
    on_behalf_of: null,
    pause_collection: null,
    payment_settings: {
      payment_method_options: null,
      payment_method_types: null,
      save_default_payment_method: "off",
    },
    pending_invoice_item_interval: null,
    pending_setup_intent: null,
    pending_update: null,
    schedule: null,
    start_date: now,
    status: "active",
    test_clock: null,
    transfer_data: null,
    trial_end: null,
    trial_settings: { end_behavior: { missing_payment_method: "create_invoice" } },
    trial_start: null,
  };
  store.objects.set(subscription.id, subscription);
  // A first invoice's own period is the instant it was created; its line covers the month.
  const invoice = newInvoice(store, subscription, customer, "subscription_create", now, now, true);
  subscription.latest_invoice = invoice.id;
  if (customer.currency === null) customer.currency = subscription.currency;

  session.status = "complete";
  session.payment_status = "paid";
  session.customer = customer.id;
  session.subscription = subscription.id;
  session.invoice = invoice.id;
  session.url = null;
  session.customer_details = {
    address: null,
    business_name: null,
    email: customer.email,
    individual_name: null,
    name: customer.name,
    phone: null,
    tax_exempt: "none",
    tax_ids: [],
  };

  events.push(
    store.emit("customer.subscription.created", subscription, AUTOMATIC),
    store.emit("invoice.paid", invoice, AUTOMATIC),
    store.emit("invoice.payment_succeeded", invoice, AUTOMATIC),
    store.emit("checkout.session.completed", session, AUTOMATIC),
  );
  store.publish(events, customer.id);
  return session;
}

/** `/v1/checkout/sessions`: create, list, retrieve, line items, expire. */
export function checkoutRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/checkout/sessions");
  r.post("", CHECKOUT_CREATE, ({ params }) => createCheckoutSession(store, params));
  r.get(
    "",
    [
      "created",
      "customer",
      "customer_account",
      "customer_details",
      "expand",
      "payment_intent",
      "payment_link",
      "status",
      "subscription",
      ...PAGINATION,
    ],
    ({ params }) => {
      const customer = optString(params, "customer");
      const subscription = optString(params, "subscription");
      const status = optString(params, "status");
      const items = store
        .all("checkout.session")
        .filter(
          (s) =>
            (customer === undefined || s.customer === customer) &&
            (subscription === undefined || s.subscription === subscription) &&
            (status === undefined || s.status === status),
        );
      return listOf(items, params, "/v1/checkout/sessions", "checkout.session");
    },
  );
  r.get("/:id", ["expand"], ({ path }) => store.get("checkout.session", path.id ?? ""));
  r.get("/:id/line_items", ["expand", ...PAGINATION], ({ path, params }) => {
    const id = path.id ?? "";
    store.get("checkout.session", id);
    return paginate(
      structuredClone(store.checkoutLineItems(id)),
      params,
      `/v1/checkout/sessions/${id}/line_items`,
      "item",
    );
  });
  r.post("/:id/expire", ["expand"], ({ path, request }) =>
    expireCheckoutSession(store, path.id ?? "", request),
  );
  return r.app;
}
