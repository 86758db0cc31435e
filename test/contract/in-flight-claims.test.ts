import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { createInFlightClaims } from "../../src/lib/in-flight-claims.ts";
import { localUpstash } from "./redis-support.ts";

// The prompt's Idempotency-Key claim (src/services/chat/send.ts) through the Worker's adapter,
// against the embedded store and, with LOCAL_REDIS_URL, a real Redis.
const upstash = localUpstash();

function claims(ttlMs = 60_000) {
  return createInFlightClaims(upstash.redis, { namespace: `test:claim:${randomUUID()}`, ttlMs });
}

describe("in-flight claims", () => {
  it("the first claim is ours, a second is told the first is in flight, a held one says so", async () => {
    const c = claims();
    expect(await c.claim("k", "first")).toBe("ours");
    expect(await c.claim("k", "second")).toBe("in_flight");
    await c.hold("k", "first", 60_000);
    expect(await c.claim("k", "second")).toBe("held");
    await c.release("k", "first");
    expect(await c.claim("k", "second")).toBe("ours");
  });

  it("only the owner releases: a request whose claim expired cannot delete the next one's", async () => {
    const c = claims(150);
    expect(await c.claim("k", "slow")).toBe("ours");
    await sleep(300); // the slow request's claim expired while it worked
    expect(await c.claim("k", "retry")).toBe("ours");
    await c.release("k", "slow"); // the slow one fails late and releases "its" claim
    expect(await c.claim("k", "third")).toBe("in_flight"); // the retry's claim still stands
    await c.release("k", "retry");
    expect(await c.claim("k", "third")).toBe("ours");
  });

  it("a stranger's release leaves a hold in place; the holder's release ends it", async () => {
    const c = claims();
    expect(await c.claim("k", "a")).toBe("ours");
    await c.hold("k", "a", 60_000);
    await c.release("k", "b");
    expect(await c.claim("k", "b")).toBe("held");
    await c.release("k", "a");
    expect(await c.claim("k", "b")).toBe("ours");
  });

  it("a claim and a hold expire by themselves", async () => {
    const c = claims(150);
    expect(await c.claim("k", "a")).toBe("ours");
    await sleep(300);
    expect(await c.claim("k", "b")).toBe("ours");
    await c.hold("k", "b", 150);
    expect(await c.claim("k", "c")).toBe("held");
    await sleep(300);
    expect(await c.claim("k", "c")).toBe("ours");
  });
});
