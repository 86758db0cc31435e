import { createHmac } from "node:crypto";
import { SignJWT } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { call, control, testEnv, uniqueClientIp } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { redis } from "../chat-support.ts";

// Sequential I/O rounds of change-password, measured as in chat-io-rounds.test.ts: every vendor
// call gets LATENCY ms added by the local cloud, so N sequential rounds take about N × LATENCY
// (the two PBKDF2 runs add CPU time well under one LATENCY, even on a loaded 2-core box, where
// 400 ms was not enough: they read as a third round).
const LATENCY = 1_000;

const PASSWORD = "correct horse battery";

const rounds = (ms: number) => Math.floor(ms / LATENCY);

const payloadOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()) as Record<
    string,
    unknown
  >;

/** The same token as the Worker signed them before the number tag existed (no `ntg`). */
async function legacyToken(token: string): Promise<string> {
  const { ntg: _dropped, iat: _iat, jti: _jti, ...claims } = payloadOf(token);
  const now = Date.now() / 1000;
  return new SignJWT({ ...claims, iat: now, exp: Math.floor(now) + 600 })
    .setProtectedHeader({ alg: "HS256", typ: "at+jwt" })
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(testEnv.JWT_SECRET as string));
}

async function timedChange(
  token: string,
  current_password: string,
  new_password: string,
  clientIp = uniqueClientIp(),
) {
  const started = performance.now();
  const res = await call("POST", "/auth/change-password", {
    token,
    body: { current_password, new_password },
    headers: { "cf-connecting-ip": clientIp },
  });
  return { ms: performance.now() - started, res };
}

beforeAll(async () => {
  // Warm-up: the limiter's scripts go EVALSHA first and load themselves once per Redis.
  const s = await createSession({ password: PASSWORD });
  expect((await timedChange(s.token, PASSWORD, "warm-up password")).res.status).toBe(200);
});

afterEach(async () => {
  await control("latency", { ms: 0 });
});

describe("POST /auth/change-password: sequential I/O rounds", () => {
  it("2 with a token carrying the number tag (budget beside the session check and the read), 3 with a token from before it", async () => {
    const s = await createSession({ password: PASSWORD });
    await control("latency", { ms: LATENCY });
    const tagged = await timedChange(s.token, PASSWORD, "tagged password");
    expect(tagged.res.status, tagged.res.text).toBe(200);
    expect(rounds(tagged.ms)).toBe(2);

    const legacy = await legacyToken(tagged.res.body.token);
    const untagged = await timedChange(legacy, "tagged password", "untagged password");
    expect(untagged.res.status, untagged.res.text).toBe(200);
    expect(rounds(untagged.ms)).toBe(3);
  });

  it("a wrong current password: 1 round with the tag (answered after round 1)", async () => {
    const s = await createSession({ password: PASSWORD });
    await control("latency", { ms: LATENCY });
    const wrong = await timedChange(s.token, "not the password", "whatever password");
    expect(wrong.res.status).toBe(401);
    expect(wrong.res.body.error.code).toBe("invalid_credentials");
    expect(rounds(wrong.ms)).toBe(1);
  });

  it("3 during the pre-tag transition when the strangers' ceiling refused round 1 and the network is known only under the old key (asked again with the number)", async () => {
    const s = await createSession({ password: PASSWORD });
    const hmac = (m: string) =>
      createHmac("sha256", testEnv.OTP_SECRET as string)
        .update(m)
        .digest("hex");
    const tag = hmac(`number:v1\n${s.mobile_number}`).slice(0, 32);
    const owner = uniqueClientIp();
    // The Worker before the tag remembered the owner's network; strangers used up the 20 tries.
    await redis(
      "ZADD",
      `auth:v1:known:${s.mobile_number}`,
      Date.now(),
      hmac(`net:v1\n${owner}`).slice(0, 16),
    );
    await redis("EXPIRE", `auth:v1:known:${s.mobile_number}`, 3600);
    await redis("SET", `auth:v2:strangers:login:${tag}`, 20, "EX", 3600);
    await control("latency", { ms: LATENCY });
    const changed = await timedChange(s.token, PASSWORD, "owner's password", owner);
    expect(changed.res.status, changed.res.text).toBe(200);
    expect(rounds(changed.ms)).toBe(3);
  });
});
