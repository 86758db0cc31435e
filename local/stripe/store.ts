import { noSuchObject } from "./errors.ts";
import { newId, nowSeconds } from "./ids.ts";
import {
  API_VERSION,
  type CheckoutLineItem,
  type Metadata,
  type Price,
  type StripeEvent,
  type StripeObject,
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

type Kind = StripeObject["object"];
type ObjectOf<K extends Kind> = Extract<StripeObject, { object: K }>;

export function isPlainObject(v: unknown): v is Record<string, unknown> {
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

export function snapshot<T>(value: T): Record<string, unknown> {
  return structuredClone(value) as unknown as Record<string, unknown>;
}

export function isUrl(value: string): boolean {
  return URL.canParse(value);
}

/**
 * The stand-in's account: every object by id, and the events the resource modules (customers,
 * checkout, subscriptions, invoices, portal) emit as they change them. All mutations are
 * synchronous, so one request's changes are atomic.
 */
export class StripeStore {
  readonly objects = new Map<string, StripeObject>();
  /** The seeded recurring price the app sells (`config.stripeProPriceId`), set by the catalog. */
  proPrice!: Price;
  baseUrl = "http://127.0.0.1";
  readonly sessionLines = new Map<string, CheckoutLineItem[]>();
  readonly sessionSubscriptionData = new Map<string, { metadata: Metadata }>();
  /**
   * The default portal configuration, which Stripe creates when the portal settings are first
   * saved in the Dashboard; until then `billingPortal.sessions.create` without `configuration`
   * is refused. Null until saved (control API, or `stripePortalSettingsSaved` seeds it).
   */
  portalConfiguration: string | null = null;
  readonly deletedCustomers = new Set<string>();

  readonly #sink: EventSink;

  constructor(sink: EventSink) {
    this.#sink = sink;
  }

  find<K extends Kind>(kind: K, id: string): ObjectOf<K> | undefined {
    const o = this.objects.get(id);
    return o?.object === kind ? (o as ObjectOf<K>) : undefined;
  }

  /** Like `find`, but a miss is Stripe's `resource_missing` error. */
  get<K extends Kind>(kind: K, id: string, param = "id", status = 404): ObjectOf<K> {
    const o = this.find(kind, id);
    if (!o) throw noSuchObject(kind, id, param, status);
    return o;
  }

  /** Objects of one kind, newest first (Stripe's list order). */
  all<K extends Kind>(kind: K): ObjectOf<K>[] {
    const out: ObjectOf<K>[] = [];
    for (const o of this.objects.values()) {
      if (o.object === kind) out.push(o as ObjectOf<K>);
    }
    return out.reverse();
  }

  checkoutLineItems(sessionId: string): CheckoutLineItem[] {
    return this.sessionLines.get(sessionId) ?? [];
  }

  /** Builds and stores an event about `object` (delivered later, with its flow, by `publish`). */
  emit(
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
      pending_webhooks: this.#sink.wants(type) ? 1 : 0,
      request,
      type,
    };
    this.objects.set(event.id, event);
    this.#sink.record(event, customerOf(data));
    return event;
  }

  /** Delivers the events of one flow to the webhook endpoint. */
  publish(events: StripeEvent[], customer: string | null): void {
    this.#sink.publish(events, customer);
  }

  /** Builds, stores and delivers an arbitrary event (tests use it for shapes no flow makes). */
  sendCustomEvent(type: string, object: Record<string, unknown>): StripeEvent {
    const event = this.emit(type, object, AUTOMATIC);
    this.#sink.publish([event], customerOf(object));
    return event;
  }

  /** The Dashboard's "Save" on Settings → Billing → Customer portal (or, false, a fresh account). */
  savePortalSettings(saved: boolean): void {
    this.portalConfiguration = saved ? (this.portalConfiguration ?? newId("bpc")) : null;
  }
}
