// Pro is the Pro price: a subscription to any other price on the same Stripe account (a plan
// switch in the portal, another product sold outside the app) is Basic, and the status endpoint
// says which price the user pays.
import { describe, expect, it } from "vitest";
import { control, testEnv } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  flushWebhooks,
  paidUser,
  pay,
  status,
  stripe,
  subscribe,
  waitForTier,
} from "./billing-support.ts";

const PRO_PRICE = testEnv.STRIPE_PRO_PRICE_ID as string;

async function otherPrice(nickname: string): Promise<string> {
  const res = await control("stripe/prices", { nickname, unit_amount: 3000 });
  expect(res.status, res.text).toBe(200);
  return res.body.id as string;
}

describe("Pro is granted by the Pro price only", () => {
  it("drops to Basic after a plan switch to another price, and back to Pro on the way back", async () => {
    const user = await paidUser();
    expect(await status(user.session)).toMatchObject({ tier: "pro", price_id: PRO_PRICE });
    const team = await otherPrice("Team");
    const sub = await stripe.subscriptions.retrieve(user.subscriptionId);
    const itemId = sub.items.data[0]?.id as string;

    await stripe.subscriptions.update(user.subscriptionId, {
      items: [{ id: itemId, price: team }],
    });
    await flushWebhooks();
    const switched = await waitForTier(user.session, "basic");
    expect(switched).toMatchObject({ tier: "basic", status: "active", price_id: team });
    expect(switched.usage.daily_limit).toBe(Number(testEnv.BASIC_DAILY_LIMIT));

    // Still billed for the other plan: a second subscription would bill twice.
    const again = await subscribe(user.session);
    expect(again.status, again.text).toBe(409);
    expect(again.body.error.code).toBe("already_subscribed");
    expect(again.body.error.message).toContain(team);

    await stripe.subscriptions.update(user.subscriptionId, {
      items: [{ id: itemId, price: PRO_PRICE }],
    });
    await flushWebhooks();
    expect(await waitForTier(user.session, "pro")).toMatchObject({ price_id: PRO_PRICE });
  });

  it("does not grant Pro for another product bought on the same account", async () => {
    const session = await createSession();
    const opened = await subscribe(session);
    expect(opened.status, opened.text).toBe(200);
    const { customer } = await stripe.checkout.sessions.retrieve(opened.body.session_id);
    const other = await stripe.checkout.sessions.create({
      mode: "subscription",
      customer: customer as string,
      line_items: [{ price: await otherPrice("Add-on"), quantity: 1 }],
      client_reference_id: session.user.id,
      subscription_data: { metadata: { user_id: session.user.id } },
      success_url: "http://localhost:3000/ok",
    });
    await pay(other.url as string);
    await flushWebhooks();
    const { subscription } = await stripe.checkout.sessions.retrieve(other.id);
    const s = await status(session);
    expect(s).toMatchObject({ tier: "basic", status: "active" });
    expect(s.price_id).not.toBe(PRO_PRICE);
    expect(s.price_id).toMatch(/^price_/);
    expect(subscription).toMatch(/^sub_/);
  });
});
