import Stripe from "stripe";
import { DependencyUnavailableError } from "../errors";

/** Stripe's default signature tolerance; we apply it to future timestamps too. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/** The part of a Stripe subscription this app stores. */
export interface BillingSubscription {
  id: string;
  customerId: string;
  status: string;
  /** The first item's price. */
  priceId: string | null;
  /** Every item's price (a subscription can sell several). */
  priceIds: string[];
  currentPeriodEnd: Date | null;
  cancelAtPeriodEnd: boolean;
  /** `metadata.user_id`, set by our Checkout Session. */
  userId: string | null;
}

/** A verified webhook event reduced to what the handler needs to find the subscription and user. */
export interface BillingEvent {
  id: string;
  type: string;
  /** Unix seconds. */
  created: number;
  subscriptionId: string | null;
  customerId: string | null;
  /** `client_reference_id` or `metadata.user_id` carried by the event's object. */
  userId: string | null;
}

export interface CheckoutInput {
  userId: string;
  customerId: string;
  priceId: string;
  successUrl: string;
  cancelUrl: string;
  idempotencyKey: string;
}

/** The Stripe operations the app uses. Only this module imports `stripe`. */
export interface Billing {
  createCustomer(input: { userId: string; idempotencyKey: string }): Promise<{ id: string }>;
  /**
   * The oldest customer whose `metadata.user_id` is the user's (Stripe's Search API, whose index
   * lags writes by up to about a minute), or null.
   */
  findCustomerByUserId(userId: string): Promise<string | null>;
  /** Deletes a customer; one already gone is fine. */
  deleteCustomer(id: string): Promise<void>;
  /**
   * `replayed`: Stripe answered a saved response for the idempotency key (the session as it was
   * then; it may have been paid or expired since).
   */
  createCheckoutSession(
    input: CheckoutInput,
  ): Promise<{ id: string; url: string; replayed: boolean }>;
  /** `open`, `complete` or `expired`. */
  checkoutSessionStatus(id: string): Promise<string>;
  /** Ids of the customer's Checkout Sessions that can still be paid. */
  listOpenCheckoutSessions(customerId: string): Promise<string[]>;
  /** Expires an open Checkout Session; one already paid or expired is left as it is. */
  expireCheckoutSession(id: string): Promise<void>;
  /** The subscription's current state, or null when Stripe does not know the id. */
  retrieveSubscription(id: string): Promise<BillingSubscription | null>;
  /**
   * Sets `cancel_at_period_end`; the subscription stays active until the period ends. Null when
   * Stripe refuses because the subscription is already canceled (or gone).
   */
  cancelAtPeriodEnd(id: string): Promise<BillingSubscription | null>;
  createPortalSession(input: { customerId: string; returnUrl: string }): Promise<{ url: string }>;
  /** Verifies the signature over the raw body; throws WebhookSignatureError when it is not valid. */
  verifyWebhook(rawBody: string, signature: string | undefined, now: Date): Promise<BillingEvent>;
}

export class WebhookSignatureError extends Error {
  override name = "WebhookSignatureError";
}

/**
 * Stripe refuses portal sessions until the portal settings were saved once in the Dashboard
 * (Settings → Billing → Customer portal) for the mode the key belongs to.
 */
export class PortalNotConfiguredError extends Error {
  override name = "PortalNotConfiguredError";
}

/**
 * Stripe no longer knows an object we stored (`resource_missing`): a customer deleted in the
 * Dashboard, or ids from test mode after a switch to live keys. `param` names the request field.
 */
export class StaleBillingReferenceError extends Error {
  override name = "StaleBillingReferenceError";
  readonly param: string | null;
  constructor(param: string | null, options?: { cause?: unknown }) {
    super(`Stripe does not know the ${param ?? "object"} we sent`, options);
    this.param = param;
  }
}

export interface BillingConfig {
  secretKey: string;
  webhookSecret: string;
  /** Origin of a Stripe stand-in (the local cloud); unset in production. */
  apiBase?: string | undefined;
}

/** Built per request by the services middleware; the Stripe client is made on first use only. */
export function createBilling(config: BillingConfig): Billing {
  let client: Stripe | undefined;
  const stripe = () => {
    client ??= new Stripe(config.secretKey, {
      httpClient: Stripe.createFetchHttpClient(),
      // A Worker request should not hang on Stripe for the SDK's default 80 s.
      timeout: 10_000,
      maxNetworkRetries: 1,
      ...(config.apiBase ? hostOptions(config.apiBase) : {}),
    });
    return client;
  };
  const cryptoProvider = Stripe.createSubtleCryptoProvider();

  return {
    createCustomer: ({ userId, idempotencyKey }) =>
      vendorCall(async () => {
        const customer = await stripe().customers.create(
          { metadata: { user_id: userId } },
          { idempotencyKey },
        );
        return { id: customer.id };
      }),

    findCustomerByUserId: (userId) =>
      vendorCall(async () => {
        // Search values are quoted; a user id is a UUID, so it cannot break out of the quotes.
        const result = await stripe().customers.search({
          query: `metadata['user_id']:'${userId.replace(/['\\]/g, "")}'`,
          limit: 10,
        });
        const oldest = [...result.data].sort((a, b) => a.created - b.created)[0];
        return oldest?.id ?? null;
      }),

    deleteCustomer: (id) =>
      vendorCall(async () => {
        try {
          await stripe().customers.del(id);
        } catch (err) {
          if (err instanceof Stripe.errors.StripeInvalidRequestError && err.statusCode === 404) {
            return;
          }
          throw err;
        }
      }),

    checkoutSessionStatus: (id) =>
      vendorCall(async () => String((await stripe().checkout.sessions.retrieve(id)).status)),

    createCheckoutSession: (input) =>
      vendorCall(async () => {
        const create = (idempotencyKey: string) =>
          stripe().checkout.sessions.create(
            {
              mode: "subscription",
              customer: input.customerId,
              line_items: [{ price: input.priceId, quantity: 1 }],
              client_reference_id: input.userId,
              metadata: { user_id: input.userId },
              subscription_data: { metadata: { user_id: input.userId } },
              success_url: input.successUrl,
              cancel_url: input.cancelUrl,
            },
            { idempotencyKey },
          );
        let session: Stripe.Response<Stripe.Checkout.Session>;
        try {
          session = await create(input.idempotencyKey);
        } catch (err) {
          // A replayed 500: the key is burnt for 24 h, and the click that earned that 500 is
          // over. One retry under a key derived from the failed request (so parallel clicks
          // still converge); a session the failed request did create stays open only until
          // the caller expires the customer's other open sessions.
          const original = replayedFailure(err);
          if (!original) throw err;
          session = await create(`${input.idempotencyKey}:after-failure:${original}`);
        }
        if (!session.url) throw new Error(`Checkout Session ${session.id} has no url`);
        return { id: session.id, url: session.url, replayed: isReplayed(session.lastResponse) };
      }),

    retrieveSubscription: (id) =>
      vendorCall(async () => {
        try {
          return toSubscription(await stripe().subscriptions.retrieve(id));
        } catch (err) {
          if (err instanceof Stripe.errors.StripeInvalidRequestError && err.statusCode === 404) {
            return null;
          }
          throw err;
        }
      }),

    cancelAtPeriodEnd: (id) =>
      vendorCall(async () => {
        try {
          return toSubscription(
            await stripe().subscriptions.update(id, { cancel_at_period_end: true }),
          );
        } catch (err) {
          // "A canceled subscription can only update its cancellation_details and metadata."
          if (err instanceof Stripe.errors.StripeInvalidRequestError) return null;
          throw err;
        }
      }),

    listOpenCheckoutSessions: (customerId) =>
      vendorCall(async () => {
        const page = await stripe().checkout.sessions.list({
          customer: customerId,
          status: "open",
          limit: 100,
        });
        return page.data.map((s) => s.id);
      }),

    expireCheckoutSession: (id) =>
      vendorCall(async () => {
        try {
          await stripe().checkout.sessions.expire(id);
        } catch (err) {
          // Paid or expired since it was listed: nothing left to stop.
          if (err instanceof Stripe.errors.StripeInvalidRequestError) return;
          throw err;
        }
      }),

    createPortalSession: ({ customerId, returnUrl }) =>
      vendorCall(async () => {
        try {
          const session = await stripe().billingPortal.sessions.create({
            customer: customerId,
            return_url: returnUrl,
          });
          return { url: session.url };
        } catch (err) {
          // "No configuration provided and your test mode default configuration has not been
          // created. Provide a configuration or create your default by saving your customer
          // portal settings…": an invalid request without a code, naming the configuration.
          if (
            err instanceof Stripe.errors.StripeInvalidRequestError &&
            err.code === undefined &&
            /configuration/i.test(err.message)
          ) {
            throw new PortalNotConfiguredError(err.message, { cause: err });
          }
          throw err;
        }
      }),

    async verifyWebhook(rawBody, signature, now) {
      if (!signature) throw new WebhookSignatureError("The Stripe-Signature header is missing.");
      const nowSeconds = Math.floor(now.getTime() / 1000);
      // stripe-node only refuses old timestamps; a future one beyond the tolerance is refused too.
      // Read `t` exactly as stripe-node does (the last `t=` element wins), or a header carrying
      // an innocent `t` first would have its signed future `t` checked by nobody.
      let timestamp = Number.NaN;
      for (const item of signature.split(",")) {
        const [key, value] = item.split("=");
        if (key === "t") timestamp = Number.parseInt(value ?? "", 10);
      }
      if (timestamp - nowSeconds > WEBHOOK_TOLERANCE_SECONDS) {
        throw new WebhookSignatureError("The signature timestamp is in the future.");
      }
      let event: Stripe.Event;
      try {
        event = await stripe().webhooks.constructEventAsync(
          rawBody,
          signature,
          config.webhookSecret,
          WEBHOOK_TOLERANCE_SECONDS,
          cryptoProvider,
          now.getTime(),
        );
      } catch (err) {
        // Signature failures and a body that is not JSON are both the sender's fault: 400.
        throw new WebhookSignatureError(err instanceof Error ? err.message : String(err));
      }
      return toBillingEvent(event);
    },
  };
}

/** A header of a stripe-node response or error (a Headers object or a plain record). */
function headerOf(owner: unknown, name: string): string | null {
  const headers = (owner as { headers?: unknown } | undefined)?.headers;
  if (!headers || typeof headers !== "object") return null;
  const value =
    typeof (headers as Headers).get === "function"
      ? (headers as Headers).get(name)
      : (headers as Record<string, unknown>)[name];
  return typeof value === "string" ? value : null;
}

/** Stripe's `Idempotent-Replayed: true`: the saved answer to an earlier request with the key. */
function isReplayed(response: unknown): boolean {
  return headerOf(response, "idempotent-replayed") === "true";
}

/** The id of the original request when `err` is Stripe replaying a saved 5xx, else null. */
function replayedFailure(err: unknown): string | null {
  if (!(err instanceof Stripe.errors.StripeError) || (err.statusCode ?? 0) < 500) return null;
  if (!isReplayed(err)) return null;
  return headerOf(err, "original-request") ?? "unknown";
}

function hostOptions(apiBase: string) {
  const url = new URL(apiBase);
  const protocol = url.protocol === "http:" ? ("http" as const) : ("https" as const);
  return {
    host: url.hostname,
    port: url.port || (protocol === "http" ? 80 : 443),
    protocol,
  };
}

/** Stripe being unreachable, overloaded or failing is a 503 (and, for webhooks, a retry). */
async function vendorCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (
      err instanceof Stripe.errors.StripeConnectionError ||
      err instanceof Stripe.errors.StripeAPIError ||
      err instanceof Stripe.errors.StripeRateLimitError ||
      (err instanceof Stripe.errors.StripeError && (err.statusCode ?? 0) >= 500)
    ) {
      // A 429 (rate_limit, lock_timeout) is Stripe saying we send too much, not an outage.
      const throttled =
        err instanceof Stripe.errors.StripeRateLimitError ||
        (err as InstanceType<typeof Stripe.errors.StripeError>).statusCode === 429;
      throw new DependencyUnavailableError("payment provider", err, { throttled });
    }
    if (err instanceof Stripe.errors.StripeInvalidRequestError && err.code === "resource_missing") {
      throw new StaleBillingReferenceError(err.param ?? null, { cause: err });
    }
    throw err;
  }
}

type Loose = Record<string, unknown>;

const str = (v: unknown): string | null => (typeof v === "string" && v !== "" ? v : null);
/** An expandable field: either the id or the expanded object. */
const ref = (v: unknown): string | null => str(v) ?? str((v as Loose | null)?.id);
const obj = (v: unknown): Loose => (v && typeof v === "object" ? (v as Loose) : {});

/** Maps a Stripe subscription (any API version) to what we store. */
export function toSubscription(sub: Stripe.Subscription | Loose): BillingSubscription {
  const s = sub as Loose;
  const items = (obj(s.items).data as Loose[] | undefined) ?? [];
  const first = items[0] ?? {};
  // Since API 2025-03-31 the period lives on each item; older versions keep it on the subscription.
  const periodEnds = items
    .map((i) => i.current_period_end)
    .filter((v): v is number => typeof v === "number");
  const periodEnd =
    periodEnds.length > 0
      ? Math.max(...periodEnds)
      : typeof s.current_period_end === "number"
        ? s.current_period_end
        : null;
  return {
    id: String(s.id),
    customerId: ref(s.customer) ?? "",
    status: String(s.status),
    priceId: ref(first.price),
    priceIds: items.map((i) => ref(i.price)).filter((p): p is string => p !== null),
    currentPeriodEnd: periodEnd === null ? null : new Date(periodEnd * 1000),
    cancelAtPeriodEnd: s.cancel_at_period_end === true,
    userId: str(obj(s.metadata).user_id),
  };
}

/** Finds the subscription, customer and user an event is about, whatever its object type. */
export function toBillingEvent(event: Stripe.Event | Loose): BillingEvent {
  const e = event as Loose;
  const subject = obj(obj(e.data).object);
  const type = String(e.type);
  let subscriptionId: string | null = null;
  let userId: string | null = str(obj(subject.metadata).user_id);
  if (type.startsWith("checkout.session.")) {
    subscriptionId = ref(subject.subscription);
    userId = str(subject.client_reference_id) ?? userId;
  } else if (type.startsWith("customer.subscription.")) {
    subscriptionId = str(subject.id);
  } else if (type.startsWith("invoice.")) {
    // API 2025-03-31 moved the subscription under parent.subscription_details.
    const details = obj(obj(subject.parent).subscription_details);
    subscriptionId = ref(details.subscription) ?? ref(subject.subscription);
    userId = str(obj(details.metadata).user_id) ?? userId;
  }
  return {
    id: String(e.id),
    type,
    created: typeof e.created === "number" ? e.created : 0,
    subscriptionId,
    customerId: ref(subject.customer),
    userId,
  };
}
