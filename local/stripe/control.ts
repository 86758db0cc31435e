import { Hono } from "hono";
import type { ApiFault } from "./api.ts";
import { StripeApiError } from "./errors.ts";
import { addPlan } from "./prices.ts";
import type { StripeStore } from "./store.ts";
import { type AdvanceOutcome, advance, SimulationConflict } from "./subscriptions.ts";
import type { DeliveryMode, WebhookDispatcher } from "./webhooks.ts";

const OUTCOMES: readonly AdvanceOutcome[] = [
  "renew_paid",
  "renew_failed",
  "end_period",
  "mark_unpaid",
];
const MODES: readonly DeliveryMode[] = ["normal", "duplicate", "reverse"];

async function readJson(req: Request): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (!text) return {};
  const value: unknown = JSON.parse(text);
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/**
 * `/_control/stripe`: time travel for subscriptions, webhook delivery modes and inspection.
 *   POST /fault {mode, count?, method?, path?, when?}
 *                                            none | error: /v1 requests (of `method` on `path`,
 *                                            the next `count` ones) answer 500 api_error, saved
 *                                            under their idempotency key and replayed for 24 h;
 *                                            when "after", the request took effect first;
 *                                            rate_limit: they answer 429 code rate_limit
 *   POST /prices {nickname, unit_amount}     another recurring price (a second plan)
 *   GET|POST /portal-configuration {saved}   whether the portal settings were saved (Dashboard)
 *   POST /advance {subscription, outcome}    renew_paid | renew_failed | end_period | mark_unpaid
 *   POST /delivery {mode, customer?}         normal | duplicate | reverse (customer-scoped)
 *   GET  /events?customer=&type=             events with their delivery attempts
 *   POST /send {type, object}                build, sign and deliver an arbitrary event
 *   POST /resend {event}                     deliver an event again
 *   POST /flush {timeout_ms?}                wait for pending deliveries and retries
 *   GET|POST /webhook-endpoint {url, enabled_events?, api_version?}   where events go, and the
 *                                            API version their objects are rendered in
 */
export function createStripeControl(
  store: StripeStore,
  webhooks: WebhookDispatcher,
  apiFault: ApiFault,
): Hono {
  const control = new Hono();

  control.post("/fault", async (c) => {
    const body = await readJson(c.req.raw);
    const { count, method, path, when } = body;
    if (
      (body.mode !== "none" && body.mode !== "error" && body.mode !== "rate_limit") ||
      (count !== undefined && (!Number.isInteger(count) || (count as number) < 1)) ||
      (method !== undefined && !["GET", "POST", "DELETE"].includes(method as string)) ||
      (path !== undefined && (typeof path !== "string" || !path.startsWith("/v1/"))) ||
      (when !== undefined && when !== "before" && when !== "after")
    ) {
      return c.json(
        {
          error:
            'expected {mode: "none"|"error"|"rate_limit", count?: int >= 1, method?, path?: "/v1/...", when?: "before"|"after"}',
        },
        400,
      );
    }
    const on = body.mode !== "none";
    apiFault.mode = body.mode;
    apiFault.remaining = on ? (count as number | undefined) : undefined;
    apiFault.method = on ? (method as string | undefined) : undefined;
    apiFault.path = on ? (path as string | undefined) : undefined;
    apiFault.when = on ? (when as "before" | "after" | undefined) : undefined;
    return c.json({ mode: apiFault.mode, count: apiFault.remaining ?? null });
  });

  control.post("/prices", async (c) => {
    const body = await readJson(c.req.raw);
    if (typeof body.nickname !== "string" || !Number.isInteger(body.unit_amount)) {
      return c.json({ error: "expected {nickname: string, unit_amount: int}" }, 400);
    }
    return c.json(addPlan(store, body.nickname, body.unit_amount as number));
  });

  const portalSettings = () => ({ saved: store.portalConfiguration !== null });
  control.get("/portal-configuration", (c) => c.json(portalSettings()));
  control.post("/portal-configuration", async (c) => {
    const body = await readJson(c.req.raw);
    if (typeof body.saved !== "boolean") return c.json({ error: "expected {saved: boolean}" }, 400);
    store.savePortalSettings(body.saved);
    return c.json(portalSettings());
  });

  control.post("/advance", async (c) => {
    const body = await readJson(c.req.raw);
    const subscription = body.subscription;
    const outcome = body.outcome as AdvanceOutcome;
    if (typeof subscription !== "string" || !OUTCOMES.includes(outcome)) {
      return c.json({ error: `expected {subscription, outcome: ${OUTCOMES.join("|")}}` }, 400);
    }
    try {
      const result = advance(store, subscription, outcome);
      return c.json({
        subscription: result.subscription,
        events: result.events.map((e) => ({ id: e.id, type: e.type })),
      });
    } catch (err) {
      if (err instanceof SimulationConflict) return c.json({ error: err.message }, 409);
      if (err instanceof StripeApiError) return c.json({ error: err.message }, 404);
      throw err;
    }
  });

  control.post("/delivery", async (c) => {
    const body = await readJson(c.req.raw);
    const mode = body.mode as DeliveryMode;
    const customer = typeof body.customer === "string" ? body.customer : undefined;
    if (!MODES.includes(mode)) {
      return c.json({ error: `expected {mode: ${MODES.join("|")}, customer?}` }, 400);
    }
    webhooks.setMode(mode, customer);
    return c.json({ mode, customer: customer ?? null });
  });

  control.get("/events", (c) => {
    const customer = c.req.query("customer");
    const type = c.req.query("type");
    return c.json({
      data: webhooks.events({
        ...(customer ? { customer } : {}),
        ...(type ? { type } : {}),
      }),
    });
  });

  control.post("/send", async (c) => {
    const body = await readJson(c.req.raw);
    const object = body.object;
    if (typeof body.type !== "string" || typeof object !== "object" || object === null) {
      return c.json({ error: "expected {type, object}" }, 400);
    }
    return c.json(store.sendCustomEvent(body.type, object as Record<string, unknown>));
  });

  control.post("/resend", async (c) => {
    const body = await readJson(c.req.raw);
    if (typeof body.event !== "string" || !webhooks.resend(body.event)) {
      return c.json({ error: "unknown event or no webhook endpoint" }, 404);
    }
    return c.json({ resent: body.event });
  });

  control.post("/flush", async (c) => {
    const body = await readJson(c.req.raw);
    const timeoutMs = typeof body.timeout_ms === "number" ? body.timeout_ms : 30_000;
    const flushed = await webhooks.flush(timeoutMs);
    return c.json({ flushed }, flushed ? 200 : 504);
  });

  const endpointJson = () => ({
    url: webhooks.endpoint.url ?? null,
    enabled_events: webhooks.endpoint.enabledEvents,
    api_version: webhooks.endpoint.apiVersion ?? null,
  });
  control.get("/webhook-endpoint", (c) => c.json(endpointJson()));

  control.post("/webhook-endpoint", async (c) => {
    const body = await readJson(c.req.raw);
    const version = body.api_version;
    if (
      (body.url !== null && (typeof body.url !== "string" || !URL.canParse(body.url))) ||
      (version !== undefined &&
        version !== null &&
        (typeof version !== "string" || !/^\d{4}-\d{2}-\d{2}(\.[a-z]+)?$/.test(version)))
    ) {
      return c.json(
        {
          error:
            "expected {url: string|null, enabled_events?: string[], api_version?: string|null}",
        },
        400,
      );
    }
    webhooks.endpoint.url = body.url ?? undefined;
    if (Array.isArray(body.enabled_events)) {
      webhooks.endpoint.enabledEvents = body.enabled_events.map(String);
    }
    if (version !== undefined)
      webhooks.endpoint.apiVersion = (version as string | null) ?? undefined;
    return c.json(endpointJson());
  });

  return control;
}
