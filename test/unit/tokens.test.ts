import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import {
  ACCESS_TOKEN_TYPE,
  createAccessTokens,
  InvalidTokenError,
  TOKEN_AUDIENCE,
  TOKEN_ISSUER,
} from "../../src/lib/tokens.ts";
import {
  hashRefreshToken,
  newRefreshToken,
  REFRESH_TOKEN_PATTERN,
} from "../../src/services/auth/sessions.ts";

const SECRET = "unit-jwt-secret-0123456789abcdef0123456789abcdef";
const key = new TextEncoder().encode(SECRET);
const tokens = createAccessTokens(SECRET, 900);
const NOW = new Date("2026-11-20T12:00:00.123Z");
const nowSeconds = Math.floor(NOW.getTime() / 1000);
const USER = "01936f4e-1c2d-7b3a-9f00-123456789abc";

const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");

/** A token like ours, with any part overridden. */
function craft(
  opts: {
    alg?: string;
    typ?: string | null;
    iss?: string;
    aud?: string;
    sub?: string | null;
    exp?: number;
    nbf?: number;
    jti?: string | null;
    header?: Record<string, unknown>;
    signWith?: Uint8Array;
  } = {},
) {
  const payload: Record<string, unknown> = {};
  if (opts.nbf !== undefined) payload.nbf = opts.nbf;
  const jwt = new SignJWT(payload)
    .setProtectedHeader({
      alg: opts.alg ?? "HS256",
      ...(opts.typ === null ? {} : { typ: opts.typ ?? ACCESS_TOKEN_TYPE }),
      ...opts.header,
    })
    .setIssuer(opts.iss ?? TOKEN_ISSUER)
    .setAudience(opts.aud ?? TOKEN_AUDIENCE)
    .setIssuedAt(nowSeconds - 10)
    .setExpirationTime(opts.exp ?? nowSeconds + 600);
  if (opts.sub !== null) jwt.setSubject(opts.sub ?? USER);
  if (opts.jti !== null) jwt.setJti(opts.jti ?? "jti-1");
  return jwt.sign(opts.signWith ?? key);
}

async function expectRejected(token: string) {
  await expect(tokens.verify(token, NOW)).rejects.toBeInstanceOf(InvalidTokenError);
}

describe("access tokens", () => {
  it("round-trips: sub, millisecond iat, exp = iat + ttl, jti, sid", async () => {
    const { token, expiresIn } = await tokens.sign(USER, NOW, "family-1");
    expect(expiresIn).toBe(900);
    const claims = await tokens.verify(token, NOW);
    expect(claims.userId).toBe(USER);
    expect(Math.round(claims.issuedAt * 1000)).toBe(NOW.getTime());
    expect(claims.expiresAt).toBe(nowSeconds + 900);
    expect(claims.tokenId).toMatch(/^[0-9a-f-]{36}$/);
    expect(claims.sessionId).toBe("family-1");
    const header = JSON.parse(Buffer.from(token.split(".")[0] ?? "", "base64url").toString());
    expect(header).toEqual({ alg: "HS256", typ: ACCESS_TOKEN_TYPE });
  });

  it("carries the number tag (ntg) when given one, and verifies tokens without it", async () => {
    const tagged = await tokens.sign(USER, NOW, "family-1", "0123456789abcdef0123456789abcdef");
    expect(await tokens.verify(tagged.token, NOW)).toMatchObject({
      sessionId: "family-1",
      numberTag: "0123456789abcdef0123456789abcdef",
    });
    const untagged = await tokens.sign(USER, NOW, "family-1");
    expect((await tokens.verify(untagged.token, NOW)).numberTag).toBeUndefined();
  });

  it("rejects a token whose number tag was altered after signing", async () => {
    const { token } = await tokens.sign(USER, NOW, "family-1", "0123456789abcdef0123456789abcdef");
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString());
    const altered = b64url({ ...claims, ntg: "fedcba9876543210fedcba9876543210" });
    // A fresh verifier: the original token text is not in its verified-token cache either way.
    await expect(
      createAccessTokens(SECRET, 900).verify(`${header}.${altered}.${signature}`, NOW),
    ).rejects.toBeInstanceOf(InvalidTokenError);
  });

  it("accepts a well-formed token crafted with the right key (the crafting helper is sound)", async () => {
    await expect(tokens.verify(await craft(), NOW)).resolves.toMatchObject({ userId: USER });
  });

  it("rejects alg: none with an empty signature", async () => {
    const token = `${b64url({ alg: "none", typ: ACCESS_TOKEN_TYPE })}.${b64url({
      iss: TOKEN_ISSUER,
      aud: TOKEN_AUDIENCE,
      sub: USER,
      iat: nowSeconds,
      exp: nowSeconds + 600,
      jti: "x",
    })}.`;
    await expectRejected(token);
  });

  it("rejects HS384/HS512 tokens signed with the right key (algorithm allow-list)", async () => {
    await expectRejected(await craft({ alg: "HS384" }));
    await expectRejected(await craft({ alg: "HS512" }));
  });

  it("rejects RS256 tokens and an RS256 header on an HMAC signature (algorithm confusion)", async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const rs = await new SignJWT({})
      .setProtectedHeader({ alg: "RS256", typ: ACCESS_TOKEN_TYPE, jwk: await exportJWK(publicKey) })
      .setIssuer(TOKEN_ISSUER)
      .setAudience(TOKEN_AUDIENCE)
      .setSubject(USER)
      .setIssuedAt(nowSeconds)
      .setExpirationTime(nowSeconds + 600)
      .setJti("x")
      .sign(privateKey);
    await expectRejected(rs);
    const hs = (await craft()).split(".");
    await expectRejected(`${b64url({ alg: "RS256", typ: ACCESS_TOKEN_TYPE })}.${hs[1]}.${hs[2]}`);
  });

  it("rejects a token signed with another key", async () => {
    await expectRejected(await craft({ signWith: new TextEncoder().encode(`${SECRET}-other`) }));
  });

  it("rejects a tampered payload (sub changed, signature kept)", async () => {
    const [h, p, s] = (await craft()).split(".");
    const payload = JSON.parse(Buffer.from(p ?? "", "base64url").toString());
    payload.sub = "01936f4e-1c2d-7b3a-9f00-000000000000";
    await expectRejected(`${h}.${b64url(payload)}.${s}`);
  });

  it("rejects wrong iss, wrong aud, wrong or missing typ, missing sub or jti", async () => {
    await expectRejected(await craft({ iss: "someone-else" }));
    await expectRejected(await craft({ aud: "gemini-chat-api:refresh" }));
    await expectRejected(await craft({ typ: "JWT" }));
    await expectRejected(await craft({ typ: null }));
    await expectRejected(await craft({ sub: null }));
    await expectRejected(await craft({ jti: null }));
  });

  it("rejects an expired token and one not yet valid", async () => {
    await expectRejected(await craft({ exp: nowSeconds - 60 }));
    await expectRejected(await craft({ nbf: nowSeconds + 120 }));
  });

  it("remembers a verified token per isolate, but still expires it and never accepts a tampered copy", async () => {
    const own = createAccessTokens(SECRET, 900);
    const { token } = await own.sign(USER, NOW, "01936f4e-1c2d-7b3a-9f00-0000000000aa");
    const first = await own.verify(token, NOW);
    // Served from the cache: the same claims (and frozen, so no request can alter another's).
    expect(await own.verify(token, new Date(NOW.getTime() + 60_000))).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    // The remembered token expires exactly as jose would expire it (exp + 5 s tolerance).
    const exp = first.expiresAt * 1000;
    await expect(own.verify(token, new Date(exp + 4_000))).resolves.toBe(first);
    await expect(own.verify(token, new Date(exp + 5_000))).rejects.toBeInstanceOf(
      InvalidTokenError,
    );
    // Once refused it is forgotten: a verification at an earlier time runs jose again.
    await expect(own.verify(token, NOW)).resolves.toEqual(first);
    // A copy with its payload changed is another string: fully verified, and refused.
    const [h, p, sig] = token.split(".");
    const payload = JSON.parse(Buffer.from(p ?? "", "base64url").toString());
    payload.sub = "01936f4e-1c2d-7b3a-9f00-000000000000";
    await expect(own.verify(`${h}.${b64url(payload)}.${sig}`, NOW)).rejects.toBeInstanceOf(
      InvalidTokenError,
    );
  });

  it("ignores kid/jku/jwk headers: the key is fixed by configuration", async () => {
    const injected = await craft({
      header: { kid: "../../dev/null", jku: "https://evil.example/jwks" },
      signWith: new TextEncoder().encode("attacker-key-0123456789abcdef0123"),
    });
    await expectRejected(injected);
  });

  it("rejects garbage", async () => {
    for (const t of ["", "a.b", "a.b.c", "x".repeat(100)]) await expectRejected(t);
  });
});

describe("refresh tokens", () => {
  it("are 32 random bytes in base64url (43 chars) and never repeat", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const t = newRefreshToken();
      expect(t).toMatch(REFRESH_TOKEN_PATTERN);
      expect(Buffer.from(t, "base64url")).toHaveLength(32);
      seen.add(t);
    }
    expect(seen.size).toBe(1000);
  });

  it("are stored as their SHA-256", async () => {
    const t = newRefreshToken();
    const { createHash } = await import("node:crypto");
    expect(await hashRefreshToken(t)).toBe(createHash("sha256").update(t).digest("hex"));
  });
});
