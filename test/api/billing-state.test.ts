// The write guard behind the webhook, driven directly against the local Neon: whichever order two
// reads of a subscription are written in, the newer read wins and canceled stays canceled.
import { eq } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  applySubscriptionState,
  type SubscriptionState,
} from "../../src/db/queries/subscriptions.ts";
import { users } from "../../src/db/schema/index.ts";
import { newId } from "../../src/lib/ids.ts";
import { uniqueMobileNumber } from "../support/api.ts";
import { db, processedCount, storedSubscriptions } from "./billing-support.ts";

async function newUser(): Promise<string> {
  const id = newId();
  await db.insert(users).values({ id, mobileNumber: uniqueMobileNumber() });
  return id;
}

async function tierOf(userId: string) {
  const [row] = await db.select({ tier: users.tier }).from(users).where(eq(users.id, userId));
  return row?.tier;
}

const read = (id: string, status: string, version: number): SubscriptionState => ({
  id,
  customerId: `cus_${id}`,
  status,
  priceId: "price_local_pro_monthly",
  currentPeriodEnd: new Date(Date.UTC(2030, 0, 1)),
  cancelAtPeriodEnd: false,
  version,
});

const PRO_PRICE = "price_local_pro_monthly";

const STATUSES = ["incomplete", "active", "past_due", "unpaid", "canceled"];

describe("applySubscriptionState", () => {
  it("stores the newer read for every ordered pair of states, canceled being final", async () => {
    const cases: [string, string, boolean][] = [];
    for (const a of STATUSES) {
      for (const b of STATUSES) if (a !== b) cases.push([a, b, true], [a, b, false]);
    }
    await Promise.all(
      cases.map(async ([first, second, secondIsNewer]) => {
        const userId = await newUser();
        const subId = `sub_${newId()}`;
        const [v1, v2] = secondIsNewer ? [1_000, 2_000] : [2_000, 1_000];
        for (const [status, version] of [
          [first, v1],
          [second, v2],
        ] as const) {
          await applySubscriptionState(db, {
            userId,
            state: read(subId, status, version),
            proPriceId: PRO_PRICE,
            event: { id: `evt_${newId()}`, type: "customer.subscription.updated" },
          });
        }
        const expected =
          first === "canceled" ? first : second === "canceled" || secondIsNewer ? second : first;
        const label = `${first}@${v1} then ${second}@${v2}`;
        const [row] = await storedSubscriptions(userId);
        expect(row?.status, label).toBe(expected);
        expect(await tierOf(userId), label).toBe(
          ["active", "trialing", "past_due"].includes(expected) ? "pro" : "basic",
        );
      }),
    );
  });

  it("writes nothing for an event id it has already recorded, even with a newer read", async () => {
    const userId = await newUser();
    const subId = `sub_${newId()}`;
    const event = { id: `evt_${newId()}`, type: "customer.subscription.updated" };
    const first = await applySubscriptionState(db, {
      userId,
      state: read(subId, "active", 1),
      proPriceId: PRO_PRICE,
      event,
    });
    const second = await applySubscriptionState(db, {
      userId,
      state: read(subId, "unpaid", 2),
      proPriceId: PRO_PRICE,
      event,
    });
    expect(first).toEqual({ applied: true, tier: "pro" });
    expect(second).toEqual({ applied: false, tier: "pro" });
    expect((await storedSubscriptions(userId))[0]?.status).toBe("active");
    expect(await processedCount(event.id)).toBe(1);
  });

  it("records one event id once and writes once under 10 parallel deliveries", async () => {
    const userId = await newUser();
    const subId = `sub_${newId()}`;
    const event = { id: `evt_${newId()}`, type: "customer.subscription.created" };
    const results = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        applySubscriptionState(db, {
          userId,
          state: read(subId, "active", 10 + i),
          event,
          proPriceId: PRO_PRICE,
        }),
      ),
    );
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    expect(results.every((r) => r.tier === "pro")).toBe(true);
    expect(await processedCount(event.id)).toBe(1);
  });

  it("derives the tier from all of the user's subscriptions", async () => {
    const userId = await newUser();
    const [s1, s2] = [`sub_${newId()}`, `sub_${newId()}`];
    await applySubscriptionState(db, {
      userId,
      state: read(s1, "active", 1),
      proPriceId: PRO_PRICE,
    });
    await applySubscriptionState(db, {
      userId,
      state: read(s2, "active", 1),
      proPriceId: PRO_PRICE,
    });
    const one = await applySubscriptionState(db, {
      userId,
      state: read(s1, "canceled", 2),
      proPriceId: PRO_PRICE,
    });
    expect(one.tier).toBe("pro");
    const both = await applySubscriptionState(db, {
      userId,
      state: read(s2, "canceled", 2),
      proPriceId: PRO_PRICE,
    });
    expect(both.tier).toBe("basic");
  });
});
