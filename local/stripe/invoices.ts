import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { optString } from "./form.ts";
import { newId, nowSeconds } from "./ids.ts";
import { listOf, PAGINATION, paginate } from "./list.ts";
import {
  type Customer,
  formatAmount,
  type Invoice,
  type InvoiceLineItem,
  type Subscription,
} from "./objects.ts";
import { productName } from "./prices.ts";
import type { StripeStore } from "./store.ts";

const ACCOUNT_NAME = "Local Cloud Test Account";

export function newInvoice(
  store: StripeStore,
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
      description: `${item.quantity} × ${productName(store, item.price)} (at ${formatAmount(item.price.unit_amount, item.price.currency)} / month)`,
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
    hosted_invoice_url: `${store.baseUrl}/stripe/invoice/${id}`,
    invoice_pdf: `${store.baseUrl}/stripe/invoice/${id}?format=pdf`,
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
  store.objects.set(id, invoice);
  return invoice;
}

/** `/v1/invoices`: list, retrieve, lines. */
export function invoiceRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/invoices");
  r.get(
    "",
    [
      "collection_method",
      "created",
      "customer",
      "customer_account",
      "due_date",
      "expand",
      "status",
      "subscription",
      ...PAGINATION,
    ],
    ({ params }) => {
      const customer = optString(params, "customer");
      const subscription = optString(params, "subscription");
      const status = optString(params, "status");
      const items = store
        .all("invoice")
        .filter(
          (i) =>
            (customer === undefined || i.customer === customer) &&
            (subscription === undefined ||
              i.parent.subscription_details.subscription === subscription) &&
            (status === undefined || i.status === status),
        );
      return listOf(items, params, "/v1/invoices", "invoice");
    },
  );
  r.get("/:id", ["expand"], ({ path }) => store.get("invoice", path.id ?? ""));
  r.get("/:id/lines", ["expand", ...PAGINATION], ({ path, params }) => {
    const invoice = store.get("invoice", path.id ?? "");
    return paginate(invoice.lines.data, params, `/v1/invoices/${invoice.id}/lines`, "line_item");
  });
  return r.app;
}
