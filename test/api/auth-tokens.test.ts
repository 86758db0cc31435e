import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { call, testEnv } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";

const key = () => new TextEncoder().encode(testEnv.JWT_SECRET);
const b64url = (v: unknown) => Buffer.from(JSON.stringify(v)).toString("base64url");
const now = () => Math.floor(Date.now() / 1000);

let session: TestSession;
beforeAll(async () => {
  session = await createSession();
});

/** The session (`sid`) a token was issued with. */
const sidOf = (token: string) =>
  JSON.parse(Buffer.from(token.split(".")[1] as string, "base64url").toString()).sid as string;

/** Signs a token with the Worker's real secret (in the fixture's session); claims can be overridden. */
function sign(
  claims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
  secret: Uint8Array = key(),
) {
  return new SignJWT({
    iss: "gemini-chat-api",
    aud: "gemini-chat-api:access",
    sub: session.user.id,
    iat: now(),
    exp: now() + 600,
    jti: crypto.randomUUID(),
    sid: sidOf(session.token),
    ...claims,
  })
    .setProtectedHeader({ alg: "HS256", typ: "at+jwt", ...header })
    .sign(secret);
}

async function expectUnauthorized(headers: Record<string, string>, path = "/user/me") {
  const res = await call("GET", path, { headers });
  expect(res.status).toBe(401);
  expect(res.body.error.code).toBe("unauthorized");
  expect(res.headers.get("www-authenticate")).toBe("Bearer");
}

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

describe("bearer authentication (/user/me)", () => {
  it("accepts a token we sign ourselves with the Worker's secret (the test signer is sound)", async () => {
    const res = await call("GET", "/user/me", { headers: bearer(await sign()) });
    expect(res.status).toBe(200);
    expect(res.body.user.id).toBe(session.user.id);
  });

  it("rejects a well-signed token without a session, or with another user's session", async () => {
    await expectUnauthorized(bearer(await sign({ sid: undefined })));
    await expectUnauthorized(bearer(await sign({ sid: crypto.randomUUID() })));
    const other = await createSession();
    await expectUnauthorized(bearer(await sign({ sid: sidOf(other.token) })));
  });

  it("rejects a missing, empty, lower-case or non-Bearer Authorization header", async () => {
    await expectUnauthorized({});
    await expectUnauthorized({ authorization: "Bearer" });
    await expectUnauthorized({ authorization: "Bearer " });
    await expectUnauthorized({ authorization: `bearer ${session.token}` });
    await expectUnauthorized({ authorization: `Basic ${btoa("a:b")}` });
    await expectUnauthorized({ authorization: `Bearer ${"x".repeat(8192)}` });
  });

  it("never takes a token from the query string", async () => {
    const res = await call("GET", `/user/me?token=${session.token}`);
    expect(res.status).toBe(401);
  });

  it("rejects alg: none with an empty signature", async () => {
    const [, payload] = (await sign()).split(".");
    await expectUnauthorized(bearer(`${b64url({ alg: "none", typ: "at+jwt" })}.${payload}.`));
  });

  it("rejects HS512 and HS384 tokens signed with the right secret", async () => {
    for (const alg of ["HS512", "HS384"]) await expectUnauthorized(bearer(await sign({}, { alg })));
  });

  it("rejects RS256 tokens and an RS256 header on an HMAC signature", async () => {
    const { privateKey, publicKey } = await generateKeyPair("RS256");
    const rs = await new SignJWT({
      iss: "gemini-chat-api",
      aud: "gemini-chat-api:access",
      sub: session.user.id,
      iat: now(),
      exp: now() + 600,
      jti: "x",
    })
      .setProtectedHeader({ alg: "RS256", typ: "at+jwt", jwk: await exportJWK(publicKey) })
      .sign(privateKey);
    await expectUnauthorized(bearer(rs));
    const [, p, s] = (await sign()).split(".");
    await expectUnauthorized(bearer(`${b64url({ alg: "RS256", typ: "at+jwt" })}.${p}.${s}`));
  });

  it("rejects a token whose payload was edited after signing", async () => {
    const other = await createSession();
    const [h, p, s] = session.token.split(".");
    const payload = JSON.parse(Buffer.from(p ?? "", "base64url").toString());
    payload.sub = other.user.id;
    await expectUnauthorized(bearer(`${h}.${b64url(payload)}.${s}`));
  });

  it("rejects a token signed with another secret", async () => {
    const forged = await sign({}, {}, new TextEncoder().encode(`${testEnv.JWT_SECRET}-not`));
    await expectUnauthorized(bearer(forged));
  });

  it("rejects wrong iss, wrong aud, wrong typ, missing sub", async () => {
    await expectUnauthorized(bearer(await sign({ iss: "Upstash" })));
    await expectUnauthorized(bearer(await sign({ aud: "gemini-chat-api:refresh" })));
    await expectUnauthorized(bearer(await sign({}, { typ: "JWT" })));
    await expectUnauthorized(bearer(await sign({ sub: undefined })));
  });

  it("rejects an expired token and a token not yet valid", async () => {
    await expectUnauthorized(bearer(await sign({ iat: now() - 3600, exp: now() - 60 })));
    await expectUnauthorized(bearer(await sign({ nbf: now() + 300 })));
  });

  it("issues access tokens that live 15 minutes", async () => {
    const payload = JSON.parse(
      Buffer.from(session.token.split(".")[1] ?? "", "base64url").toString(),
    );
    expect(payload.exp - Math.floor(payload.iat)).toBe(900);
    expect(payload).toMatchObject({ iss: "gemini-chat-api", aud: "gemini-chat-api:access" });
  });

  it("answers 401 for a valid token whose user no longer exists", async () => {
    const ghost = await sign({ sub: "01936f4e-1c2d-7b3a-9f00-000000000000" });
    await expectUnauthorized(bearer(ghost));
  });
});
