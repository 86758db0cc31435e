import { Hono } from "hono";
import { invalidRequest, StripeApiError } from "./errors.ts";
import {
  canonicalParams,
  checkKnownParams,
  optArray,
  type Params,
  parseFormParams,
} from "./form.ts";
import { newId } from "./ids.ts";
import { API_VERSION } from "./objects.ts";
import { isPlainObject, type RequestRef, type StripeStore } from "./store.ts";
import type { StripeUsage } from "./usage.ts";

/**
 * A switched-on failure of Stripe's side. It strikes once the endpoint began executing, so an
 * idempotent request's 500 is saved and replayed like any other result. `remaining` counts the
 * failures left (undefined: until switched off); `method` and `path` (exact) narrow it to one
 * endpoint; `when: "after"` lets the request take effect and loses only its answer (Stripe did
 * the work, the client sees a 500).
 */
export interface ApiFault {
  /** `rate_limit`: Stripe's 429 `rate_limit` (too many requests), before any work is done. */
  mode: "none" | "error" | "rate_limit";
  remaining?: number | undefined;
  method?: string | undefined;
  path?: string | undefined;
  when?: "before" | "after" | undefined;
}

/** What an operation's handler receives. */
export interface ApiContext {
  params: Params;
  /** Path parameters (`:id`), decoded. */
  path: Record<string, string>;
  request: RequestRef;
}

/** One `/v1` operation: its name in the usage counters, the parameters it accepts, its work. */
interface Operation {
  /** `METHOD /v1/path/:id`. */
  name: string;
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

const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

function maskKey(key: string): string {
  const prefix = key.match(/^[a-z]+_(test|live)_/)?.[0] ?? "";
  const tail = key.slice(-4);
  return `${prefix}${"*".repeat(Math.max(0, key.length - prefix.length - 4))}${tail}`;
}

/**
 * The `/v1` API as stripe-node sends it: bearer auth, form-encoded (nested `a[b]=`) params,
 * `Idempotency-Key`, `expand[]` and Stripe's error shape, shared by every resource's routes.
 */
export class StripeApi {
  private readonly store: StripeStore;
  private readonly secretKey: string;
  private readonly idempotency = new Map<string, IdempotentResult>();
  private readonly fault: ApiFault;
  private readonly usage: StripeUsage | undefined;

  constructor(
    store: StripeStore,
    secretKey: string,
    fault: ApiFault = { mode: "none" },
    usage?: StripeUsage,
  ) {
    this.store = store;
    this.secretKey = secretKey;
    this.fault = fault;
    this.usage = usage;
  }

  /** Throws when the switched-on fault covers this request at this stage (and counts it down). */
  private strikeFault(method: string, pathname: string, stage: "before" | "after"): void {
    const f = this.fault;
    if (
      f.mode === "none" ||
      (f.when ?? "before") !== stage ||
      (f.method !== undefined && f.method !== method) ||
      (f.path !== undefined && f.path !== pathname)
    ) {
      return;
    }
    const mode = f.mode;
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
    if (mode === "rate_limit") {
      // Stripe's answer when an account sends too many requests (docs.stripe.com/rate-limits).
      throw invalidRequest(
        "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
        { code: "rate_limit" },
        429,
      );
    }
    throw new InjectedFault("local stripe: API fault switched on");
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
        data: structuredClone(this.store.checkoutLineItems(id)),
        has_more: false,
        url: `/v1/checkout/sessions/${id}/line_items`,
      };
    }
    if (node.object === "customer" && field === "subscriptions") {
      const data = this.store
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
      const target = this.store.objects.get(value);
      if (!target) throw cannot();
      value = structuredClone(target);
      node[head] = value;
    } else if (value !== null && typeof value !== "object") {
      throw cannot();
    }
    if (rest.length > 0) this.expandPath(value, rest, full);
  }

  /**
   * Runs one request through what every `/v1` endpoint does: authentication, the parameters,
   * `Idempotency-Key`, the switched-on fault, `expand[]` and Stripe's error shape. A null
   * `operation` (no route matched) is Stripe's 404 once the key is checked.
   */
  async run(
    req: Request,
    operation: Operation | null,
    path: Record<string, string> = {},
  ): Promise<Response> {
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
      if (!operation) {
        throw invalidRequest(
          `Unrecognized request URL (${method}: ${url.pathname}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`,
          {},
          404,
        );
      }
      this.usage?.call(operation.name);
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

      checkKnownParams(params, operation.known);
      this.strikeFault(method, url.pathname, "before");
      const request: RequestRef = { id: requestId, idempotency_key: idempotencyKey };
      const body = structuredClone(operation.handle({ params, path, request }));
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

/**
 * One resource's `/v1` routes as a Hono sub-app (mounted by the service at `base`), each route
 * running through the API's shared pipeline.
 */
export class Routes {
  readonly app = new Hono();
  readonly #api: StripeApi;
  readonly #base: string;

  constructor(api: StripeApi, base: string) {
    this.#api = api;
    this.#base = base;
  }

  get(path: string, known: readonly string[], handle: Operation["handle"]): this {
    return this.#on("GET", path, known, handle);
  }

  post(path: string, known: readonly string[], handle: Operation["handle"]): this {
    return this.#on("POST", path, known, handle);
  }

  delete(path: string, known: readonly string[], handle: Operation["handle"]): this {
    return this.#on("DELETE", path, known, handle);
  }

  #on(method: string, path: string, known: readonly string[], handle: Operation["handle"]) {
    const operation: Operation = { name: `${method} ${this.#base}${path}`, known, handle };
    this.app.on(method, path === "" ? "/" : path, (c) =>
      this.#api.run(c.req.raw, operation, c.req.param() as Record<string, string>),
    );
    return this;
  }
}
