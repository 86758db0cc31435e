import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createOtpStore, type OtpStore } from "../../src/lib/otp.ts";
import { localUpstash } from "./stand-ins.ts";

// verify-otp's code consume when its answer is lost (src/lib/otp.ts, `consume` and
// `restoreConsumed`), through the Worker's adapter against the embedded store and, with
// LOCAL_REDIS_URL, a real Redis. The load test found the consume passing the Worker's 2 s
// deadline while Redis still ran it: the code was used, the request answered 503 and the
// client's retry met 401 invalid_otp. Each consume now names itself with its request's token.
const upstash = localUpstash();

const NOW = Date.UTC(2030, 0, 1);
const RIGHT = "a".repeat(64);
const WRONG = "b".repeat(64);

/** A fresh slot holding one live code whose MAC is RIGHT. */
async function slotWithCode(store: OtpStore) {
  const slot = {
    mobileNumber: `+1555${Math.floor(Math.random() * 1e7)}`,
    purpose: "login" as const,
    network: "0123456789abcdef",
  };
  const challengeId = `${slot.network}.${randomUUID().replace(/-/g, "").slice(0, 22)}`;
  await store.issue({
    ...slot,
    mac: RIGHT,
    challengeId,
    expiresAtMs: NOW + 300_000,
    ttlSeconds: 360,
    nowMs: NOW,
  });
  const guess = (mac: string, token: string = randomUUID()) =>
    store.consume({
      ...slot,
      mac,
      challengeId,
      // Each test's own client, so budgets never meet.
      clientIp: `203.0.113.${Math.floor(Math.random() * 250)}:${randomUUID()}`,
      clientMaxTries: 100,
      clientWindowSeconds: 900,
      nowMs: NOW,
      maxAttempts: 5,
      maxConsecutiveFailures: 100,
      failureWindowSeconds: 86_400,
      callerNetwork: slot.network,
      numberTag: randomUUID(),
      knownTtlSeconds: 86_400,
      token,
    });
  const giveBack = (token: string) => store.restoreConsumed({ ...slot, token, ttlSeconds: 360 });
  return { challengeId, guess, giveBack };
}

describe("a code consume given back by its request token", () => {
  it("puts back the code a consume whose answer was lost took, once; the retry then uses it", async () => {
    const { challengeId, guess, giveBack } = await slotWithCode(createOtpStore(upstash.redis));
    const lost = randomUUID();
    await expect(guess(RIGHT, lost)).resolves.toMatchObject({ status: "ok", challengeId });
    // Used: another client's try meets no code.
    await expect(guess(RIGHT)).resolves.toEqual({ status: "missing" });
    await expect(giveBack(lost)).resolves.toBe(true);
    await expect(giveBack(lost)).resolves.toBe(false);
    // The retry of the 503 logs in; the code is then used for good.
    await expect(guess(RIGHT)).resolves.toMatchObject({ status: "ok", challengeId });
    await expect(guess(RIGHT)).resolves.toEqual({ status: "missing" });
    // A give-back of the consume that succeeded later does nothing (only the failed one's token).
    await expect(giveBack(lost)).resolves.toBe(false);
    await expect(guess(RIGHT)).resolves.toEqual({ status: "missing" });
  });

  it("stops a consume that Redis runs after the give-back: it uses nothing and counts nothing", async () => {
    const { challengeId, guess, giveBack } = await slotWithCode(createOtpStore(upstash.redis));
    const late = randomUUID();
    await expect(giveBack(late)).resolves.toBe(false);
    await expect(guess(RIGHT, late)).rejects.toThrow(/given back before it ran/);
    await expect(guess(WRONG, late)).rejects.toThrow(/given back before it ran/);
    // The late wrong run spent no attempt: the first wrong guess after it has 4 left.
    await expect(guess(WRONG)).resolves.toEqual({ status: "wrong", attemptsLeft: 4 });
    await expect(guess(RIGHT)).resolves.toMatchObject({ status: "ok", challengeId });
  });

  it("gives nothing back for a wrong guess whose answer was lost", async () => {
    const { guess, giveBack } = await slotWithCode(createOtpStore(upstash.redis));
    const lost = randomUUID();
    await expect(guess(WRONG, lost)).resolves.toEqual({ status: "wrong", attemptsLeft: 4 });
    await expect(giveBack(lost)).resolves.toBe(false);
    await expect(guess(WRONG)).resolves.toEqual({ status: "wrong", attemptsLeft: 3 });
  });

  it("does not let a provoked timeout reset the attempts a code has spent", async () => {
    const { guess, giveBack } = await slotWithCode(createOtpStore(upstash.redis));
    for (let i = 0; i < 4; i++) await guess(WRONG);
    // The owner's right code times out; it is put back with its 4 attempts still spent.
    const lost = randomUUID();
    await expect(guess(RIGHT, lost)).resolves.toMatchObject({ status: "ok" });
    await expect(giveBack(lost)).resolves.toBe(true);
    await expect(guess(WRONG)).resolves.toEqual({ status: "wrong", attemptsLeft: 0 });
    await expect(guess(RIGHT)).resolves.toEqual({ status: "missing" });
  });

  it("answers a repeated consume (the SDK resending a lost answer) as the first run did", async () => {
    const { challengeId, guess } = await slotWithCode(createOtpStore(upstash.redis));
    const token = randomUUID();
    const first = await guess(RIGHT, token);
    expect(first).toMatchObject({ status: "ok", challengeId });
    await expect(guess(RIGHT, token)).resolves.toEqual(first);
    // Another request is not let in by it.
    await expect(guess(RIGHT)).resolves.toEqual({ status: "missing" });
  });
});
