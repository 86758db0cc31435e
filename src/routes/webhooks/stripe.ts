import { createRoute, z } from "@hono/zod-openapi";
import { DependencyUnavailableError, DomainError, ValidationError } from "../../errors";
import { type BillingEvent, WebhookSignatureError } from "../../lib/billing";
import { BODY_LIMITS, limitBody } from "../../middleware/body";
import { handleStripeEvent, type WebhookOutcome } from "../../services/billing/webhooks";
import { createRouter, errorResponses, jsonContent } from "../router";

const WebhookAckSchema = z.object({ received: z.literal(true) }).openapi("WebhookAck");

const stripeWebhook = createRoute({
  method: "post",
  path: "/webhook/stripe",
  operationId: "receiveStripeWebhook",
  tags: ["Webhooks"],
  summary: "Stripe webhook (signed with Stripe-Signature)",
  description:
    "Verifies the signature over the raw body (timestamps more than 300 s old or in the future are refused), " +
    "then applies checkout.session.completed, customer.subscription.created|updated|deleted, invoice.paid and " +
    "invoice.payment_failed by re-reading the subscription from Stripe. Other types and redeliveries are " +
    "acknowledged without effect. A 5xx asks Stripe to retry.",
  responses: {
    200: jsonContent(WebhookAckSchema, "Event accepted (applied, duplicate or ignored)"),
    ...errorResponses([400, "invalid_signature"], 413, 503),
  },
});

/** Stripe verifies the raw body itself: no JSON checks, a 1 MiB limit. */
export const stripeWebhookRoutes = createRouter({
  body: [limitBody(BODY_LIMITS.stripeWebhook)],
}).openapi(stripeWebhook, async (c) => {
  const ctx = c.get("ctx");
  const raw = await c.req.text();
  let event: BillingEvent;
  try {
    event = await ctx.billing.verifyWebhook(raw, c.req.header("stripe-signature"), ctx.clock.now());
  } catch (err) {
    if (err instanceof WebhookSignatureError) {
      throw new ValidationError(
        "The Stripe signature is missing or invalid.",
        undefined,
        "invalid_signature",
      );
    }
    throw err;
  }

  let result: WebhookOutcome;
  try {
    result = await handleStripeEvent(ctx, event);
  } catch (err) {
    if (err instanceof DomainError) throw err;
    // Whatever failed (database, network), the event is not recorded: a 503 makes Stripe retry.
    ctx.log.failure("stripe_webhook_failed", err, { event_id: event.id, event_type: event.type });
    throw new DependencyUnavailableError("database", err);
  }

  const permanent = result.outcome === "unmapped" || result.outcome === "unknown_subscription";
  // A mapping error will not fix itself on retry: acknowledge it, and log it for a human.
  ctx.log[permanent ? "error" : "info"]("stripe_webhook", {
    event_id: event.id,
    event_type: event.type,
    ...result,
  });
  return c.json({ received: true as const }, 200);
});
