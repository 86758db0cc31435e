// Signed inbound calls: the QStash reply callback and Stripe events.
import type { Harness } from "../harness.ts";
import { type Case, expect, repeat } from "./case.ts";

export function webhooksCases({
  call,
  session,
  pendingReplies,
  qstashCallback,
  chatroom,
  paidUser,
  stripeEvent,
  stripeDelivery,
  stripe,
}: Harness): Case[] {
  return [
    {
      label: "POST /webhook/qstash/reply",
      note: "a signed callback carrying Gemini's answer for a pending reply",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        // Publishing fails for these prompts, so their replies stay pending for the callback below.
        const replies = await pendingReplies(s, room, n);
        return Promise.all(
          replies.map(async (id) => {
            const { path, opts } = await qstashCallback(id);
            return () =>
              expect(200, "callback", (r) => (r.body.status === "complete" ? null : r.text))(
                call("POST", path, opts),
              );
          }),
        );
      },
    },
    {
      label: "POST /webhook/stripe (ignored event type)",
      note: "signature check only",
      prepare: async (n) =>
        repeat(
          n,
          () => async () =>
            expect(
              200,
              "stripe ignored",
            )(
              call(
                "POST",
                "/webhook/stripe",
                await stripeDelivery(
                  stripeEvent("customer.created", { id: "cus_x", object: "customer" }),
                ),
              ),
            ),
        ),
    },
    {
      label: "POST /webhook/stripe (customer.subscription.updated)",
      note: "re-reads the subscription from Stripe, then applies it",
      samples: 10,
      async prepare(n) {
        const u = await paidUser();
        const sub = await stripe.subscriptions.retrieve(u.subscriptionId);
        return repeat(
          n,
          () => async () =>
            expect(
              200,
              "stripe updated",
            )(
              call(
                "POST",
                "/webhook/stripe",
                await stripeDelivery(stripeEvent("customer.subscription.updated", sub)),
              ),
            ),
        );
      },
    },
  ];
}
