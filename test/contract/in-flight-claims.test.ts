import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { createInFlightClaims } from "../../src/lib/in-flight-claims.ts";
import { localUpstash } from "./stand-ins.ts";

// The prompt's Idempotency-Key claim (src/services/chat/send.ts) through the Worker's adapter,
// against the embedded store and, with LOCAL_REDIS_URL, a real Redis.
const upstash = localUpstash();

function claims(ttlMs = 60_000) {
  return createInFlightClaims(upstash.redis, { namespace: `test:claim:${randomUUID()}`, ttlMs });
}

describe("in-flight claims", () => {
  it("the first claim is ours, a second is told the first is in flight, a held one says so", async () => {
    const c = claims();
    expect((await c.claim("k", "first")).state).toBe("ours");
    expect((await c.claim("k", "second")).state).toBe("in_flight");
    await c.hold("k", "first", 60_000);
    expect((await c.claim("k", "second")).state).toBe("held");
    await c.release("k", "first");
    expect((await c.claim("k", "second")).state).toBe("ours");
  });

  it("only the owner releases: a request whose claim expired cannot delete the next one's", async () => {
    const c = claims(150);
    expect((await c.claim("k", "slow")).state).toBe("ours");
    await sleep(300); // the slow request's claim expired while it worked
    expect((await c.claim("k", "retry")).state).toBe("ours");
    await c.release("k", "slow"); // the slow one fails late and releases "its" claim
    expect((await c.claim("k", "third")).state).toBe("in_flight"); // the retry's claim still stands
    await c.release("k", "retry");
    expect((await c.claim("k", "third")).state).toBe("ours");
  });

  it("a stranger's release leaves a hold in place; the holder's release ends it", async () => {
    const c = claims();
    expect((await c.claim("k", "a")).state).toBe("ours");
    await c.hold("k", "a", 60_000);
    await c.release("k", "b");
    expect((await c.claim("k", "b")).state).toBe("held");
    await c.release("k", "a");
    expect((await c.claim("k", "b")).state).toBe("ours");
  });

  it("tells another request how long the claim or hold it met has left", async () => {
    const c = claims(10_000);
    expect(await c.claim("k", "first")).toEqual({ state: "ours" });
    const inFlight = await c.claim("k", "second");
    expect(inFlight.state).toBe("in_flight");
    const left = "expiresInMs" in inFlight ? inFlight.expiresInMs : undefined;
    expect(left).toBeGreaterThan(8_000);
    expect(left).toBeLessThanOrEqual(10_000);
    await c.hold("k", "first", 30_000);
    const held = await c.claim("k", "second");
    expect(held.state).toBe("held");
    const heldLeft = "expiresInMs" in held ? held.expiresInMs : undefined;
    expect(heldLeft).toBeGreaterThan(28_000);
    expect(heldLeft).toBeLessThanOrEqual(30_000);
  });

  it("a claim and a hold expire by themselves", async () => {
    const c = claims(150);
    expect((await c.claim("k", "a")).state).toBe("ours");
    await sleep(300);
    expect((await c.claim("k", "b")).state).toBe("ours");
    await c.hold("k", "b", 150);
    expect((await c.claim("k", "c")).state).toBe("held");
    await sleep(300);
    expect((await c.claim("k", "c")).state).toBe("ours");
  });
});
