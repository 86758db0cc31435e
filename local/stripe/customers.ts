import type { Hono } from "hono";
import { Routes, type StripeApi } from "./api.ts";
import { invalidRequest, missingParam } from "./errors.ts";
import { mergeMetadata, optInt, optString, type Params } from "./form.ts";
import { newId, nowSeconds, randomCode } from "./ids.ts";
import { listOf, PAGINATION } from "./list.ts";
import type { Customer } from "./objects.ts";
import { previousAttributes, type RequestRef, type StripeStore, snapshot } from "./store.ts";
import { cancelSubscription } from "./subscriptions.ts";

// Parameter names from stripe@23's *Params types (API 2026-10-28).
const CUSTOMER_CREATE = [
  "address",
  "balance",
  "business_name",
  "cash_balance",
  "description",
  "email",
  "expand",
  "individual_name",
  "invoice_prefix",
  "invoice_settings",
  "metadata",
  "name",
  "next_invoice_sequence",
  "payment_method",
  "phone",
  "preferred_locales",
  "shipping",
  "source",
  "tax",
  "tax_exempt",
  "tax_id_data",
  "test_clock",
  "validate",
];
const CUSTOMER_UPDATE = [
  ...CUSTOMER_CREATE.filter((p) => !["payment_method", "tax_id_data", "test_clock"].includes(p)),
  "default_source",
];

export function newCustomer(store: StripeStore, fields: Partial<Customer>): Customer {
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
  store.objects.set(customer.id, customer);
  return customer;
}

export function createCustomer(store: StripeStore, params: Params, request: RequestRef): Customer {
  const customer = newCustomer(store, {
    email: optString(params, "email") ?? null,
    name: optString(params, "name") ?? null,
    description: optString(params, "description") ?? null,
    phone: optString(params, "phone") ?? null,
    metadata: mergeMetadata(params) ?? {},
  });
  store.publish([store.emit("customer.created", customer, request)], customer.id);
  return customer;
}

/** A deleted customer still retrieves, as Stripe's `{id, object, deleted: true}` stub. */
export function retrieveCustomer(
  store: StripeStore,
  id: string,
): Customer | { id: string; object: "customer"; deleted: true } {
  if (store.deletedCustomers.has(id)) return { id, object: "customer", deleted: true };
  return store.get("customer", id);
}

/** Deletes a customer: it leaves lists and search, and requests naming it get resource_missing. */
export function deleteCustomer(
  store: StripeStore,
  id: string,
  request: RequestRef,
): { id: string; object: "customer"; deleted: true } {
  const customer = store.get("customer", id);
  for (const s of store.all("subscription")) {
    // Stripe cancels a deleted customer's subscriptions immediately.
    if (s.customer === id && s.status !== "canceled") cancelSubscription(store, s.id, {}, request);
  }
  store.objects.delete(id);
  store.deletedCustomers.add(id);
  store.publish([store.emit("customer.deleted", customer, request)], id);
  return { id, object: "customer", deleted: true };
}

/**
 * Customers matching a search query in Stripe's query language, newest first. Supports what
 * an integration looks customers up by: `metadata['key']:'value'`, `email:'x'`, `name:'x'`,
 * joined by ` AND `; anything else is refused as Stripe refuses a bad query.
 */
export function searchCustomers(store: StripeStore, query: string): Customer[] {
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
  return store.all("customer").filter((c) => tests.every((t) => t(c)));
}

export function updateCustomer(
  store: StripeStore,
  id: string,
  params: Params,
  request: RequestRef,
): Customer {
  const customer = store.get("customer", id);
  const before = snapshot(customer);
  for (const field of ["email", "name", "description", "phone"] as const) {
    const v = optString(params, field);
    if (v !== undefined) customer[field] = v === "" ? null : v;
  }
  const metadata = mergeMetadata(params, customer.metadata);
  if (metadata) customer.metadata = metadata;
  const previous = previousAttributes(before, snapshot(customer));
  if (Object.keys(previous).length > 0) {
    store.publish([store.emit("customer.updated", customer, request, previous)], customer.id);
  }
  return customer;
}

/** `/v1/customers`: create, list, search, retrieve, update, delete. */
export function customerRoutes(api: StripeApi, store: StripeStore): Hono {
  const r = new Routes(api, "/v1/customers");
  r.post("", CUSTOMER_CREATE, ({ params, request }) => createCustomer(store, params, request));
  r.get("", ["created", "email", "expand", "test_clock", ...PAGINATION], ({ params }) => {
    const email = optString(params, "email");
    const items = store.all("customer").filter((c) => email === undefined || c.email === email);
    return listOf(items, params, "/v1/customers", "customer");
  });
  // Search (https://docs.stripe.com/search): `field:'value'` clauses joined by AND. Real
  // Stripe indexes writes with a lag (under a minute normally); the stand-in has none.
  r.get("/search", ["expand", "limit", "page", "query"], ({ params }) => {
    const query = optString(params, "query");
    if (query === undefined) throw missingParam("query");
    const matches = searchCustomers(store, query);
    const limit = optInt(params, "limit") ?? 10;
    if (limit < 1 || limit > 100) {
      throw invalidRequest(
        `Invalid limit: must be at least 1 and no more than 100 (got ${limit}).`,
        { param: "limit" },
      );
    }
    const page = optString(params, "page");
    const start = page ? Number.parseInt(page, 10) || 0 : 0;
    const data = matches.slice(start, start + limit);
    const hasMore = start + limit < matches.length;
    return {
      object: "search_result",
      data,
      has_more: hasMore,
      next_page: hasMore ? String(start + limit) : null,
      url: "/v1/customers/search",
    };
  });
  r.get("/:id", ["expand"], ({ path }) => retrieveCustomer(store, path.id ?? ""));
  r.delete("/:id", [], ({ path, request }) => deleteCustomer(store, path.id ?? "", request));
  r.post("/:id", CUSTOMER_UPDATE, ({ path, params, request }) =>
    updateCustomer(store, path.id ?? "", params, request),
  );
  return r.app;
}
