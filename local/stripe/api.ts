import type { Billing, RequestRef } from "./billing.ts";
import { invalidRequest, missingParam, noSuchObject, StripeApiError } from "./errors.ts";
import {
  canonicalParams,
  checkKnownParams,
  optArray,
  optBool,
  optInt,
  optObject,
  optString,
  type Params,
  parseFormParams,
} from "./form.ts";
import { newId } from "./ids.ts";
import { API_VERSION, type ListObject } from "./objects.ts";
import type { StripeUsage } from "./usage.ts";

/**
 * A switched-on failure of Stripe's side. It strikes once the endpoint began executing, so an
 * idempotent request's 500 is saved and replayed like any other result. `remaining` counts the
 * failures left (undefined: until switched off); `method` and `path` (exact) narrow it to one
 * endpoint; `when: "after"` lets the request take effect and loses only its answer (Stripe did
 * the work, the client sees a 500).
 */
export interface ApiFault {
  mode: "none" | "error";
  remaining?: number | undefined;
  method?: string | undefined;
  path?: string | undefined;
  when?: "before" | "after" | undefined;
}

interface ApiContext {
  params: Params;
  path: Record<string, string>;
  request: RequestRef;
}

interface Route {
  method: "GET" | "POST" | "DELETE";
  /** `METHOD /v1/path/:id`, the operation's name in the usage counters. */
  operation: string;
  pattern: RegExp;
  names: string[];
  /** Top-level parameters the real endpoint accepts; others are `parameter_unknown`. */
  known: readonly string[];
  handle(ctx: ApiContext): object;
}

interface IdempotentResult {
  endpoint: string;
  fingerprint: string;
  state: "running" | "done";
  status: number;
  body: unknown;
  requestId: string;
  expiresAt: number;
}

/** Raised by a switched-on fault; answered as Stripe's 500 `api_error`. */
class InjectedFault extends Error {}

const PAGINATION = ["limit", "starting_after", "ending_before"] as const;
const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

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
const SUBSCRIPTION_UPDATE = [
  "add_invoice_items",
  "application_fee_percent",
  "automatic_tax",
  "billing_cycle_anchor",
  "billing_schedules",
  "billing_thresholds",
  "cancel_at",
  "cancel_at_period_end",
  "cancellation_details",
  "collection_method",
  "days_until_due",
  "default_payment_method",
  "default_source",
  "default_tax_rates",
  "description",
  "discounts",
  "expand",
  "invoice_settings",
  "items",
  "metadata",
  "off_session",
  "on_behalf_of",
  "pause_collection",
  "payment_behavior",
  "payment_settings",
  "pending_invoice_item_interval",
  "proration_behavior",
  "proration_date",
  "transfer_data",
  "trial_end",
  "trial_from_plan",
  "trial_settings",
];

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function maskKey(key: string): string {
  const prefix = key.match(/^[a-z]+_(test|live)_/)?.[0] ?? "";
  const tail = key.slice(-4);
  return `${prefix}${"*".repeat(Math.max(0, key.length - prefix.length - 4))}${tail}`;
}

/** `created`-style filters: an exact number or `{gt, gte, lt, lte}`. */
function matchesRange(value: number, params: Params, name: string): boolean {
  const raw = params[name];
  if (raw === undefined) return true;
  if (typeof raw === "string") return value === optInt(params, name);
  const range = optObject(params, name) ?? {};
  const bound = (op: string) => optInt(range, op, `${name}[${op}]`);
  const [gt, gte, lt, lte] = [bound("gt"), bound("gte"), bound("lt"), bound("lte")];
  return (
    (gt === undefined || value > gt) &&
    (gte === undefined || value >= gte) &&
    (lt === undefined || value < lt) &&
    (lte === undefined || value <= lte)
  );
}

function paginate<T extends { id: string }>(
  items: T[],
  params: Params,
  url: string,
  kind: string,
): ListObject<T> {
  const limit = optInt(params, "limit") ?? 10;
  if (limit < 1 || limit > 100) {
    throw invalidRequest(`Invalid limit: must be at least 1 and no more than 100 (got ${limit}).`, {
      param: "limit",
    });
  }
  const after = optString(params, "starting_after");
  const before = optString(params, "ending_before");
  let page: T[];
  let hasMore: boolean;
  if (before) {
    const idx = items.findIndex((i) => i.id === before);
    if (idx < 0) throw noSuchObject(kind, before, "ending_before", 400);
    page = items.slice(Math.max(0, idx - limit), idx);
    hasMore = idx - limit > 0;
  } else {
    let start = 0;
    if (after) {
      const idx = items.findIndex((i) => i.id === after);
      if (idx < 0) throw noSuchObject(kind, after, "starting_after", 400);
      start = idx + 1;
    }
    page = items.slice(start, start + limit);
    hasMore = start + limit < items.length;
  }
  return { object: "list", data: page, has_more: hasMore, url };
}

/**
 * The `/v1` API as stripe-node sends it: bearer auth, form-encoded (nested `a[b]=`) params,
 * `Idempotency-Key`, `expand[]`, list pagination and Stripe's error shape.
 */
export class StripeApi {
  private readonly billing: Billing;
  private readonly secretKey: string;
  private readonly routes: Route[] = [];
  private readonly idempotency = new Map<string, IdempotentResult>();
  private readonly fault: ApiFault;

  private readonly usage: StripeUsage | undefined;

  constructor(
    billing: Billing,
    secretKey: string,
    fault: ApiFault = { mode: "none" },
    usage?: StripeUsage,
  ) {
    this.billing = billing;
    this.usage = usage;
    this.secretKey = secretKey;
    this.fault = fault;
    this.defineRoutes();
  }

  /** Throws when the switched-on fault covers this request at this stage (and counts it down). */
  private strikeFault(method: string, pathname: string, stage: "before" | "after"): void {
    const f = this.fault;
    if (
      f.mode !== "error" ||
      (f.when ?? "before") !== stage ||
      (f.method !== undefined && f.method !== method) ||
      (f.path !== undefined && f.path !== pathname)
    ) {
      return;
    }
    if (f.remaining !== undefined) {
      f.remaining -= 1;
      if (f.remaining <= 0) {
        f.mode = "none";
        f.remaining = undefined;
        f.method = undefined;
        f.path = undefined;
        f.when = undefined;
      }
    }
    throw new InjectedFault("local stripe: API fault switched on");
  }

  private route(
    method: Route["method"],
    path: string,
    known: readonly string[],
    handle: Route["handle"],
  ): void {
    const names: string[] = [];
    const source = path.replace(/:([a-z_]+)/g, (_, name: string) => {
      names.push(name);
      return "([^/]+)";
    });
    this.routes.push({
      method,
      operation: `${method} ${path}`,
      pattern: new RegExp(`^${source}$`),
      names,
      known,
      handle,
    });
  }

  private defineRoutes(): void {
    const b = this.billing;
    const list = <T extends { id: string; created: number }>(
      items: T[],
      params: Params,
      url: string,
      kind: string,
    ) =>
      paginate(
        items.filter((i) => matchesRange(i.created, params, "created")),
        params,
        url,
        kind,
      );

    // Customers
    this.route("POST", "/v1/customers", CUSTOMER_CREATE, ({ params, request }) =>
      b.createCustomer(params, request),
    );
    this.route(
      "GET",
      "/v1/customers",
      ["created", "email", "expand", "test_clock", ...PAGINATION],
      ({ params }) => {
        const email = optString(params, "email");
        const items = b.all("customer").filter((c) => email === undefined || c.email === email);
        return list(items, params, "/v1/customers", "customer");
      },
    );
    // Search (https://docs.stripe.com/search): `field:'value'` clauses joined by AND. Real
    // Stripe indexes writes with a lag (under a minute normally); the stand-in has none.
    this.route(
      "GET",
      "/v1/customers/search",
      ["expand", "limit", "page", "query"],
      ({ params }) => {
        const query = optString(params, "query");
        if (query === undefined) throw missingParam("query");
        const matches = b.searchCustomers(query);
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
      },
    );
    this.route("GET", "/v1/customers/:id", ["expand"], ({ path }) =>
      b.retrieveCustomer(path.id ?? ""),
    );
    this.route("DELETE", "/v1/customers/:id", [], ({ path, request }) =>
      b.deleteCustomer(path.id ?? "", request),
    );
    this.route("POST", "/v1/customers/:id", CUSTOMER_UPDATE, ({ path, params, request }) =>
      b.updateCustomer(path.id ?? "", params, request),
    );

    // Prices and products (one seeded recurring price)
    this.route(
      "GET",
      "/v1/prices",
      [
        "active",
        "created",
        "currency",
        "expand",
        "lookup_keys",
        "product",
        "recurring",
        "type",
        ...PAGINATION,
      ],
      ({ params }) => {
        const active = optBool(params, "active");
        const product = optString(params, "product");
        const type = optString(params, "type");
        const currency = optString(params, "currency");
        const lookupKeys = optArray(params, "lookup_keys");
        const items = b
          .all("price")
          .filter(
            (p) =>
              (active === undefined || p.active === active) &&
              (product === undefined || p.product === product) &&
              (type === undefined || p.type === type) &&
              (currency === undefined || p.currency === currency) &&
              (lookupKeys === undefined || lookupKeys.includes(p.lookup_key ?? "")),
          );
        return list(items, params, "/v1/prices", "price");
      },
    );
    this.route("GET", "/v1/prices/:id", ["expand"], ({ path }) => b.get("price", path.id ?? ""));
    this.route("GET", "/v1/products/:id", ["expand"], ({ path }) =>
      b.get("product", path.id ?? ""),
    );

    // Checkout
    this.route("POST", "/v1/checkout/sessions", CHECKOUT_CREATE, ({ params }) =>
      b.createCheckoutSession(params),
    );
    this.route(
      "GET",
      "/v1/checkout/sessions",
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
        const items = b
          .all("checkout.session")
          .filter(
            (s) =>
              (customer === undefined || s.customer === customer) &&
              (subscription === undefined || s.subscription === subscription) &&
              (status === undefined || s.status === status),
          );
        return list(items, params, "/v1/checkout/sessions", "checkout.session");
      },
    );
    this.route("GET", "/v1/checkout/sessions/:id", ["expand"], ({ path }) =>
      b.get("checkout.session", path.id ?? ""),
    );
    this.route(
      "GET",
      "/v1/checkout/sessions/:id/line_items",
      ["expand", ...PAGINATION],
      ({ path, params }) => {
        const id = path.id ?? "";
        b.get("checkout.session", id);
        return paginate(
          structuredClone(b.checkoutLineItems(id)),
          params,
          `/v1/checkout/sessions/${id}/line_items`,
          "item",
        );
      },
    );
    this.route("POST", "/v1/checkout/sessions/:id/expire", ["expand"], ({ path, request }) =>
      b.expireCheckoutSession(path.id ?? "", request),
    );

    // Subscriptions
    this.route(
      "GET",
      "/v1/subscriptions",
      [
        "automatic_tax",
        "collection_method",
        "created",
        "current_period_end",
        "current_period_start",
        "customer",
        "customer_account",
        "expand",
        "plan",
        "price",
        "status",
        "test_clock",
        ...PAGINATION,
      ],
      ({ params }) => {
        const customer = optString(params, "customer");
        const price = optString(params, "price") ?? optString(params, "plan");
        const status = optString(params, "status");
        const items = b.all("subscription").filter((s) => {
          if (customer !== undefined && s.customer !== customer) return false;
          if (price !== undefined && !s.items.data.some((i) => i.price.id === price)) return false;
          // Without a status filter Stripe lists only subscriptions that are not canceled.
          if (status === undefined) return s.status !== "canceled";
          if (status === "all") return true;
          if (status === "ended") return s.status === "canceled";
          return s.status === status;
        });
        return list(items, params, "/v1/subscriptions", "subscription");
      },
    );
    this.route("GET", "/v1/subscriptions/:id", ["expand"], ({ path }) =>
      b.get("subscription", path.id ?? ""),
    );
    this.route("POST", "/v1/subscriptions/:id", SUBSCRIPTION_UPDATE, ({ path, params, request }) =>
      b.updateSubscription(path.id ?? "", params, request),
    );
    this.route(
      "DELETE",
      "/v1/subscriptions/:id",
      ["cancellation_details", "expand", "invoice_now", "prorate"],
      ({ path, params, request }) => b.cancelSubscription(path.id ?? "", params, request),
    );

    // Billing portal
    this.route(
      "POST",
      "/v1/billing_portal/sessions",
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
      ({ params }) => b.createPortalSession(params),
    );

    // Invoices
    this.route(
      "GET",
      "/v1/invoices",
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
        const items = b
          .all("invoice")
          .filter(
            (i) =>
              (customer === undefined || i.customer === customer) &&
              (subscription === undefined ||
                i.parent.subscription_details.subscription === subscription) &&
              (status === undefined || i.status === status),
          );
        return list(items, params, "/v1/invoices", "invoice");
      },
    );
    this.route("GET", "/v1/invoices/:id", ["expand"], ({ path }) =>
      b.get("invoice", path.id ?? ""),
    );
    this.route("GET", "/v1/invoices/:id/lines", ["expand", ...PAGINATION], ({ path, params }) => {
      const invoice = b.get("invoice", path.id ?? "");
      return paginate(invoice.lines.data, params, `/v1/invoices/${invoice.id}/lines`, "line_item");
    });

    // Events
    this.route(
      "GET",
      "/v1/events",
      ["created", "delivery_success", "expand", "type", "types", ...PAGINATION],
      ({ params }) => {
        const type = optString(params, "type");
        const types = optArray(params, "types");
        const deliverySuccess = optBool(params, "delivery_success");
        const typeMatches = (t: string) =>
          type === undefined ||
          t === type ||
          (type.endsWith(".*") && t.startsWith(type.slice(0, -1)));
        const items = b
          .all("event")
          .filter(
            (e) =>
              typeMatches(e.type) &&
              (types === undefined || types.includes(e.type)) &&
              (deliverySuccess === undefined || (e.pending_webhooks === 0) === deliverySuccess),
          );
        return list(items, params, "/v1/events", "event");
      },
    );
    this.route("GET", "/v1/events/:id", ["expand"], ({ path }) => b.get("event", path.id ?? ""));
  }

  private authenticate(req: Request): void {
    const header = req.headers.get("authorization") ?? "";
    let key = "";
    if (header.startsWith("Bearer ")) key = header.slice(7).trim();
    else if (header.startsWith("Basic ")) {
      key = Buffer.from(header.slice(6), "base64").toString("utf8").split(":")[0] ?? "";
    }
    if (!key) {
      throw new StripeApiError(
        401,
        "invalid_request_error",
        "You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details, or we can help at https://support.stripe.com/.",
      );
    }
    if (key !== this.secretKey) {
      throw new StripeApiError(
        401,
        "invalid_request_error",
        `Invalid API Key provided: ${maskKey(key)}`,
        { code: "api_key_invalid" },
      );
    }
  }

  /** Replaces ids with their objects along each `expand[]` path, on a copy of the answer. */
  private expand(body: unknown, paths: string[]): void {
    const sorted = [...paths].sort((a, c) => a.split(".").length - c.split(".").length);
    for (const path of sorted) this.expandPath(body, path.split("."), path);
  }

  private includable(node: Record<string, unknown>, field: string): unknown {
    if (node.object === "checkout.session" && field === "line_items") {
      const id = String(node.id);
      return {
        object: "list",
        data: structuredClone(this.billing.checkoutLineItems(id)),
        has_more: false,
        url: `/v1/checkout/sessions/${id}/line_items`,
      };
    }
    if (node.object === "customer" && field === "subscriptions") {
      const data = this.billing
        .all("subscription")
        .filter((s) => s.customer === node.id && s.status !== "canceled");
      return {
        object: "list",
        data: structuredClone(data),
        has_more: false,
        total_count: data.length,
        url: `/v1/customers/${String(node.id)}/subscriptions`,
      };
    }
    return undefined;
  }

  private expandPath(node: unknown, segments: string[], full: string): void {
    if (Array.isArray(node)) {
      for (const el of node) this.expandPath(el, segments, full);
      return;
    }
    if (!isPlainObject(node)) return;
    const [head, ...rest] = segments;
    if (head === undefined) return;
    const cannot = () => invalidRequest(`This property cannot be expanded (${full}).`);
    let value = node[head];
    if (value === undefined) {
      value = this.includable(node, head);
      if (value === undefined) throw cannot();
      node[head] = value;
    } else if (typeof value === "string") {
      const target = this.billing.objects.get(value);
      if (!target) throw cannot();
      value = structuredClone(target);
      node[head] = value;
    } else if (value !== null && typeof value !== "object") {
      throw cannot();
    }
    if (rest.length > 0) this.expandPath(value, rest, full);
  }

  async handle(req: Request): Promise<Response> {
    const requestId = newId("req");
    const url = new URL(req.url);
    const headers: Record<string, string> = {
      "content-type": "application/json",
      "cache-control": "no-cache, no-store",
      "request-id": requestId,
      "stripe-version": req.headers.get("stripe-version") ?? API_VERSION,
    };
    // Stripe answers `Stripe-Should-Retry: false` on its 500s: the same key would only replay the
    // saved 500 (stripe-node honours the header, see RequestSender._shouldRetry).
    const respond = (status: number, body: unknown, extra: Record<string, string> = {}) =>
      new Response(JSON.stringify(body, null, 2), {
        status,
        headers: {
          ...headers,
          ...(status >= 500 ? { "stripe-should-retry": "false" } : {}),
          ...extra,
        },
      });

    const idempotencyKey = req.method === "POST" ? req.headers.get("idempotency-key") : null;
    let claimed: IdempotentResult | undefined;
    try {
      this.authenticate(req);
      const method = req.method.toUpperCase();
      let match: { route: Route; groups: string[] } | undefined;
      for (const route of this.routes) {
        if (route.method !== method) continue;
        const m = route.pattern.exec(url.pathname);
        if (m) {
          match = { route, groups: m.slice(1) };
          break;
        }
      }
      if (!match) {
        throw invalidRequest(
          `Unrecognized request URL (${method}: ${url.pathname}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
          {},
          404,
        );
      }
      this.usage?.call(match.route.operation);
      const path: Record<string, string> = {};
      match.route.names.forEach((name, i) => {
        path[name] = decodeURIComponent(match.groups[i] ?? "");
      });
      const params = parseFormParams(method === "POST" ? await req.text() : url.search.slice(1));

      if (idempotencyKey) {
        const endpoint = `${method} ${url.pathname}`;
        const fingerprint = canonicalParams(params);
        const now = Date.now();
        const previous = this.idempotency.get(idempotencyKey);
        if (previous && previous.expiresAt > now) {
          if (previous.endpoint !== endpoint) {
            throw new StripeApiError(
              400,
              "idempotency_error",
              `Keys for idempotent requests can only be used for the same endpoint they were first used for ('${previous.endpoint}' vs '${endpoint}'). Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
            );
          }
          if (previous.fingerprint !== fingerprint) {
            throw new StripeApiError(
              400,
              "idempotency_error",
              `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
            );
          }
          if (previous.state === "running") {
            throw new StripeApiError(
              409,
              "idempotency_error",
              `There is currently another in-progress request using this Idempotent Key (that probably means you submitted twice, and the other request is still going through): ${idempotencyKey}. Please try again later.`,
            );
          }
          return respond(previous.status, previous.body, {
            "idempotency-key": idempotencyKey,
            "idempotent-replayed": "true",
            "original-request": previous.requestId,
          });
        }
        claimed = {
          endpoint,
          fingerprint,
          state: "running",
          status: 0,
          body: null,
          requestId,
          expiresAt: now + IDEMPOTENCY_TTL_MS,
        };
        this.idempotency.set(idempotencyKey, claimed);
      }

      checkKnownParams(params, match.route.known);
      this.strikeFault(method, url.pathname, "before");
      const request: RequestRef = { id: requestId, idempotency_key: idempotencyKey };
      const body = structuredClone(match.route.handle({ params, path, request }));
      const expand = optArray(params, "expand") ?? [];
      if (expand.some((e) => typeof e !== "string")) {
        throw invalidRequest("Invalid array", { param: "expand" });
      }
      this.expand(body, expand as string[]);
      this.strikeFault(method, url.pathname, "after");

      if (claimed) {
        claimed.state = "done";
        claimed.status = 200;
        claimed.body = body;
      }
      return respond(200, body, idempotencyKey ? { "idempotency-key": idempotencyKey } : {});
    } catch (err) {
      let status: number;
      let body: unknown;
      if (err instanceof StripeApiError) {
        status = err.status;
        body = err.toBody(requestId);
      } else {
        if (!(err instanceof InjectedFault)) console.error("[local-stripe]", err);
        status = 500;
        body = { error: { message: "An unknown error occurred", type: "api_error" } };
      }
      if (claimed && idempotencyKey && this.idempotency.get(idempotencyKey) === claimed) {
        if (status >= 500) {
          // "Stripe saves the status code and body of the first request made with a given
          // idempotency key after endpoint execution begins. Retries with the same key return
          // the saved response, including 500 errors." (docs.stripe.com/api/idempotent_requests)
          // Keys are pruned after at least 24 hours (IDEMPOTENCY_TTL_MS).
          claimed.state = "done";
          claimed.status = status;
          claimed.body = body;
        } else {
          // A 4xx here is a refused request (validation, unknown object): the stand-in saves
          // nothing for it, so a corrected retry with the same key runs again.
          this.idempotency.delete(idempotencyKey);
        }
      }
      return respond(status, body, idempotencyKey ? { "idempotency-key": idempotencyKey } : {});
    }
  }
}
