import { createRoute } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../context";
import { liveSession, requireAuthDeferred } from "../../middleware/auth";
import { startProCheckout } from "../../services/billing/checkout";
import {
  cancelSubscription,
  getSubscriptionSummary,
  openBillingPortal,
  type SubscriptionSummary,
} from "../../services/billing/subscription";
import { readDailyUsage } from "../../services/quota";
import { createRouter, errorResponses, jsonContent } from "../router";
import { takesNoBody } from "../shared/fields";

import {
  BILLING_LIMIT_NOTE,
  CheckoutRequestSchema,
  CheckoutSchema,
  optionalJson,
  PortalRequestSchema,
  PortalSchema,
  SubscriptionSchema,
  SubscriptionStatusSchema,
} from "./schemas";

const subscribePro = createRoute({
  method: "post",
  path: "/subscribe/pro",
  operationId: "subscribePro",
  tags: ["Subscriptions"],
  summary: "Start a Stripe Checkout for Pro",
  description: BILLING_LIMIT_NOTE,
  // The service awaits the session check beside its first read (one round for both).
  middleware: [requireAuthDeferred] as const,
  request: { body: optionalJson(CheckoutRequestSchema) },
  responses: {
    200: jsonContent(CheckoutSchema, "Open checkout_url to pay"),
    ...errorResponses(
      400,
      401,
      [404, "user_not_found"],
      [409, "already_subscribed"],
      413,
      415,
      429,
      503,
    ),
  },
});

const subscriptionStatus = createRoute({
  method: "get",
  path: "/subscription/status",
  operationId: "getSubscriptionStatus",
  tags: ["Subscriptions"],
  summary: "Tier, subscription state and today's prompt usage",
  responses: {
    200: jsonContent(SubscriptionStatusSchema, "Current tier and usage"),
    ...errorResponses(401, [404, "user_not_found"], 503),
  },
});

const subscriptionCancel = createRoute({
  method: "post",
  path: "/subscription/cancel",
  operationId: "cancelSubscription",
  tags: ["Subscriptions"],
  summary: "Cancel Pro at the end of the current period",
  description: `Takes no body (an empty one or {} is fine; a field is 400). ${BILLING_LIMIT_NOTE}`,
  // The service awaits the session check beside its first read (one round for both).
  middleware: [requireAuthDeferred, takesNoBody] as const,
  responses: {
    200: jsonContent(SubscriptionSchema, "Pro stays until current_period_end"),
    ...errorResponses(400, 401, [404, "user_not_found"], [409, "no_subscription"], 429, 503),
  },
});

const subscriptionPortal = createRoute({
  method: "post",
  path: "/subscription/portal",
  operationId: "openBillingPortal",
  tags: ["Subscriptions"],
  summary: "Open a Stripe billing portal session",
  description:
    "Needs a billing account (the Stripe customer the first POST /subscribe/pro creates), not an active " +
    "subscription: a user whose subscription ended can still see invoices and payment methods. 409 " +
    "no_subscription before any checkout (or when Stripe no longer knows the customer); 503 " +
    "billing_portal_unavailable until an operator saves the customer portal settings in the Stripe Dashboard. " +
    BILLING_LIMIT_NOTE,
  // The service awaits the session check beside its first read (one round for both).
  middleware: [requireAuthDeferred] as const,
  request: { body: optionalJson(PortalRequestSchema) },
  responses: {
    200: jsonContent(PortalSchema, "Open url to manage billing"),
    ...errorResponses(400, 401, [404, "user_not_found"], [409, "no_subscription"], 413, 415, 429, [
      503,
      "dependency_unavailable",
      "billing_portal_unavailable",
    ]),
  },
});

/**
 * The session check a billing request awaits in its first round, with its limit. A request
 * refused before its first round (a bad URL) never awaits it; the backstop in
 * requireAuthDeferred still does, so a revoked session is 401 all the same.
 */
const sessionLive = (c: Context<AppEnv>) => {
  const live = liveSession(c);
  live.catch(() => {});
  return live;
};

function subscriptionJson(s: SubscriptionSummary) {
  return {
    tier: s.tier,
    status: s.status,
    price_id: s.priceId,
    current_period_end: s.currentPeriodEnd?.toISOString() ?? null,
    cancel_at_period_end: s.cancelAtPeriodEnd,
  };
}

/** Stripe Checkout, status, cancel and portal; every route requires a bearer token. */
export const subscriptionRoutes = createRouter({ auth: true })
  .openapi(subscribePro, async (c) => {
    const body = c.req.valid("json") ?? {};
    const result = await startProCheckout(c.get("ctx"), {
      userId: c.get("userId"),
      successUrl: body.success_url,
      cancelUrl: body.cancel_url,
      sessionLive: sessionLive(c),
    });
    return c.json({ checkout_url: result.checkoutUrl, session_id: result.sessionId }, 200);
  })
  .openapi(subscriptionStatus, async (c) => {
    const ctx = c.get("ctx");
    const userId = c.get("userId");
    // The tier decides the daily limit, so the usage read waits for it (no stale cached tier).
    const summary = await getSubscriptionSummary(ctx, userId);
    const usage = await readDailyUsage(ctx, userId, summary.tier);
    return c.json(
      {
        ...subscriptionJson(summary),
        usage: {
          used_today: usage.used_today,
          daily_limit: usage.daily_limit,
          resets_at: usage.resets_at,
        },
      },
      200,
    );
  })
  .openapi(subscriptionCancel, async (c) => {
    const summary = await cancelSubscription(c.get("ctx"), {
      userId: c.get("userId"),
      sessionLive: sessionLive(c),
    });
    return c.json(subscriptionJson(summary), 200);
  })
  .openapi(subscriptionPortal, async (c) => {
    const body = c.req.valid("json") ?? {};
    const portal = await openBillingPortal(c.get("ctx"), {
      userId: c.get("userId"),
      returnUrl: body.return_url,
      sessionLive: sessionLive(c),
    });
    return c.json({ url: portal.url }, 200);
  });
