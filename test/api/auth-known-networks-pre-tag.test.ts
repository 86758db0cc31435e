// Known networks across the number-tag deploy (ADR 0008 item 10): the Worker before it recorded a
// number's known networks under `auth:v1:known:<number>`; the one after keys them by the number's
// tag. Until the transition ends, a network remembered under the old key still proves the number
// (its owner is exempt from the ceilings strangers share), and moves to the tag's set. Each test
// writes the old key exactly as a pre-deploy Worker did, then plays strangers using up the
// ceilings before the owner comes back.
import { createHmac } from "node:crypto";
import { SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createOtpStore, PRE_TAG_KNOWN_NETWORKS_UNTIL_MS } from "../../src/lib/otp.ts";
import { createRedis } from "../../src/lib/redis.ts";
import { call, cloudUrl, testEnv, uniqueClientIp, uniqueMobileNumber } from "../support/api.ts";
import { createSession, signUp } from "../support/session.ts";
import { redis } from "./chat-support.ts";

const DAY_MS = 86_400_000;
const KNOWN_TTL_MS = 90 * DAY_MS;
const PASSWORD = "correct horse battery";

const hmacHex = (message: string) =>
  createHmac("sha256", testEnv.OTP_SECRET as string)
    .update(message)
    .digest("hex");
/** A client network's tag, computed here independently (an IPv4 address is its own limit key). */
const networkTagOf = (ipv4: string) => hmacHex(`net:v1\n${ipv4}`).slice(0, 16);
const numberTagOf = (mobileNumber: string) => hmacHex(`number:v1\n${mobileNumber}`).slice(0, 32);
const oldKey = (mobileNumber: string) => `auth:v1:known:${mobileNumber}`;
const newKey = (mobileNumber: string) => `auth:v2:known:${numberTagOf(mobileNumber)}`;

/**
 * What the Worker before the tag left when `ip` proved `mobileNumber` `daysAgo` days ago: the
 * network in the number-keyed set scored by that proof, the set expiring 90 days after it.
 * Answers the score.
 */
async function rememberedBeforeTheTag(mobileNumber: string, ip: string, daysAgo = 1) {
  const proved = Date.now() - daysAgo * DAY_MS;
  await redis("ZADD", oldKey(mobileNumber), proved, networkTagOf(ip));
  await redis("PEXPIRE", oldKey(mobileNumber), proved + KNOWN_TTL_MS - Date.now());
  return proved;
}

/** An entry of the old set past the 90 days (the set itself kept alive by a newer entry). */
async function staleBeforeTheTag(mobileNumber: string, ip: string) {
  await redis(
    "ZADD",
    oldKey(mobileNumber),
    Date.now() - KNOWN_TTL_MS - DAY_MS / 2,
    networkTagOf(ip),
  );
}

/** A fresh IPv6 /64 each call: free for an attacker. */
function uniqueSlash64(): string {
  const [a = 0, b = 0, c = 0] = crypto.getRandomValues(new Uint16Array(3));
  return `2001:db8:${a.toString(16)}:${b.toString(16)}::${(c % 0xfff) + 1}`;
}
const from = (ip: string) => ({ "cf-connecting-ip": ip });
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");
const send = (mobile_number: string, ip: string, path = "/auth/send-otp") =>
  call("POST", path, { body: { mobile_number }, headers: from(ip) });
const login = (mobile_number: string, password: string, ip: string) =>
  call("POST", "/auth/login", { body: { mobile_number, password }, headers: from(ip) });
const changePassword = (token: string, ip: string) =>
  call("POST", "/auth/change-password", {
    token,
    body: { current_password: PASSWORD, new_password: "tr0ub4dor & 3 staples" },
    headers: from(ip),
  });

/** Strangers, one /64 each, send until the shared ceiling refuses; answers how many got through. */
async function strangersSendUntilRefused(mobile_number: string, path: string) {
  let sent = 0;
  for (let i = 0; i < 15; i++) {
    const res = await send(mobile_number, uniqueSlash64(), path);
    if (res.status === 429) return sent;
    expect(res.status, res.text).toBe(200);
    sent++;
  }
  return sent;
}

/** Strangers use up the number's 20 password tries an hour: four /64s, five wrong guesses each. */
async function strangersGuessUntilCeiling(mobile_number: string) {
  for (let n = 0; n < 4; n++) {
    const ip = uniqueSlash64();
    for (let i = 0; i < 5; i++) {
      expect((await login(mobile_number, `guess ${n}-${i}`, ip)).status).toBe(401);
    }
  }
  // Even the right password is refused to a network that never proved the number.
  expect((await login(mobile_number, PASSWORD, uniqueSlash64())).status).toBe(429);
}

/** The same token as the Worker signed them before the number tag existed (no `ntg`). */
async function tokenWithoutTag(token: string): Promise<string> {
  const payload = JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString());
  const { ntg: _dropped, iat: _iat, jti: _jti, ...claims } = payload as Record<string, unknown>;
  const now = Date.now() / 1000;
  return new SignJWT({ ...claims, iat: now, exp: Math.floor(now) + 600 })
    .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(testEnv.JWT_SECRET as string));
}

describe("a network remembered before the number tag, after the deploy", () => {
  it("still gets login codes past the strangers' used-up ceiling, and moves to the tag's set with its expiry; neither a network in no set nor a stale one does", async () => {
    const number = await signUp();
    const owner = uniqueClientIp();
    const proved = await rememberedBeforeTheTag(number, owner, 1);
    const stale = uniqueClientIp();
    await staleBeforeTheTag(number, stale);
    expect(await strangersSendUntilRefused(number, "/auth/send-otp")).toBe(10);
    expect((await send(number, uniqueClientIp())).status).toBe(429);
    expect((await send(number, stale)).status).toBe(429);

    const mine = await send(number, owner);
    expect(mine.status, mine.text).toBe(200);
    // Copied with its score (its last proof), so it stops counting when it would have.
    expect(Number(await redis("ZSCORE", newKey(number), networkTagOf(owner)))).toBe(proved);
    const left = Number(await redis("PTTL", newKey(number)));
    expect(left).toBeLessThanOrEqual(proved + KNOWN_TTL_MS - Date.now() + 1_000);
    expect(left).toBeGreaterThan(proved + KNOWN_TTL_MS - Date.now() - 60_000);
    expect(await redis("ZSCORE", newKey(number), networkTagOf(stale))).toBeNull();
    const ok = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: mine.body.otp },
      headers: from(owner),
    });
    expect(ok.status, ok.text).toBe(200);
  });

  it("still gets reset codes (the takeover purpose) past the strangers' used-up ceiling", async () => {
    const number = await signUp();
    const owner = uniqueClientIp();
    await rememberedBeforeTheTag(number, owner, 30);
    expect(await strangersSendUntilRefused(number, "/auth/forgot-password")).toBe(10);
    expect((await send(number, uniqueClientIp(), "/auth/forgot-password")).status).toBe(429);
    const mine = await send(number, owner, "/auth/forgot-password");
    expect(mine.status, mine.text).toBe(200);
    const reset = await call("POST", "/auth/reset-password", {
      body: { mobile_number: number, otp: mine.body.otp, new_password: PASSWORD },
      headers: from(owner),
    });
    expect(reset.status, reset.text).toBe(200);
  });

  it("is not locked by strangers' wrong codes: its slip is a 401 that feeds no lock, and it moves to the tag's set", async () => {
    const number = await signUp();
    const owner = uniqueClientIp();
    // The owner asked for a code before anything marked the network known.
    const mine = await send(number, owner);
    expect(mine.status).toBe(200);
    const proved = await rememberedBeforeTheTag(number, owner, 1);
    // As if strangers had made 100 wrong guesses on their own codes.
    await redis("SET", `otp:v1:failures:${number}`, 100, "EX", 600);
    const stranger = uniqueClientIp();
    const theirs = await send(number, stranger);
    const locked = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: theirs.body.otp },
      headers: from(stranger),
    });
    expect(locked.status).toBe(429);

    const slip = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: wrong(mine.body.otp) },
      headers: from(owner),
    });
    expect(slip.status, slip.text).toBe(401);
    expect(await redis("GET", `otp:v1:failures:${number}`)).toBe("100");
    expect(Number(await redis("ZSCORE", newKey(number), networkTagOf(owner)))).toBe(proved);
    const ok = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: mine.body.otp },
      headers: from(owner),
    });
    expect(ok.status, ok.text).toBe(200);
  });

  it("still logs in with its password past the strangers' 20 tries; a stale entry and another number's entry do not", async () => {
    const s = await createSession({ password: PASSWORD });
    const owner = uniqueClientIp();
    await rememberedBeforeTheTag(s.mobile_number, owner, 1);
    const stale = uniqueClientIp();
    await staleBeforeTheTag(s.mobile_number, stale);
    const elsewhere = uniqueClientIp();
    await rememberedBeforeTheTag(uniqueMobileNumber(), elsewhere, 1);
    await strangersGuessUntilCeiling(s.mobile_number);
    expect((await login(s.mobile_number, PASSWORD, stale)).status).toBe(429);
    expect((await login(s.mobile_number, PASSWORD, elsewhere)).status).toBe(429);

    const mine = await login(s.mobile_number, PASSWORD, owner);
    expect(mine.status, mine.text).toBe(200);
  }, 60_000);

  it("changes the password with a tagged access token past the strangers' 20 tries (the tag alone cannot find the old set); a stranger's network with the same token cannot", async () => {
    const s = await createSession({ password: PASSWORD });
    const owner = uniqueClientIp();
    const proved = await rememberedBeforeTheTag(s.mobile_number, owner, 1);
    await strangersGuessUntilCeiling(s.mobile_number);
    // The token alone does not make a network known: a stolen one meets the ceiling.
    const stolen = await changePassword(s.token, uniqueClientIp());
    expect(stolen.status, stolen.text).toBe(429);

    const mine = await changePassword(s.token, owner);
    expect(mine.status, mine.text).toBe(200);
    // change-password does not record networks: this is the copy.
    expect(Number(await redis("ZSCORE", newKey(s.mobile_number), networkTagOf(owner)))).toBe(
      proved,
    );
  }, 60_000);

  it("changes the password with a token from before the tag past the strangers' 20 tries", async () => {
    const s = await createSession({ password: PASSWORD });
    const owner = uniqueClientIp();
    await rememberedBeforeTheTag(s.mobile_number, owner, 1);
    await strangersGuessUntilCeiling(s.mobile_number);
    const legacy = await tokenWithoutTag(s.token);
    expect((await changePassword(legacy, uniqueClientIp())).status).toBe(429);
    const mine = await changePassword(legacy, owner);
    expect(mine.status, mine.text).toBe(200);
  }, 60_000);
});

describe("the pre-tag fallback's end", () => {
  let store: ReturnType<typeof createOtpStore>;
  beforeAll(() => {
    store = createOtpStore(
      createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string),
    );
  });

  /** A number whose strangers' ceiling is used up, with `network` remembered before the tag. */
  async function usedUpWithOldEntry(nowMs: number, network: string) {
    const number = uniqueMobileNumber();
    await redis("SET", `auth:v2:strangers:send:login:${numberTagOf(number)}`, 10, "EX", 3600);
    await redis("ZADD", oldKey(number), nowMs - DAY_MS, network);
    await redis("EXPIRE", oldKey(number), 3600);
    return number;
  }
  const admit = (number: string, network: string, nowMs: number) =>
    store.admitStranger({
      numberTag: numberTagOf(number),
      mobileNumber: number,
      network,
      ceiling: "send:login",
      max: 10,
      windowSeconds: 86_400,
      nowMs,
      knownTtlSeconds: KNOWN_TTL_MS / 1000,
    });

  it("admits an old entry before the end, copying it with the expiry its last proof gives; at the end, the same entry is a stranger's and is not copied", async () => {
    const network = "0123456789abcdef";
    const before = PRE_TAG_KNOWN_NETWORKS_UNTIL_MS - 10 * DAY_MS;
    const kept = await usedUpWithOldEntry(before, network);
    expect(await admit(kept, network, before)).toEqual({ status: "known" });
    expect(Number(await redis("ZSCORE", newKey(kept), network))).toBe(before - DAY_MS);
    // 89 days left by the caller's clock (the Worker's), whatever the Redis clock says.
    const left = Number(await redis("PTTL", newKey(kept)));
    expect(left).toBeLessThanOrEqual(89 * DAY_MS);
    expect(left).toBeGreaterThan(89 * DAY_MS - 60_000);

    const end = PRE_TAG_KNOWN_NETWORKS_UNTIL_MS;
    const dropped = await usedUpWithOldEntry(end, network);
    expect(await admit(dropped, network, end)).toMatchObject({ status: "refused" });
    expect(await redis("EXISTS", newKey(dropped))).toBe(0);
  });
});
