import { createRoute, z } from "@hono/zod-openapi";
import { AppError, DependencyUnavailableError, describeError, logSafeStack } from "../../errors";
import { type BillingEvent, WebhookSignatureError } from "../../lib/billing";
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

export const stripeWebhookRoutes = createRouter().openapi(stripeWebhook, async (c) => {
  const { db, billing, clock } = c.get("services");
  const raw = await c.req.text();
  let event: BillingEvent;
  try {
    event = await billing.verifyWebhook(raw, c.req.header("stripe-signature"), clock.now());
  } catch (err) {
    if (err instanceof WebhookSignatureError) {
      throw new AppError(400, "invalid_signature", "The Stripe signature is missing or invalid.");
    }
    throw err;
  }

  let result: WebhookOutcome;
  try {
    result = await handleStripeEvent(
      { db, billing, clock, proPriceId: c.get("env").STRIPE_PRO_PRICE_ID },
      event,
    );
  } catch (err) {
    if (err instanceof AppError) throw err;
    // Whatever failed (database, network), the event is not recorded: a 503 makes Stripe retry.
    console.error(
      JSON.stringify({
        level: "error",
        msg: "stripe_webhook_failed",
        request_id: c.get("requestId"),
        event_id: event.id,
        event_type: event.type,
        error: describeError(err),
        stack: logSafeStack(err),
      }),
    );
    throw new DependencyUnavailableError("database", err);
  }

  const permanent = result.outcome === "unmapped" || result.outcome === "unknown_subscription";
  // A mapping error will not fix itself on retry: acknowledge it, and log it for a human.
  (permanent ? console.error : console.log)(
    JSON.stringify({
      level: permanent ? "error" : "info",
      msg: "stripe_webhook",
      request_id: c.get("requestId"),
      event_id: event.id,
      event_type: event.type,
      ...result,
    }),
  );
  return c.json({ received: true as const }, 200);
});
