import { z } from "@hono/zod-openapi";
import { BILLING_LIMITS } from "../../services/billing/admission";

export const CheckoutRequestSchema = z
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

export const CheckoutSchema = z
  .object({
    checkout_url: z.url().openapi({
      description: "Stripe Checkout page to open",
      example: "https://checkout.stripe.com/c/pay/cs_test_a1B2c3",
    }),
    session_id: z.string().openapi({ example: "cs_test_a1B2c3" }),
  })
  .openapi("Checkout");

export const SubscriptionFields = {
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

export const SubscriptionSchema = z.object(SubscriptionFields).openapi("Subscription");

export const SubscriptionStatusSchema = z
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

export const PortalRequestSchema = z
  .object({
    return_url: z.string().max(2048).optional().openapi({
      description:
        "Where the portal returns to; same origin rule as Checkout. Defaults to APP_URL.",
      example: "https://app.example.com/settings",
    }),
  })
  .strict()
  .openapi("PortalRequest");

export const PortalSchema = z
  .object({ url: z.url().openapi({ example: "https://billing.stripe.com/p/session/bps_1a2B3c" }) })
  .openapi("BillingPortal");

export const BILLING_LIMIT_NOTE = `Limit: ${BILLING_LIMITS.perUserPer10Min} per 10 minutes per user (429 rate_limited + Retry-After), counted only for valid requests of a live session.`;

export const optionalJson = <T extends z.ZodType>(schema: T) => ({
  required: false,
  content: { "application/json": { schema } },
});
