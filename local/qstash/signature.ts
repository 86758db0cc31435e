import { createHash, randomBytes } from "node:crypto";
import { SignJWT } from "jose";

/** QStash signatures live five minutes. */
const LIFETIME_SECONDS = 300;

/**
 * The `body` claim: base64url of sha256(raw body) WITH `=` padding, as QStash's Go encoder
 * writes it (@upstash/qstash's Receiver strips padding on both sides before comparing).
 */
export function bodyHashClaim(body: Uint8Array): string {
  return createHash("sha256").update(body).digest("base64").replace(/\+/g, "-").replace(/\//g, "_");
}

/** The Upstash-Signature JWT for one delivery of `body` to `url`. */
export async function signDelivery(key: string, url: string, body: Uint8Array): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ body: bodyHashClaim(body) })
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer("Upstash")
    .setSubject(url)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + LIFETIME_SECONDS)
    .setJti(`jwt_${randomBytes(12).toString("hex")}`)
    .sign(new TextEncoder().encode(key));
}
