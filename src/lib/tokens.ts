import { errors, jwtVerify, SignJWT } from "jose";
import { newId } from "./ids";

export const TOKEN_ISSUER = "gemini-chat-api";
export const TOKEN_AUDIENCE = "gemini-chat-api:access";
/** Explicit JWT type (RFC 8725 §3.11) so no other kind of token can pass as an access token. */
export const ACCESS_TOKEN_TYPE = "at+jwt";

export interface AccessClaims {
  userId: string;
  issuedAt: number;
  expiresAt: number;
  tokenId: string;
  /** The refresh-token family this access token was issued with (`sid`), if any. */
  sessionId?: string;
  /**
   * `ntg`: the user's number tag (`numberTag`, a keyed HMAC, never the number), which keys the
   * password-attempt budget; absent from tokens issued before it existed.
   */
  numberTag?: string;
}

export interface AccessTokens {
  sign(
    userId: string,
    now: Date,
    sessionId?: string,
    numberTag?: string,
  ): Promise<{ token: string; expiresIn: number }>;
  /** Throws InvalidTokenError for anything but a valid, unexpired access token of ours. */
  verify(token: string, now: Date): Promise<AccessClaims>;
}

export class InvalidTokenError extends Error {
  override name = "InvalidTokenError";
}

const CLOCK_TOLERANCE_SECONDS = 5;
/** Verified tokens an isolate remembers (about 0.5 KiB each). */
const VERIFIED_CACHE_SIZE = 2_000;

/** HS256 access tokens with jose; the algorithm, issuer, audience and type are all pinned. */
export function createAccessTokens(secret: string, ttlSeconds: number): AccessTokens {
  // Tokens this instance (one per isolate) has verified, by their exact text. Bounded: cleared
  // when full, which costs a fresh verification per token and nothing else.
  const verified = new Map<string, AccessClaims>();
  // Imported once per isolate (given raw bytes, jose imports the HMAC key on every sign and
  // verify). Only the CryptoKey is kept, never a promise, so no request awaits another's.
  let imported: CryptoKey | undefined;
  const cryptoKey = async () => {
    imported ??= await crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign", "verify"],
    );
    return imported;
  };
  return {
    async sign(userId, now, sessionId, numberTag) {
      // Millisecond `iat` (RFC 7519 allows a non-integer NumericDate): a password change must
      // refuse tokens issued a moment before it while accepting the pair issued right after.
      const iat = now.getTime() / 1000;
      const token = await new SignJWT({
        ...(sessionId ? { sid: sessionId } : {}),
        ...(numberTag ? { ntg: numberTag } : {}),
      })
        .setProtectedHeader({ alg: "HS256", typ: ACCESS_TOKEN_TYPE })
        .setIssuer(TOKEN_ISSUER)
        .setAudience(TOKEN_AUDIENCE)
        .setSubject(userId)
        .setIssuedAt(iat)
        .setExpirationTime(Math.floor(iat) + ttlSeconds)
        .setJti(newId())
        .sign(await cryptoKey());
      return { token, expiresIn: ttlSeconds };
    },
    async verify(token, now) {
      // The same token string verified before (a client sends its token with every request):
      // its signature and fixed claims cannot have changed, only the time has, so only the
      // expiry is checked again, exactly as jose checks it (whole seconds, same tolerance).
      const known = verified.get(token);
      if (known) {
        if (known.expiresAt > Math.floor(now.getTime() / 1000) - CLOCK_TOLERANCE_SECONDS) {
          return known;
        }
        verified.delete(token);
      }
      try {
        const { payload } = await jwtVerify(token, await cryptoKey(), {
          algorithms: ["HS256"],
          issuer: TOKEN_ISSUER,
          audience: TOKEN_AUDIENCE,
          typ: ACCESS_TOKEN_TYPE,
          requiredClaims: ["sub", "iat", "exp", "jti"],
          currentDate: now,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
        });
        const claims: AccessClaims = Object.freeze({
          userId: payload.sub as string,
          issuedAt: payload.iat as number,
          expiresAt: payload.exp as number,
          tokenId: payload.jti as string,
          ...(typeof payload.sid === "string" ? { sessionId: payload.sid } : {}),
          ...(typeof payload.ntg === "string" ? { numberTag: payload.ntg } : {}),
        });
        // Only tokens whose one time-dependent claim is `exp` (ours never carry `nbf`).
        if (payload.nbf === undefined) {
          if (verified.size >= VERIFIED_CACHE_SIZE) verified.clear();
          verified.set(token, claims);
        }
        return claims;
      } catch (err) {
        if (err instanceof errors.JOSEError || err instanceof TypeError) {
          throw new InvalidTokenError(err.message);
        }
        throw err;
      }
    },
  };
}
