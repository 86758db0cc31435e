import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../context";
import { bearerSecurity, liveSession, requireAuth, requireAuthDeferred } from "../middleware/auth";
import { BILLING_LIMITS } from "../services/billing/admission";
import { startProCheckout } from "../services/billing/checkout";
import {
  cancelSubscription,
  getSubscriptionSummary,
  openBillingPortal,
  type SubscriptionSummary,
} from "../services/billing/subscription";
import { readDailyUsage } from "../services/quota";
import { createRouter, errorResponses, jsonContent } from "./router";
import { takesNoBody } from "./shared/fields";

const CheckoutRequestSchema = z
  .object({
    success_url: z.string().max(2048).optional().openapi({
      description:
        "Where Stripe sends the user after paying; must be on APP_URL's origin or ALLOWED_REDIRECT_ORIGINS.",
      example: "https://app.example.com/billing/done?session_id={CHECKOUT_SESSION_ID}",
    }),
    cancel_url: z.string().max(2048).optional().openapi({
      description: "Where Stripe sends the user on cancel; same origin rule.",
      example: "https://app.example.com/billing",
    }),
  })
  .strict()
  .openapi("CheckoutRequest");

const CheckoutSchema = z
  .object({
    checkout_url: z.url().openapi({
      description: "Stripe Checkout page to open",
      example: "https://checkout.stripe.com/c/pay/cs_test_a1B2c3",
    }),
    session_id: z.string().openapi({ example: "cs_test_a1B2c3" }),
  })
  .openapi("Checkout");

const SubscriptionFields = {
  tier: z.enum(["basic", "pro"]),
  status: z.string().nullable().openapi({
    description:
      "Stripe status of the current subscription (active, trialing, past_due, canceled, ...); null if none",
    example: "active",
  }),
  price_id: z.string().nullable().openapi({
    description:
      "Stripe price the current subscription bills; only the configured Pro price grants Pro (another price, e.g. after a plan switch in the portal, is Basic). Null if none",
    example: "price_1QbProMonthly",
  }),
  current_period_end: z.iso.datetime().nullable().openapi({ example: "2025-02-15T09:30:00Z" }),
  cancel_at_period_end: z.boolean(),
};

const SubscriptionSchema = z.object(SubscriptionFields).openapi("Subscription");

const SubscriptionStatusSchema = z
  .object({
    ...SubscriptionFields,
    usage: z
      .object({
        used_today: z.number().int().openapi({ example: 2 }),
        daily_limit: z.number().int().openapi({ example: 5 }),
        resets_at: z.iso.datetime().openapi({ example: "2025-01-16T00:00:00.000Z" }),
      })
      .openapi("DailyUsage"),
  })
  .openapi("SubscriptionStatus");

const PortalRequestSchema = z
  .object({
    return_url: z.string().max(2048).optional().openapi({
      description:
        "Where the portal returns to; same origin rule as Checkout. Defaults to APP_URL.",
      example: "https://app.example.com/settings",
    }),
  })
  .strict()
  .openapi("PortalRequest");

const PortalSchema = z
  .object({ url: z.url().openapi({ example: "https://billing.stripe.com/p/session/bps_1a2B3c" }) })
  .openapi("BillingPortal");

const BILLING_LIMIT_NOTE = `Limit: ${BILLING_LIMITS.perUserPer10Min} per 10 minutes per user (429 rate_limited + Retry-After), counted only for valid requests of a live session.`;

const optionalJson = <T extends z.ZodType>(schema: T) => ({
  required: false,
  content: { "application/json": { schema } },
});

const subscribePro = createRoute({
  method: "post",
  path: "/subscribe/pro",
  operationId: "subscribePro",
  tags: ["Subscriptions"],
  summary: "Start a Stripe Checkout for Pro",
  description: BILLING_LIMIT_NOTE,
  security: bearerSecurity,
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
  security: bearerSecurity,
  middleware: [requireAuth] as const,
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
  security: bearerSecurity,
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
  security: bearerSecurity,
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

export const subscriptionRoutes = createRouter()
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
