import { randomUUID } from "node:crypto";
import { beforeAll, describe, expect, it } from "vitest";
import { createVersionedCache, type VersionedCache } from "../../src/lib/cache.ts";
import { createPendingGate, type PendingGate } from "../../src/lib/pending-gate.ts";
import { rootLogger } from "../../src/log.ts";
import { createDailyQuota, type DailyQuota, readDailyUsage } from "../../src/services/quota.ts";
import { localUpstash } from "./stand-ins.ts";

// Issue 18 item 3: a prompt's quota take, its pending-replies entry and the chatroom-list cache's
// version bump run as one Redis script (one billed command instead of three). Each part must
// still do what its own adapter does, the take must stay once-per-request, and a take that was
// already given back must touch neither the gate nor the cache.

const upstash = localUpstash();
let quota: DailyQuota;
let cache: VersionedCache;
let gate: PendingGate;

const also = (userId: string, member: string) => ({
  gate: gate.entry(userId, member),
  invalidate: cache.invalidation(userId),
});

async function version(userId: string): Promise<string | undefined> {
  return (await cache.read(userId, "page"))?.version;
}

beforeAll(async () => {
  const { redis } = upstash;
  quota = createDailyQuota({ redis, basicLimit: 5, proLimit: 1000 });
  cache = createVersionedCache({
    redis,
    namespace: `test-cache-${randomUUID()}`,
    ttlSeconds: 60,
    readTimeoutMs: 2_000,
    log: rootLogger,
  });
  gate = createPendingGate(redis, { namespace: `test-gate-${randomUUID()}`, ttlMs: 15_000 });
});

describe("the prompt's quota take with its gate entry and cache bump", () => {
  it("counts on the daily counter, enters the gate and bumps the list version in one command", async () => {
    const user = `prompt-take-${randomUUID()}`;
    await gate.enter(user, "earlier");
    const before = await version(user);
    const { ticket, members } = await quota.takeForPrompt(user, randomUUID(), also(user, "mine"));
    expect(ticket.count).toBe(1);
    expect(members.sort()).toEqual(["earlier", "mine"]);
    expect(await version(user)).not.toBe(before);
    // The same counter as `take` and GET /subscription/status read.
    expect((await quota.take(user)).count).toBe(2);
    const usage = await readDailyUsage(
      {
        redis: upstash.redis,
        clock: { now: () => new Date() },
        config: { dailyLimits: { basic: 5, pro: 1000 } },
      },
      user,
      "basic",
    );
    expect(usage.used_today).toBe(2);
  });

  it("counts once however often Redis runs it, and the refund gives it back", async () => {
    const user = `prompt-take-once-${randomUUID()}`;
    const id = randomUUID();
    const first = await quota.takeForPrompt(user, id, also(user, id));
    const again = await quota.takeForPrompt(user, id, also(user, id));
    expect(again.ticket.count).toBe(first.ticket.count);
    expect(again.members).toEqual([id]);
    await quota.refund(user, first.ticket.day, id);
    expect((await quota.take(user)).count).toBe(1);
  });

  it("does nothing for a take already given back: no count, no gate entry, no bump", async () => {
    const user = `prompt-take-cancelled-${randomUUID()}`;
    const id = randomUUID();
    await quota.cancelTake(user, id);
    const before = await version(user);
    await expect(quota.takeForPrompt(user, id, also(user, id))).rejects.toThrow(/unavailable/);
    expect(await version(user)).toBe(before);
    expect(await gate.enter(user, "probe")).toEqual(["probe"]);
    expect((await quota.take(user)).count).toBe(1);
  });

  it("purges expired gate entries as enter does", async () => {
    const user = `prompt-take-expired-${randomUUID()}`;
    const past = createPendingGate(upstash.redis, {
      namespace: gate.entry(user, "x").key.split(":").slice(0, -1).join(":"),
      ttlMs: 15_000,
      now: () => Date.now() - 60_000,
    });
    await past.enter(user, "stale");
    const { members } = await quota.takeForPrompt(user, randomUUID(), also(user, "fresh"));
    expect(members).toEqual(["fresh"]);
  });
});
