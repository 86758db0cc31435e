import type { LocalCloudConfig } from "../types.ts";
import { invalidRequest, missingParam, noSuchObject } from "./errors.ts";
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
import { addMonth, newId, nowSeconds, randomCode } from "./ids.ts";
import {
  API_VERSION,
  type CheckoutLineItem,
  type CheckoutSession,
  type Customer,
  formatAmount,
  type Invoice,
  type InvoiceLineItem,
  type Metadata,
  type Plan,
  type PortalSession,
  type Price,
  type Product,
  type StripeEvent,
  type StripeObject,
  type Subscription,
  type SubscriptionItem,
  UI_MODES,
  type UiMode,
} from "./objects.ts";

/** Where events go once created: the webhook dispatcher. */
export interface EventSink {
  /** Whether the configured endpoint listens for this type (sets `pending_webhooks`). */
  wants(type: string): boolean;
  record(event: StripeEvent, customer: string | null): void;
  /** Delivers the events of one flow (one API call, one payment, one renewal). */
  publish(events: StripeEvent[], customer: string | null): void;
}

/** `event.request`: the API request that caused an event, or nulls for automatic ones. */
export interface RequestRef {
  id: string | null;
  idempotency_key: string | null;
}

export const AUTOMATIC: RequestRef = { id: null, idempotency_key: null };

/**
 * What Stripe does on its own when time passes: a renewal paid or failed (a failed one on a
 * past_due subscription is the next dunning retry), the period ending (a subscription set to
 * cancel, or a past_due one whose retries ran out with "cancel the subscription"), or
 * `mark_unpaid`: retries ran out with the setting "mark the subscription as unpaid".
 */
export type AdvanceOutcome = "renew_paid" | "renew_failed" | "end_period" | "mark_unpaid";

/** A simulation request that does not fit the subscription's state (control API answers 409). */
export class SimulationConflict extends Error {}

const ACCOUNT_NAME = "Local Cloud Test Account";

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Stripe's `previous_attributes`: old values of the fields that changed, nested objects diffed. */
export function previousAttributes(
  before: Record<string, unknown>,
  after: Record<string, unknown>,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const b = before[key];
    const a = after[key];
    if (JSON.stringify(b) === JSON.stringify(a)) continue;
    out[key] = isPlainObject(b) && isPlainObject(a) ? previousAttributes(b, a) : (b ?? null);
  }
  return out;
}

function customerOf(object: Record<string, unknown>): string | null {
  if (object.object === "customer" && typeof object.id === "string") return object.id;
  const c = object.customer;
  if (typeof c === "string") return c;
  if (isPlainObject(c) && typeof c.id === "string") return c.id;
  return null;
}

function snapshot<T>(value: T): Record<string, unknown> {
  return structuredClone(value) as unknown as Record<string, unknown>;
}

function isUrl(value: string): boolean {
  return URL.canParse(value);
}

/**
 * The stand-in's account: every object by id, the billing flows that change them and the events
 * those flows emit. All mutations are synchronous, so one request's changes are atomic.
 */
export class Billing {
  readonly objects = new Map<string, StripeObject>();
  readonly proPrice: Price;
  baseUrl = "http://127.0.0.1";
  private readonly sink: EventSink;
  private readonly sessionLines = new Map<string, CheckoutLineItem[]>();
  private readonly sessionSubscriptionData = new Map<string, { metadata: Metadata }>();
  /**
   * The default portal configuration, which Stripe creates when the portal settings are first
   * saved in the Dashboard; until then `billingPortal.sessions.create` without `configuration`
   * is refused. Null until saved (control API, or `stripePortalSettingsSaved` seeds it).
   */
  portalConfiguration: string | null = null;
  private readonly deletedCustomers = new Set<string>();

  constructor(config: LocalCloudConfig, sink: EventSink) {
    this.sink = sink;
    if (config.stripePortalSettingsSaved) this.savePortalSettings(true);
    const created = nowSeconds();
    const product: Product = {
      id: newId("prod"),
      object: "product",
      active: true,
      created,
      default_price: config.stripeProPriceId,
      description: "Higher daily message limit",
      images: [],
      livemode: false,
      marketing_features: [],
      metadata: {},
      name: "Pro",
      package_dimensions: null,
      shippable: null,
      statement_descriptor: null,
      tax_code: null,
      tax_details: null,
      type: "service",
      unit_label: null,
      updated: created,
      url: null,
    };
    this.proPrice = {
      id: config.stripeProPriceId,
      object: "price",
      active: true,
      billing_scheme: "per_unit",
      created,
      currency: "usd",
      custom_unit_amount: null,
      livemode: false,
      lookup_key: "pro_monthly",
      metadata: {},
      nickname: "Pro monthly",
      product: product.id,
      recurring: {
        interval: "month",
        interval_count: 1,
        meter: null,
        trial_period_days: null,
        usage_type: "licensed",
      },
      tax_behavior: "unspecified",
      tiers_mode: null,
      transform_quantity: null,
      type: "recurring",
      unit_amount: 1000,
      unit_amount_decimal: "1000",
    };
    this.objects.set(product.id, product);
    this.objects.set(this.proPrice.id, this.proPrice);
  }

  /**
   * Another monthly plan on the account (a second product and its price), as an operator adds in
   * the Dashboard: what a portal plan switch or a checkout outside the app can sell.
   */
  addPlan(nickname: string, unitAmount: number): Price {
    const created = nowSeconds();
    const product: Product = {
      ...structuredClone(this.find("product", String(this.proPrice.product)) as Product),
      id: newId("prod"),
      created,
      updated: created,
      name: nickname,
      description: null,
    };
    const price: Price = {
      ...structuredClone(this.proPrice),
      id: newId("price"),
      created,
      lookup_key: null,
      nickname,
      product: product.id,
      unit_amount: unitAmount,
      unit_amount_decimal: String(unitAmount),
    };
    product.default_price = price.id;
    this.objects.set(product.id, product);
    this.objects.set(price.id, price);
    return price;
  }

  // ---- lookups -------------------------------------------------------------------------------

  find<K extends StripeObject["object"]>(
    kind: K,
    id: string,
  ): Extract<StripeObject, { object: K }> | undefined {
    const o = this.objects.get(id);
    return o?.object === kind ? (o as Extract<StripeObject, { object: K }>) : undefined;
  }

  /** Like `find`, but a miss is Stripe's `resource_missing` error. */
  get<K extends StripeObject["object"]>(
    kind: K,
    id: string,
    param = "id",
    status = 404,
  ): Extract<StripeObject, { object: K }> {
    const o = this.find(kind, id);
    if (!o) throw noSuchObject(kind, id, param, status);
    return o;
  }

  /** Objects of one kind, newest first (Stripe's list order). */
  all<K extends StripeObject["object"]>(kind: K): Extract<StripeObject, { object: K }>[] {
    const out: Extract<StripeObject, { object: K }>[] = [];
    for (const o of this.objects.values()) {
      if (o.object === kind) out.push(o as Extract<StripeObject, { object: K }>);
    }
    return out.reverse();
  }

  checkoutLineItems(sessionId: string): CheckoutLineItem[] {
    return this.sessionLines.get(sessionId) ?? [];
  }

  // ---- events --------------------------------------------------------------------------------

  private event(
    type: string,
    object: object,
    request: RequestRef,
    previous?: Record<string, unknown>,
  ): StripeEvent {
    const data = snapshot(object);
    const event: StripeEvent = {
      id: newId("evt"),
      object: "event",
      api_version: API_VERSION,
      created: nowSeconds(),
      data: previous ? { object: data, previous_attributes: previous } : { object: data },
      livemode: false,
      pending_webhooks: this.sink.wants(type) ? 1 : 0,
      request,
      type,
    };
    this.objects.set(event.id, event);
    this.sink.record(event, customerOf(data));
    return event;
  }

  /** Builds, stores and delivers an arbitrary event (tests use it for shapes no flow makes). */
  sendCustomEvent(type: string, object: Record<string, unknown>): StripeEvent {
    const event = this.event(type, object, AUTOMATIC);
    this.sink.publish([event], customerOf(object));
    return event;
  }

  // ---- customers -----------------------------------------------------------------------------

  private newCustomer(fields: Partial<Customer>): Customer {
    const customer: Customer = {
      id: newId("cus"),
      object: "customer",
      address: null,
      balance: 0,
      created: nowSeconds(),
      currency: null,
      default_source: null,
      delinquent: false,
      description: null,
      discount: null,
      email: null,
      invoice_prefix: randomCode(8),
      invoice_settings: {
        custom_fields: null,
        default_payment_method: null,
        footer: null,
        rendering_options: null,
      },
      livemode: false,
      metadata: {},
      name: null,
      next_invoice_sequence: 1,
      phone: null,
      preferred_locales: [],
      shipping: null,
      tax_exempt: "none",
      test_clock: null,
      ...fields,
    };
    this.objects.set(customer.id, customer);
    return customer;
  }

  createCustomer(params: Params, request: RequestRef): Customer {
    const customer = this.newCustomer({
      email: optString(params, "email") ?? null,
      name: optString(params, "name") ?? null,
      description: optString(params, "description") ?? null,
      phone: optString(params, "phone") ?? null,
      metadata: mergeMetadata(params) ?? {},
    });
    this.sink.publish([this.event("customer.created", customer, request)], customer.id);
    return customer;
  }

  /** A deleted customer still retrieves, as Stripe's `{id, object, deleted: true}` stub. */
  retrieveCustomer(id: string): Customer | { id: string; object: "customer"; deleted: true } {
    if (this.deletedCustomers.has(id)) return { id, object: "customer", deleted: true };
    return this.get("customer", id);
  }

  /** Deletes a customer: it leaves lists and search, and requests naming it get resource_missing. */
  deleteCustomer(
    id: string,
    request: RequestRef,
  ): { id: string; object: "customer"; deleted: true } {
    const customer = this.get("customer", id);
    for (const s of this.all("subscription")) {
      // Stripe cancels a deleted customer's subscriptions immediately.
      if (s.customer === id && s.status !== "canceled") this.cancelSubscription(s.id, {}, request);
    }
    this.objects.delete(id);
    this.deletedCustomers.add(id);
    this.sink.publish([this.event("customer.deleted", customer, request)], id);
    return { id, object: "customer", deleted: true };
  }

  /**
   * Customers matching a search query in Stripe's query language, newest first. Supports what
   * an integration looks customers up by: `metadata['key']:'value'`, `email:'x'`, `name:'x'`,
   * joined by ` AND `; anything else is refused as Stripe refuses a bad query.
   */
  searchCustomers(query: string): Customer[] {
    const clauses = query.split(/\s+AND\s+/);
    const tests = clauses.map((clause) => {
      const m =
        /^\s*(?:metadata\[['"]([^'"]+)['"]\]|(email|name|phone|description))\s*:\s*['"]([^'"]*)['"]\s*$/.exec(
          clause,
        );
      if (!m) {
        throw invalidRequest(`Invalid search query: '${query}'.`, { param: "query" });
      }
      const [, metaKey, field, value] = m;
      return (c: Customer) =>
        metaKey !== undefined ? c.metadata[metaKey] === value : c[field as "email"] === value;
    });
    return this.all("customer").filter((c) => tests.every((t) => t(c)));
  }

  /** The Dashboard's "Save" on Settings → Billing → Customer portal (or, false, a fresh account). */
  savePortalSettings(saved: boolean): void {
    this.portalConfiguration = saved ? (this.portalConfiguration ?? newId("bpc")) : null;
  }

  updateCustomer(id: string, params: Params, request: RequestRef): Customer {
    const customer = this.get("customer", id);
    const before = snapshot(customer);
    for (const field of ["email", "name", "description", "phone"] as const) {
      const v = optString(params, field);
      if (v !== undefined) customer[field] = v === "" ? null : v;
    }
    const metadata = mergeMetadata(params, customer.metadata);
    if (metadata) customer.metadata = metadata;
    const previous = previousAttributes(before, snapshot(customer));
    if (Object.keys(previous).length > 0) {
      this.sink.publish([this.event("customer.updated", customer, request, previous)], customer.id);
    }
    return customer;
  }

  // ---- checkout ------------------------------------------------------------------------------

  createCheckoutSession(params: Params): CheckoutSession {
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
    if (customerId) this.get("customer", customerId, "customer", 400);

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
      const price = this.get("price", priceId, `${label}[price]`, 400);
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
        description: this.productName(price),
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
      url: hosted ? `${this.baseUrl}/stripe/checkout/${id}` : null,
      wallet_options: null,
    };
    this.objects.set(id, session);
    this.sessionLines.set(id, lines);
    this.sessionSubscriptionData.set(id, { metadata: subscriptionMetadata });
    return session;
  }

  expireCheckoutSession(id: string, request: RequestRef): CheckoutSession {
    const session = this.get("checkout.session", id);
    if (session.status !== "open") {
      throw invalidRequest(
        `Only Checkout Sessions with a status in ["open"] can be expired. This Checkout Session has a status of "${session.status}".`,
      );
    }
    session.status = "expired";
    session.url = null;
    this.sink.publish([this.event("checkout.session.expired", session, request)], session.customer);
    return session;
  }

  /**
   * The customer pays on the hosted page: the subscription starts, its first invoice is paid and
   * Checkout's events go out. Paying a completed session again changes nothing.
   */
  payCheckoutSession(id: string): CheckoutSession {
    const session = this.get("checkout.session", id);
    if (session.status === "complete") return session;
    if (session.status === "expired") {
      throw invalidRequest("This Checkout Session is no longer active.", {
        code: "checkout_session_expired",
      });
    }
    const events: StripeEvent[] = [];
    let customer = session.customer ? this.get("customer", session.customer) : undefined;
    if (!customer) {
      customer = this.newCustomer({ email: session.customer_email });
      events.push(this.event("customer.created", customer, AUTOMATIC));
    }

    const now = nowSeconds();
    const subscriptionId = newId("sub");
    const items = this.checkoutLineItems(id).map((line) =>
      this.newSubscriptionItem(subscriptionId, line.price, line.quantity, now),
    );
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
      metadata: { ...(this.sessionSubscriptionData.get(id)?.metadata ?? {}) },
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
    this.objects.set(subscription.id, subscription);
    // A first invoice's own period is the instant it was created; its line covers the month.
    const invoice = this.newInvoice(subscription, customer, "subscription_create", now, now, true);
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
      this.event("customer.subscription.created", subscription, AUTOMATIC),
      this.event("invoice.paid", invoice, AUTOMATIC),
      this.event("invoice.payment_succeeded", invoice, AUTOMATIC),
      this.event("checkout.session.completed", session, AUTOMATIC),
    );
    this.sink.publish(events, customer.id);
    return session;
  }

  private productName(price: Price): string {
    const productId = typeof price.product === "string" ? price.product : price.product.id;
    return this.find("product", productId)?.name ?? productId;
  }

  private newSubscriptionItem(
    subscriptionId: string,
    price: Price,
    quantity: number,
    start: number,
  ): SubscriptionItem {
    const productId = typeof price.product === "string" ? price.product : price.product.id;
    const plan: Plan = {
      id: price.id,
      object: "plan",
      active: price.active,
      amount: price.unit_amount,
      amount_decimal: price.unit_amount_decimal,
      billing_scheme: "per_unit",
      created: price.created,
      currency: price.currency,
      interval: price.recurring.interval,
      interval_count: price.recurring.interval_count,
      livemode: false,
      metadata: { ...price.metadata },
      meter: null,
      nickname: price.nickname,
      product: productId,
      tiers_mode: null,
      transform_usage: null,
      trial_period_days: null,
      usage_type: "licensed",
    };
    return {
      id: newId("si"),
      object: "subscription_item",
      billing_thresholds: null,
      created: start,
      current_period_end: addMonth(start),
      current_period_start: start,
      current_trial: null,
      discounts: [],
      metadata: {},
      plan,
      price: structuredClone(price),
      quantity,
      subscription: subscriptionId,
      tax_rates: [],
    };
  }

  private newInvoice(
    subscription: Subscription,
    customer: Customer,
    billingReason: Invoice["billing_reason"],
    periodStart: number,
    periodEnd: number,
    paid: boolean,
  ): Invoice {
    const now = nowSeconds();
    const id = newId("in");
    const lines: InvoiceLineItem[] = subscription.items.data.map((item) => {
      const amount = item.price.unit_amount * item.quantity;
      return {
        id: newId("il"),
        object: "line_item",
        amount,
        currency: item.price.currency,
        description: `${item.quantity} × ${this.productName(item.price)} (at ${formatAmount(item.price.unit_amount, item.price.currency)} / month)`,
        discount_amounts: [],
        discountable: true,
        discounts: [],
        invoice: id,
        livemode: false,
        metadata: { ...subscription.metadata },
        parent: {
          invoice_item_details: null,
          subscription_item_details: {
            invoice_item: null,
            proration: false,
            proration_details: { credited_items: null },
            subscription: subscription.id,
            subscription_item: item.id,
          },
          type: "subscription_item_details",
        },
        period: { end: item.current_period_end, start: item.current_period_start },
        pretax_credit_amounts: [],
        pricing: {
          price_details: { price: item.price.id, product: item.plan.product },
          type: "price_details",
          unit_amount_decimal: item.price.unit_amount_decimal,
        },
        quantity: item.quantity,
        quantity_decimal: String(item.quantity),
        subscription: subscription.id,
        subtotal: amount,
        taxes: [],
      };
    });
    const total = lines.reduce((sum, l) => sum + l.amount, 0);
    const invoice: Invoice = {
      id,
      object: "invoice",
      account_country: "US",
      account_name: ACCOUNT_NAME,
      account_tax_ids: null,
      amount_due: total,
      amount_overpaid: 0,
      amount_paid: paid ? total : 0,
      amount_remaining: paid ? 0 : total,
      amount_shipping: 0,
      application: null,
      attempt_count: 1,
      attempted: true,
      auto_advance: !paid,
      automatic_tax: {
        disabled_reason: null,
        enabled: false,
        liability: null,
        provider: null,
        status: null,
      },
      automatically_finalizes_at: null,
      billing_reason: billingReason,
      collection_method: "charge_automatically",
      created: now,
      currency: subscription.currency,
      custom_fields: null,
      customer: customer.id,
      customer_account: null,
      customer_address: null,
      customer_email: customer.email,
      customer_name: customer.name,
      customer_phone: null,
      customer_shipping: null,
      customer_tax_exempt: "none",
      customer_tax_ids: [],
      default_payment_method: null,
      default_source: null,
      default_tax_rates: [],
      description: null,
      discounts: [],
      due_date: null,
      effective_at: now,
      ending_balance: 0,
      footer: null,
      from_invoice: null,
      hosted_invoice_url: `${this.baseUrl}/stripe/invoice/${id}`,
      invoice_pdf: `${this.baseUrl}/stripe/invoice/${id}?format=pdf`,
      issuer: { type: "self" },
      last_finalization_error: null,
      latest_revision: null,
      lines: {
        object: "list",
        data: lines,
        has_more: false,
        total_count: lines.length,
        url: `/v1/invoices/${id}/lines`,
      },
      livemode: false,
      metadata: {},
      next_payment_attempt: paid ? null : now + 3 * 24 * 3600,
      number: `${customer.invoice_prefix}-${String(customer.next_invoice_sequence).padStart(4, "0")}`,
      on_behalf_of: null,
      parent: {
        quote_details: null,
        subscription_details: {
          metadata: { ...subscription.metadata },
          subscription: subscription.id,
        },
        type: "subscription_details",
      },
      payment_settings: {
        default_mandate: null,
        payment_method_options: null,
        payment_method_types: null,
      },
      period_end: periodEnd,
      period_start: periodStart,
      post_payment_credit_notes_amount: 0,
      pre_payment_credit_notes_amount: 0,
      receipt_number: null,
      rendering: null,
      shipping_cost: null,
      shipping_details: null,
      starting_balance: 0,
      statement_descriptor: null,
      status: paid ? "paid" : "open",
      status_transitions: {
        finalized_at: now,
        marked_uncollectible_at: null,
        paid_at: paid ? now : null,
        voided_at: null,
      },
      subtotal: total,
      subtotal_excluding_tax: total,
      test_clock: null,
      total,
      total_discount_amounts: [],
      total_excluding_tax: total,
      total_pretax_credit_amounts: [],
      total_taxes: [],
      webhooks_delivered_at: now,
    };
    customer.next_invoice_sequence += 1;
    this.objects.set(id, invoice);
    return invoice;
  }

  // ---- subscriptions -------------------------------------------------------------------------

  private periodEnd(subscription: Subscription): number {
    return subscription.items.data[0]?.current_period_end ?? subscription.billing_cycle_anchor;
  }

  updateSubscription(id: string, params: Params, request: RequestRef): Subscription {
    const subscription = this.get("subscription", id);
    const before = snapshot(subscription);
    if (subscription.status === "canceled") {
      const allowed = new Set(["metadata", "cancellation_details", "expand"]);
      if (Object.keys(params).some((k) => !allowed.has(k))) {
        throw invalidRequest(
          "A canceled subscription can only update its cancellation_details and metadata.",
        );
      }
    }
    const itemChanges = optArray(params, "items");
    if (itemChanges !== undefined) {
      // A plan switch (as the portal does it): `items[n][id]` names an item, `[price]` its new
      // price; the period stays (no proration invoice in the stand-in).
      itemChanges.forEach((raw, i) => {
        const label = `items[${i}]`;
        const change = asParams(raw, label);
        const itemId = reqString(change, "id", `${label}[id]`);
        const index = subscription.items.data.findIndex((it) => it.id === itemId);
        const current = subscription.items.data[index];
        if (!current) throw noSuchObject("subscription_item", itemId, `${label}[id]`, 400);
        const priceId = optString(change, "price", `${label}[price]`);
        if (priceId === undefined) return;
        const price = this.get("price", priceId, `${label}[price]`, 400);
        const replaced = this.newSubscriptionItem(
          subscription.id,
          price,
          current.quantity,
          current.current_period_start,
        );
        subscription.items.data[index] = {
          ...replaced,
          id: current.id,
          created: current.created,
          current_period_end: current.current_period_end,
        };
      });
    }
    const now = nowSeconds();
    const atPeriodEnd = optBool(params, "cancel_at_period_end");
    const cancelAtRaw = params.cancel_at;
    if (atPeriodEnd !== undefined && cancelAtRaw !== undefined && cancelAtRaw !== "") {
      throw invalidRequest(
        "You may only specify one of these parameters: cancel_at, cancel_at_period_end.",
        { code: "parameters_exclusive", param: "cancel_at" },
      );
    }
    if (atPeriodEnd === true) {
      subscription.cancel_at_period_end = true;
      subscription.cancel_at = this.periodEnd(subscription);
      subscription.canceled_at = now;
      subscription.cancellation_details.reason = "cancellation_requested";
    } else if (atPeriodEnd === false || cancelAtRaw === "") {
      subscription.cancel_at_period_end = false;
      subscription.cancel_at = null;
      subscription.canceled_at = null;
      subscription.cancellation_details.reason = null;
    } else if (cancelAtRaw !== undefined) {
      const cancelAt = optInt(params, "cancel_at");
      if (cancelAt !== undefined) {
        subscription.cancel_at = cancelAt;
        subscription.cancel_at_period_end = cancelAt === this.periodEnd(subscription);
        subscription.canceled_at = now;
        subscription.cancellation_details.reason = "cancellation_requested";
      }
    }
    const details = optObject(params, "cancellation_details");
    if (details) {
      const comment = optString(details, "comment", "cancellation_details[comment]");
      const feedback = optString(details, "feedback", "cancellation_details[feedback]");
      if (comment !== undefined) subscription.cancellation_details.comment = comment || null;
      if (feedback !== undefined) subscription.cancellation_details.feedback = feedback || null;
    }
    const description = optString(params, "description");
    if (description !== undefined) subscription.description = description || null;
    const metadata = mergeMetadata(params, subscription.metadata);
    if (metadata) subscription.metadata = metadata;

    const previous = previousAttributes(before, snapshot(subscription));
    if (Object.keys(previous).length > 0) {
      this.sink.publish(
        [this.event("customer.subscription.updated", subscription, request, previous)],
        subscription.customer,
      );
    }
    return subscription;
  }

  cancelSubscription(id: string, params: Params, request: RequestRef): Subscription {
    const subscription = this.get("subscription", id);
    // Stripe treats a canceled subscription as gone for this call.
    if (subscription.status === "canceled") throw noSuchObject("subscription", id);
    const details = optObject(params, "cancellation_details");
    const now = nowSeconds();
    subscription.status = "canceled";
    subscription.canceled_at = now;
    subscription.ended_at = now;
    subscription.cancellation_details = {
      comment: details ? (optString(details, "comment") ?? null) : null,
      feedback: details ? (optString(details, "feedback") ?? null) : null,
      reason: "cancellation_requested",
    };
    this.sink.publish(
      [this.event("customer.subscription.deleted", subscription, request)],
      subscription.customer,
    );
    return subscription;
  }

  /** Simulates what Stripe does on its own at the end of a billing period. */
  advance(
    id: string,
    outcome: AdvanceOutcome,
  ): { subscription: Subscription; events: StripeEvent[] } {
    const subscription = this.get("subscription", id);
    const customer = this.get("customer", subscription.customer);
    if (subscription.status === "canceled") {
      throw new SimulationConflict(`subscription ${id} is already canceled`);
    }
    const before = snapshot(subscription);
    const events: StripeEvent[] = [];
    const updated = () => {
      const previous = previousAttributes(before, snapshot(subscription));
      return this.event("customer.subscription.updated", subscription, AUTOMATIC, previous);
    };
    const latest = subscription.latest_invoice
      ? this.find("invoice", subscription.latest_invoice)
      : undefined;

    if (outcome === "mark_unpaid") {
      if (subscription.status !== "past_due" || latest?.status !== "open") {
        throw new SimulationConflict(`subscription ${id} is not past_due with an open invoice`);
      }
      // The last retry fails; the invoice stays open, Stripe stops retrying it.
      latest.attempt_count += 1;
      latest.next_payment_attempt = null;
      subscription.status = "unpaid";
      events.push(this.event("invoice.payment_failed", latest, AUTOMATIC), updated());
    } else if (outcome === "end_period") {
      if (!subscription.cancel_at_period_end && subscription.cancel_at === null) {
        if (subscription.status !== "past_due") {
          throw new SimulationConflict(
            `subscription ${id} is not set to cancel at period end (and is not past_due)`,
          );
        }
        subscription.cancellation_details.reason = "payment_failed";
      }
      const now = nowSeconds();
      subscription.status = "canceled";
      subscription.ended_at = now;
      subscription.canceled_at ??= now;
      if (latest && latest.status === "open") latest.next_payment_attempt = null;
      events.push(this.event("customer.subscription.deleted", subscription, AUTOMATIC));
    } else if (subscription.status === "past_due" && latest?.status === "open") {
      // Dunning: a retry of the open renewal invoice, not a new period.
      latest.attempt_count += 1;
      if (outcome === "renew_paid") {
        const now = nowSeconds();
        latest.status = "paid";
        latest.amount_paid = latest.amount_due;
        latest.amount_remaining = 0;
        latest.next_payment_attempt = null;
        latest.auto_advance = false;
        latest.status_transitions.paid_at = now;
        subscription.status = "active";
        events.push(
          this.event("invoice.paid", latest, AUTOMATIC),
          this.event("invoice.payment_succeeded", latest, AUTOMATIC),
          updated(),
        );
      } else {
        latest.next_payment_attempt = nowSeconds() + 3 * 24 * 3600;
        events.push(this.event("invoice.payment_failed", latest, AUTOMATIC));
      }
    } else {
      if (subscription.cancel_at_period_end) {
        throw new SimulationConflict(
          `subscription ${id} cancels at period end; advance it with end_period`,
        );
      }
      const previousStart = subscription.items.data[0]?.current_period_start ?? 0;
      const previousEnd = this.periodEnd(subscription);
      const anchorDay = new Date(subscription.billing_cycle_anchor * 1000).getUTCDate();
      for (const item of subscription.items.data) {
        item.current_period_start = previousEnd;
        item.current_period_end = addMonth(previousEnd, anchorDay);
      }
      const paid = outcome === "renew_paid";
      // A renewal invoice's own period is the period that just ended.
      const invoice = this.newInvoice(
        subscription,
        customer,
        "subscription_cycle",
        previousStart,
        previousEnd,
        paid,
      );
      subscription.latest_invoice = invoice.id;
      if (paid) {
        subscription.status = "active";
        events.push(
          updated(),
          this.event("invoice.paid", invoice, AUTOMATIC),
          this.event("invoice.payment_succeeded", invoice, AUTOMATIC),
        );
      } else {
        subscription.status = "past_due";
        events.push(this.event("invoice.payment_failed", invoice, AUTOMATIC), updated());
      }
    }
    this.sink.publish(events, subscription.customer);
    return { subscription, events };
  }

  // ---- billing portal ------------------------------------------------------------------------

  createPortalSession(params: Params): PortalSession {
    const customerId = reqString(params, "customer");
    this.get("customer", customerId, "customer", 400);
    const configuration = optString(params, "configuration") ?? this.portalConfiguration;
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
      url: `${this.baseUrl}/stripe/portal/${id}`,
    };
    this.objects.set(id, session);
    return session;
  }
}
