import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { createDailyQuota, type DailyQuota } from "../../src/services/quota.ts";
import { localUpstash } from "./stand-ins.ts";

// The chaos soak's finding 4 (docs/reliability.md), both halves. A refund that met a Redis outage longer than
// its ~3 s of attempts was lost, and the prompt stayed counted for the rest of the day (the
// counter drifted above the prompts that count). With the Worker's waitUntil, the refund keeps
// trying after the response and lands once Redis is back. And a take whose answer was lost (Redis
// ran it after the Worker's 2 s deadline) was never given back: takes are now keyed by request.

const upstash = localUpstash();
const { fault } = upstash;

/** A quota whose after-the-response work is collected, as the Worker's waitUntil would keep it. */
function quotaWithWaitUntil(): { quota: DailyQuota; later: Promise<unknown>[] } {
  const later: Promise<unknown>[] = [];
  const quota = createDailyQuota({
    redis: upstash.redis,
    basicLimit: 5,
    proLimit: 1000,
    waitUntil: (p) => later.push(p),
  });
  return { quota, later };
}

/** Today's count for the user: what one more take would see, minus that take. */
async function usedToday(quota: DailyQuota, userId: string): Promise<number> {
  const ticket = await quota.take(userId);
  await quota.refund(userId, ticket.day, randomUUID());
  return ticket.count - 1;
}

describe("a daily quota refund during a Redis outage", () => {
  it("keeps trying after the response and lands once Redis is back (5 s outage)", async () => {
    const { quota, later } = quotaWithWaitUntil();
    const user = `refund-outage-${randomUUID()}`;
    const ticket = await quota.take(user);
    await quota.take(user);
    await fault({ mode: "down", match: user });
    const started = Date.now();
    try {
      // Past its ~3 s of attempts the refund hands the rest to waitUntil instead of failing.
      await quota.refund(user, ticket.day, randomUUID());
      expect(later).toHaveLength(1);
      await sleep(Math.max(0, 5_000 - (Date.now() - started)));
    } finally {
      await fault({ mode: "none", match: user });
    }
    await Promise.all(later);
    expect(await usedToday(quota, user)).toBe(1);
  }, 30_000);

  it("gives back one prompt however many late attempts ran (the marker holds)", async () => {
    const { quota, later } = quotaWithWaitUntil();
    const user = `refund-outage-once-${randomUUID()}`;
    const ticket = await quota.take(user);
    await quota.take(user);
    await quota.take(user);
    const refundId = randomUUID();
    await fault({ mode: "error", match: user });
    try {
      await Promise.all([
        quota.refund(user, ticket.day, refundId),
        quota.refund(user, ticket.day, refundId),
      ]);
      expect(later).toHaveLength(2);
    } finally {
      await fault({ mode: "none", match: user });
    }
    await Promise.all(later);
    await quota.refund(user, ticket.day, refundId);
    expect(await usedToday(quota, user)).toBe(2);
  }, 30_000);
});

describe("a refund whose caller keeps it owed itself (the sweep)", () => {
  it("throws after its ~3 s of attempts instead of going on after the response", async () => {
    // The sweep clears a reply's refund_owed_at mark (or forgets a quota:unsettled entry) only
    // once the refund is paid: a refund that resolved while it was still failing (handed to
    // waitUntil, and lost with a long outage) would make it forget one it had not paid.
    const { quota, later } = quotaWithWaitUntil();
    const user = `refund-owed-${randomUUID()}`;
    const ticket = await quota.take(user);
    const refundId = randomUUID();
    await fault({ mode: "down", match: user });
    try {
      await expect(
        quota.refund(user, ticket.day, refundId, { retryLater: false }),
      ).rejects.toThrow();
      expect(later).toHaveLength(0);
    } finally {
      await fault({ mode: "none", match: user });
    }
    await quota.refund(user, ticket.day, refundId, { retryLater: false });
    expect(await usedToday(quota, user)).toBe(0);
  }, 30_000);

  it("hands several takes to the sweep in one command, read back oldest first", async () => {
    const { quota } = quotaWithWaitUntil();
    const user = `unsettled-many-${randomUUID()}`;
    const [first, second] = [randomUUID(), randomUUID()];
    await quota.deferSettle(
      { replyId: second, userId: user, day: "2026-12-07", atMs: 2 },
      { replyId: first, userId: user, day: "2026-12-07", atMs: 1 },
    );
    try {
      const mine = (await quota.unsettled()).filter((t) => t.userId === user);
      expect(mine).toEqual([
        { replyId: first, userId: user, day: "2026-12-07", atMs: 1 },
        { replyId: second, userId: user, day: "2026-12-07", atMs: 2 },
      ]);
    } finally {
      await quota.forgetUnsettled([first, second]);
    }
  });
});

describe("a daily quota take keyed by its request", () => {
  it("counts once however often Redis runs it (a client retry after a lost answer)", async () => {
    const { quota } = quotaWithWaitUntil();
    const user = `take-once-${randomUUID()}`;
    const requestId = randomUUID();
    const first = await quota.take(user, requestId);
    const again = await Promise.all([quota.take(user, requestId), quota.take(user, requestId)]);
    expect(again.map((t) => t.count)).toEqual([first.count, first.count]);
    expect(await usedToday(quota, user)).toBe(1);
  });

  it("given back after its answer was lost: counts nothing, whether it ran before or after", async () => {
    const { quota } = quotaWithWaitUntil();
    const user = `take-cancel-${randomUUID()}`;
    const ran = randomUUID();
    await quota.take(user, ran);
    await quota.cancelTake(user, ran);
    const late = randomUUID();
    await quota.cancelTake(user, late);
    await expect(quota.take(user, late)).rejects.toThrow(/unavailable/);
    const never = randomUUID();
    await quota.cancelTake(user, never);
    expect(await usedToday(quota, user)).toBe(0);
    // A refund after the cancel gives nothing back twice.
    await quota.take(user);
    await quota.refund(user, (await quota.take(user)).day, ran);
    expect(await usedToday(quota, user)).toBe(2);
  });
});
