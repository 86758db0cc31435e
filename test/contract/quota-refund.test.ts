import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { createDailyQuota, type DailyQuota } from "../../src/services/quota.ts";
import { localUpstash } from "./stand-ins.ts";

// The daily quota's refund against the local Upstash (embedded, or a real Redis behind it when
// LOCAL_REDIS_URL is set), through the Worker's own Redis adapter: a refund lands exactly once,
// whether Redis lost its answer (the client retries) or was down for a moment (we retry).

const upstash = localUpstash();
const { fault } = upstash;
let quota: DailyQuota;

/** Today's count for the user: what one more take would see, minus that take. */
async function usedToday(userId: string): Promise<number> {
  const ticket = await quota.take(userId);
  await quota.refund(userId, ticket.day, randomUUID());
  return ticket.count - 1;
}

beforeAll(async () => {
  quota = createDailyQuota({ redis: upstash.redis, basicLimit: 5, proLimit: 1000 });
});

describe("daily quota refunds", () => {
  it("give back one prompt per refund id, however often or concurrently repeated", async () => {
    const user = `refund-${randomUUID()}`;
    const first = await quota.take(user);
    await quota.take(user);
    expect(await usedToday(user)).toBe(2);

    const replyId = randomUUID();
    await quota.refund(user, first.day, replyId);
    await Promise.all([1, 2, 3].map(() => quota.refund(user, first.day, replyId)));
    expect(await usedToday(user)).toBe(1);

    await quota.refund(user, first.day, randomUUID());
    expect(await usedToday(user)).toBe(0);
  });

  it("lands once when Redis executes it but its answer is lost (client timeouts and retries)", async () => {
    const user = `refund-lost-${randomUUID()}`;
    const ticket = await quota.take(user);
    await quota.take(user);
    // Slower than the adapter's 2 s deadline: each attempt times out after Redis ran it.
    await fault({ mode: "slow", ms: 2_300, match: user });
    const refunding = quota.refund(user, ticket.day, randomUUID());
    await sleep(2_600);
    await fault({ mode: "none", match: user });
    await refunding;
    await sleep(2_500); // every delayed copy has run by now
    expect(await usedToday(user)).toBe(1);
  });

  it("survives Redis being down for a moment instead of losing the prompt", async () => {
    const user = `refund-down-${randomUUID()}`;
    const ticket = await quota.take(user);
    await fault({ mode: "down", match: user });
    const refunding = quota.refund(user, ticket.day, randomUUID());
    await sleep(400);
    await fault({ mode: "none", match: user });
    await refunding;
    expect(await usedToday(user)).toBe(0);
  });

  it("gives up with the error when Redis stays down (the caller logs quota_refund_failed)", async () => {
    const user = `refund-gone-${randomUUID()}`;
    const ticket = await quota.take(user);
    await fault({ mode: "down", match: user });
    try {
      await expect(quota.refund(user, ticket.day, randomUUID())).rejects.toThrow();
    } finally {
      await fault({ mode: "none", match: user });
    }
    expect(await usedToday(user)).toBe(1);
  });
});
