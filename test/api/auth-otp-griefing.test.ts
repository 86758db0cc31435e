// Strangers cannot kill or lock the owner's codes (issue 12, item 5; ADR 0008). The owner asks
// for codes from one client address, the stranger works from others.
import { describe, expect, it } from "vitest";
import { call, uniqueMobileNumber, withinOneWindow } from "../support/api.ts";
import { signUp, uniqueClientIp } from "../support/session.ts";
import { redis } from "./chat-support.ts";

const from = (ip: string) => ({ "cf-connecting-ip": ip });

/** A signed-up number, not yet proved. */
const registered = () => signUp();

const send = (mobile_number: string, ip: string, path = "/auth/send-otp") =>
  call("POST", path, { body: { mobile_number }, headers: from(ip) });
const verify = (mobile_number: string, otp: string, ip: string, challenge_id?: string) =>
  call("POST", "/auth/verify-otp", {
    body: { mobile_number, otp, ...(challenge_id ? { challenge_id } : {}) },
    headers: from(ip),
  });
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");

describe("a stranger's guesses", () => {
  it("never use up the owner's code, with or without the owner's challenge id", async () => {
    const number = await registered();
    const owner = uniqueClientIp();
    const sent = await send(number, owner);
    expect(sent.status).toBe(200);
    expect(sent.body.challenge_id).toMatch(/^[0-9a-f]{16}\.[A-Za-z0-9_-]{22}$/);
    // Ten wrong guesses from another network: none reaches the owner's code.
    const stranger = uniqueClientIp();
    for (let i = 0; i < 10; i++) {
      const res = await verify(number, wrong(sent.body.otp), stranger);
      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe("invalid_otp");
    }
    // A made-up challenge id naming the owner's network is not the code's: nothing evaluated.
    const forged = `${sent.body.challenge_id.split(".")[0]}.${"A".repeat(22)}`;
    for (let i = 0; i < 6; i++) {
      const res = await verify(number, wrong(sent.body.otp), stranger, forged);
      expect(res.status).toBe(401);
    }
    // The owner still has all 5 attempts: a wrong one leaves 4, then the right code works.
    const slip = await verify(number, wrong(sent.body.otp), owner);
    expect(slip.body.error.details).toEqual({ attempts_left: 4 });
    expect(
      (await verify(number, sent.body.otp, uniqueClientIp(), sent.body.challenge_id)).status,
    ).toBe(200);
  });

  it("on the stranger's own codes leave the owner's code alive", async () => {
    const number = await registered();
    const owner = uniqueClientIp();
    const mine = await send(number, owner);
    // The stranger asks for a code too (it goes to the owner's phone) and burns it.
    const stranger = uniqueClientIp();
    const theirs = await send(number, stranger);
    expect(theirs.status).toBe(200);
    for (let i = 0; i < 5; i++) {
      await verify(number, "000000", stranger, theirs.body.challenge_id);
    }
    const dead = await verify(number, theirs.body.otp, stranger, theirs.body.challenge_id);
    expect(dead.status).toBe(401);
    // Issuing the stranger's code replaced nothing of the owner's.
    expect((await verify(number, mine.body.otp, owner)).status).toBe(200);
  });

  it("cannot lock out the owner who sends the challenge id", async () => {
    const number = await registered();
    // As if strangers had made 100 wrong guesses in a row (reaching it takes 20 networks).
    await redis("SET", `otp:v1:failures:${number}`, 100, "EX", 600);
    const owner = uniqueClientIp();
    const sent = await send(number, owner);
    const bare = await verify(number, sent.body.otp, owner);
    expect(bare.status).toBe(429);
    const withId = await verify(number, sent.body.otp, owner, sent.body.challenge_id);
    expect(withId.status).toBe(200);
  });
});

describe("a stranger behind the owner's address (a carrier NAT)", () => {
  it("replaces the code tried without a challenge id, not the owner's code", async () => {
    const number = await registered();
    const shared = uniqueClientIp();
    const owner = await send(number, shared);
    expect(owner.status).toBe(200);
    // The stranger asks after the 30 s cool-down (ended here instead of waited for).
    const [cooldown] = (await redis("KEYS", `otp:v2:cooldown:login:${number}:*`)) as string[];
    await redis("DEL", cooldown as string);
    const stranger = await send(number, shared);
    expect(stranger.status).toBe(200);
    // Without a challenge id the latest code (the stranger's) is the one tried...
    const bare = await verify(number, owner.body.otp, shared);
    expect(bare.status).toBe(401);
    // ...but the owner's code is alive for the owner's challenge id.
    const mine = await verify(number, owner.body.otp, shared, owner.body.challenge_id);
    expect(mine.status, mine.text).toBe(200);
  });
});

describe("a stranger's sends", () => {
  it("do not start the owner's cool-down or spend the owner's hourly sends", async () => {
    const number = await registered();
    const stranger = uniqueClientIp();
    expect((await send(number, stranger)).status).toBe(200);
    expect((await send(number, stranger)).status).toBe(429);
    expect((await send(number, uniqueClientIp())).status).toBe(200);
  });
});

describe("the per-client budget of codes tried", () => {
  it("refuses before evaluating: a refused guess neither counts nor reveals the code", () =>
    withinOneWindow(15 * 60_000, async () => {
      const number = await registered();
      const owner = uniqueClientIp();
      const sent = await send(number, owner);
      const busy = uniqueClientIp();
      for (let round = 0; round < 10; round++) {
        await Promise.all(
          Array.from({ length: 10 }, () => verify(uniqueMobileNumber(), "123456", busy)),
        );
      }
      // Over budget: right and wrong guesses get the same 429, and neither touches the code.
      const right = await verify(number, sent.body.otp, busy, sent.body.challenge_id);
      const bad = await verify(number, wrong(sent.body.otp), busy, sent.body.challenge_id);
      expect([right.status, bad.status]).toEqual([429, 429]);
      expect(right.body.error.code).toBe(bad.body.error.code);
      const slip = await verify(number, wrong(sent.body.otp), owner);
      expect(slip.body.error.details).toEqual({ attempts_left: 4 });
      expect((await verify(number, sent.body.otp, owner)).status).toBe(200);
    }));
});

describe("reset codes", () => {
  it("answer the same attempts_left for registered and unregistered numbers", async () => {
    const known = await registered();
    const unknown = uniqueMobileNumber();
    const reset = async (mobile_number: string) => {
      const ip = uniqueClientIp();
      const sent = await send(mobile_number, ip, "/auth/forgot-password");
      expect(sent.status).toBe(200);
      const answers = [];
      for (let i = 0; i < 2; i++) {
        const res = await call("POST", "/auth/reset-password", {
          body: {
            mobile_number,
            otp: wrong(sent.body.otp),
            challenge_id: sent.body.challenge_id,
            new_password: "a new password 1",
          },
          headers: from(ip),
        });
        answers.push([res.status, res.body.error.details]);
      }
      return answers;
    };
    const [a, b] = await Promise.all([reset(known), reset(unknown)]);
    expect(a).toEqual([
      [401, { attempts_left: 4 }],
      [401, { attempts_left: 3 }],
    ]);
    expect(b).toEqual(a);
  });
});
