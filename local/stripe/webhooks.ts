import { createHmac } from "node:crypto";
import type { StripeEvent } from "./objects.ts";
import type { EventSink } from "./store.ts";

export type DeliveryMode = "normal" | "duplicate" | "reverse";

export interface DeliveryAttempt {
  /** Which copy of the event (duplicate mode and resends send more than one). */
  copy: number;
  attempt: number;
  at: string;
  status: number | null;
  error: string | null;
  duration_ms: number;
}

interface EventRecord {
  event: StripeEvent;
  customer: string | null;
  attempts: DeliveryAttempt[];
  copies: number;
  openCopies: number;
  delivery: "not_sent" | "pending" | "succeeded" | "failed";
}

export interface WebhookEndpoint {
  url: string | undefined;
  /** Event types the endpoint listens to; `*` means all, like Stripe's `enabled_events`. */
  enabledEvents: string[];
  /**
   * The endpoint's API version: Stripe renders each event's object in it, not in the version of
   * the request that caused it. Undefined: the account's (the stand-in's) version.
   */
  apiVersion: string | undefined;
}

/** API 2025-03-31.basil moved invoice → subscription links and billing periods. */
const BASIL = "2025-03-31";

/**
 * An event as an endpoint pinned to `version` receives it. Before basil an invoice names its
 * subscription at the top level (no `parent`), and a subscription carries
 * `current_period_start/end` itself (docs.stripe.com/changelog/basil/2025-03-31/
 * adds-parent-field-to-invoices and .../deprecate-subscription-current-period-start-and-end).
 */
export function renderEventForVersion(
  event: StripeEvent,
  version: string | undefined,
): StripeEvent {
  if (!version || version >= BASIL) return event;
  const copy = structuredClone(event);
  copy.api_version = version;
  const o = copy.data.object as Record<string, unknown>;
  if (o.object === "invoice") {
    const parent = o.parent as { subscription_details?: Record<string, unknown> } | null;
    const details = parent?.subscription_details ?? null;
    o.subscription = details?.subscription ?? null;
    o.subscription_details = details ? { metadata: details.metadata ?? null } : null;
    delete o.parent;
  } else if (o.object === "subscription") {
    const items = ((o.items as { data?: Record<string, unknown>[] } | undefined)?.data ?? []).map(
      (item) => {
        const { current_period_start, current_period_end, ...rest } = item;
        o.current_period_start ??= current_period_start;
        o.current_period_end ??= current_period_end;
        return rest;
      },
    );
    (o.items as { data: unknown[] }).data = items;
  }
  return copy;
}

/** Delays before retries 2, 3 and 4, in seconds before `timeScale` (Stripe's test mode retries a few times). */
const RETRY_DELAYS_S = [1, 5, 25];
const ATTEMPT_TIMEOUT_MS = 10_000;

/** `Stripe-Signature` as Stripe builds it: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.payload">`. */
export function signWebhookPayload(payload: string, secret: string, timestamp: number): string {
  const v1 = createHmac("sha256", secret).update(`${timestamp}.${payload}`, "utf8").digest("hex");
  return `t=${timestamp},v1=${v1}`;
}

/**
 * Sends events to the webhook endpoint the way Stripe does: signed, asynchronously, retried with
 * backoff on a non-2xx answer or a network error. A flow's events go out one after another
 * (per customer), so delivery modes can duplicate or reverse them deterministically.
 */
export class WebhookDispatcher implements EventSink {
  readonly endpoint: WebhookEndpoint;
  private readonly secret: string;
  private readonly timeScale: number;
  private readonly records = new Map<string, EventRecord>();
  private readonly modes = new Map<string, DeliveryMode>();
  private readonly chains = new Map<string, Promise<void>>();
  private readonly pending = new Set<Promise<void>>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly abort = new AbortController();

  constructor(options: { url: string | undefined; secret: string; timeScale: number }) {
    this.endpoint = { url: options.url, enabledEvents: ["*"], apiVersion: undefined };
    this.secret = options.secret;
    this.timeScale = options.timeScale;
  }

  wants(type: string): boolean {
    if (!this.endpoint.url) return false;
    return this.endpoint.enabledEvents.includes("*") || this.endpoint.enabledEvents.includes(type);
  }

  record(event: StripeEvent, customer: string | null): void {
    this.records.set(event.id, {
      event,
      customer,
      attempts: [],
      copies: 0,
      openCopies: 0,
      delivery: "not_sent",
    });
  }

  /** `customer` undefined sets the default for everyone; a customer's own mode wins over it. */
  setMode(mode: DeliveryMode, customer?: string): void {
    this.modes.set(customer ?? "*", mode);
  }

  private modeFor(customer: string | null): DeliveryMode {
    return (customer ? this.modes.get(customer) : undefined) ?? this.modes.get("*") ?? "normal";
  }

  publish(events: StripeEvent[], customer: string | null): void {
    const records = events
      .filter((e) => e.pending_webhooks > 0)
      .map((e) => this.records.get(e.id))
      .filter((r): r is EventRecord => r !== undefined);
    if (records.length === 0) return;
    const mode = this.modeFor(customer);
    const ordered = mode === "reverse" ? [...records].reverse() : records;
    const copies = mode === "duplicate" ? 2 : 1;
    for (const r of ordered) r.delivery = "pending";

    const key = customer ?? "*";
    const run = (this.chains.get(key) ?? Promise.resolve())
      .then(async () => {
        for (const r of ordered) {
          // Duplicates start together: the receiver sees the same event concurrently.
          await Promise.all(Array.from({ length: copies }, () => this.deliverCopy(r)));
        }
      })
      .catch((err) => console.error("[local-stripe] delivery", err))
      .finally(() => {
        if (this.chains.get(key) === run) this.chains.delete(key);
      });
    this.chains.set(key, run);
    this.track(run);
  }

  /** Sends an event once more, like "Resend" in the Dashboard. */
  resend(eventId: string): boolean {
    const r = this.records.get(eventId);
    if (!r || !this.endpoint.url) return false;
    if (r.delivery !== "succeeded") r.delivery = "pending";
    this.track(this.deliverCopy(r));
    return true;
  }

  /** Waits until no delivery or retry is outstanding; false on timeout. */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending.size > 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        Promise.allSettled([...this.pending]),
        new Promise((r) => {
          timer = setTimeout(r, remaining);
        }),
      ]);
      clearTimeout(timer);
    }
    return true;
  }

  events(filter: { customer?: string; type?: string }): object[] {
    const out: object[] = [];
    for (const r of this.records.values()) {
      if (filter.customer && r.customer !== filter.customer) continue;
      if (filter.type && r.event.type !== filter.type) continue;
      out.push({
        id: r.event.id,
        type: r.event.type,
        created: r.event.created,
        customer: r.customer,
        delivery: r.delivery,
        attempts: r.attempts,
        event: r.event,
      });
    }
    return out;
  }

  close(): void {
    this.abort.abort();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  private track(p: Promise<void>): void {
    const guarded = p.catch((err) => console.error("[local-stripe] delivery", err));
    this.pending.add(guarded);
    void guarded.finally(() => this.pending.delete(guarded));
  }

  private async deliverCopy(r: EventRecord): Promise<void> {
    r.copies += 1;
    r.openCopies += 1;
    const copy = r.copies;
    if (await this.attempt(r, copy, 1)) return;
    this.scheduleRetry(r, copy, 2);
  }

  private scheduleRetry(r: EventRecord, copy: number, attempt: number): void {
    const delayS = RETRY_DELAYS_S[attempt - 2];
    if (delayS === undefined || this.abort.signal.aborted) {
      r.openCopies -= 1;
      if (r.openCopies === 0 && r.delivery !== "succeeded") r.delivery = "failed";
      return;
    }
    this.track(
      new Promise<void>((resolve) => {
        const timer = setTimeout(
          async () => {
            this.timers.delete(timer);
            if (!(await this.attempt(r, copy, attempt))) this.scheduleRetry(r, copy, attempt + 1);
            resolve();
          },
          delayS * 1000 * this.timeScale,
        );
        this.timers.add(timer);
      }),
    );
  }

  private async attempt(r: EventRecord, copy: number, attempt: number): Promise<boolean> {
    const url = this.endpoint.url;
    const started = Date.now();
    let status: number | null = null;
    let error: string | null = null;
    if (!url) {
      error = "no webhook endpoint configured";
    } else {
      const payload = JSON.stringify(
        renderEventForVersion(r.event, this.endpoint.apiVersion),
        null,
        2,
      );
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json; charset=utf-8",
            "user-agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "cache-control": "no-cache",
            "stripe-signature": signWebhookPayload(
              payload,
              this.secret,
              Math.floor(Date.now() / 1000),
            ),
          },
          body: payload,
          signal: AbortSignal.any([this.abort.signal, AbortSignal.timeout(ATTEMPT_TIMEOUT_MS)]),
        });
        status = res.status;
        await res.arrayBuffer().catch(() => undefined);
      } catch (err) {
        error = err instanceof Error ? err.message : String(err);
      }
    }
    r.attempts.push({
      copy,
      attempt,
      at: new Date(started).toISOString(),
      status,
      error,
      duration_ms: Date.now() - started,
    });
    const ok = status !== null && status >= 200 && status < 300;
    if (ok) {
      r.openCopies -= 1;
      r.delivery = "succeeded";
      r.event.pending_webhooks = 0;
    }
    return ok;
  }
}
