import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { createOtpStore, type OtpStore, type SendWindowsScope } from "../../src/lib/otp.ts";
import { localUpstash } from "./stand-ins.ts";

// send-otp's three hourly windows (src/lib/otp.ts, `takeSendWindows` and `giveBackSendWindows`),
// through the Worker's adapter against the embedded store and, with LOCAL_REDIS_URL, a real
// Redis. They replace three @upstash/ratelimit windows whose takes had no name, so a take whose
// answer was lost could not be given back: each take is now named by its request's token.
const upstash = localUpstash();

const NOW = Date.UTC(2030, 0, 1);
const HOUR_MS = 3_600_000;
const MAX = { perNetwork: 5, perNumber: 20, perIp: 20 };

/** A request's scope: its own number and client IP unless given, a fresh token. */
function scope(over: Partial<SendWindowsScope> = {}): SendWindowsScope {
  return {
    mobileNumber: `+1555${Math.floor(Math.random() * 1e7)}${randomUUID().slice(0, 4)}`,
    purpose: "login",
    network: "0123456789abcdef",
    clientIp: `203.0.113.${Math.floor(Math.random() * 250)}:${randomUUID()}`,
    token: randomUUID(),
    ...over,
  };
}

function windows(store: OtpStore) {
  const take = (s: SendWindowsScope, nowMs = NOW) =>
    store.takeSendWindows({ ...s, nowMs, windowSeconds: 3600, max: MAX });
  /** Takes `n` sends in the scope's windows, each its own request, all admitted. */
  const fill = async (s: SendWindowsScope, n: number, nowMs = NOW) => {
    for (let i = 0; i < n; i++) {
      await expect(take({ ...s, token: randomUUID() }, nowMs)).resolves.toMatchObject({
        taken: true,
      });
    }
  };
  return { take, fill, giveBack: (s: SendWindowsScope) => store.giveBackSendWindows(s) };
}

describe("send-otp's hourly windows", () => {
  it("refuses the 6th send of a (number, network) with Retry-After, and takes nothing anywhere", async () => {
    const { take, fill } = windows(createOtpStore(upstash.redis));
    const s = scope();
    await fill(s, 4, NOW);
    await expect(take({ ...s, token: randomUUID() }, NOW + 60_000)).resolves.toEqual({
      taken: true,
      perNetwork: { success: true, remaining: 0, retryAfterSeconds: 0 },
      perNumber: { success: true, remaining: 15, retryAfterSeconds: 0 },
      perIp: { success: true, remaining: 15, retryAfterSeconds: 0 },
    });
    // Ten minutes later: the oldest of the 5 leaves the hour in 50 minutes.
    const refused = await take({ ...s, token: randomUUID() }, NOW + 600_000);
    expect(refused).toEqual({
      taken: false,
      perNetwork: { success: false, remaining: 0, retryAfterSeconds: 3000 },
      perNumber: { success: true, remaining: 15, retryAfterSeconds: 0 },
      perIp: { success: true, remaining: 15, retryAfterSeconds: 0 },
    });
    // The refusal took nothing from the number's or the IP's window.
    const other = await take({ ...s, network: "fedcba9876543210", token: randomUUID() });
    expect(other.perNumber.remaining).toBe(14);
    expect(other.perIp.remaining).toBe(14);
  });

  it("slides: a take leaves the window an hour after it was made, not at the top of an hour", async () => {
    const { take, fill } = windows(createOtpStore(upstash.redis));
    const s = scope();
    await fill(s, 1, NOW);
    await fill(s, 4, NOW + 30 * 60_000);
    const justBefore = await take({ ...s, token: randomUUID() }, NOW + HOUR_MS - 1);
    expect(justBefore.perNetwork).toEqual({ success: false, remaining: 0, retryAfterSeconds: 1 });
    await expect(take({ ...s, token: randomUUID() }, NOW + HOUR_MS)).resolves.toMatchObject({
      taken: true,
    });
    // The 4 of half past are still in: the next send waits for them.
    const after = await take({ ...s, token: randomUUID() }, NOW + HOUR_MS);
    expect(after.perNetwork).toEqual({ success: false, remaining: 0, retryAfterSeconds: 1800 });
  });

  it("keeps a stranger's network's window its own: filling it leaves the owner's network its 5", async () => {
    const { take, fill } = windows(createOtpStore(upstash.redis));
    const stranger = scope({ network: "aaaaaaaaaaaaaaaa" });
    await fill(stranger, 5);
    await expect(take({ ...stranger, token: randomUUID() })).resolves.toMatchObject({
      taken: false,
    });
    const owner = { ...stranger, network: "bbbbbbbbbbbbbbbb", clientIp: scope().clientIp };
    await expect(take({ ...owner, token: randomUUID() })).resolves.toMatchObject({
      taken: true,
      perNetwork: { success: true, remaining: 4 },
      perNumber: { success: true, remaining: 14 },
    });
  });

  it("holds 20 an hour per number across networks, and 20 per client IP across numbers", async () => {
    const { take, fill } = windows(createOtpStore(upstash.redis));
    const s = scope();
    for (let n = 0; n < 4; n++) {
      await fill({ ...s, network: `${n}`.repeat(16), clientIp: scope().clientIp }, 5);
    }
    const number = await take({ ...s, network: "eeeeeeeeeeeeeeee", token: randomUUID() });
    expect(number).toMatchObject({ taken: false, perNumber: { success: false } });
    expect(number.perNumber.retryAfterSeconds).toBe(3600);

    const ip = scope().clientIp;
    for (let n = 0; n < 20; n++) await fill(scope({ clientIp: ip }), 1);
    const client = await take(scope({ clientIp: ip }));
    expect(client).toMatchObject({ taken: false, perIp: { success: false, remaining: 0 } });
    expect(client.perIp.retryAfterSeconds).toBe(3600);
  });

  it("counts a repeated take (the SDK's retry of a lost answer) once", async () => {
    const { take } = windows(createOtpStore(upstash.redis));
    const s = scope();
    await expect(take(s)).resolves.toMatchObject({ perNetwork: { remaining: 4 } });
    await expect(take(s)).resolves.toMatchObject({ taken: true, perNetwork: { remaining: 4 } });
    await expect(take({ ...s, token: randomUUID() })).resolves.toMatchObject({
      perNetwork: { remaining: 3 },
    });
  });
});

describe("send-otp's hourly windows given back by the request's token", () => {
  it("removes exactly that request's take from all three windows, once", async () => {
    const { take, fill, giveBack } = windows(createOtpStore(upstash.redis));
    const s = scope();
    await fill(s, 2);
    await take(s);
    await giveBack(s);
    await giveBack(s);
    // The two earlier sends stay counted in every window; the given-back one in none.
    await expect(take({ ...s, token: randomUUID() })).resolves.toMatchObject({
      perNetwork: { remaining: 2 },
      perNumber: { remaining: 17 },
      perIp: { remaining: 17 },
    });
  });

  it("stops a take that Redis runs after its give-back: it takes nothing and throws", async () => {
    const { take, giveBack } = windows(createOtpStore(upstash.redis));
    const s = scope();
    await giveBack(s);
    await expect(take(s)).rejects.toThrow(/given back before it ran/);
    await expect(take({ ...s, token: randomUUID() })).resolves.toMatchObject({
      perNetwork: { remaining: 4 },
      perNumber: { remaining: 19 },
      perIp: { remaining: 19 },
    });
  });

  it("gives back nothing of another request when the token took nothing (a refusal)", async () => {
    const { take, fill, giveBack } = windows(createOtpStore(upstash.redis));
    const s = scope();
    await fill(s, 5);
    await expect(take(s)).resolves.toMatchObject({ taken: false });
    await giveBack(s);
    await expect(take({ ...s, token: randomUUID() })).resolves.toMatchObject({ taken: false });
  });
});
