import {
  insertRefreshToken,
  insertRefreshTokenForPassword,
  reissueOrRevokeRotatedToken,
  revokeFamily,
  revokeFamilyOfToken,
  rotateRefreshToken,
} from "../../db/queries/refresh-tokens";
import { UnauthorizedError } from "../../errors";
import { newId } from "../../lib/ids";
import { numberTag } from "../../lib/otp";
import type { AuthDeps } from "./deps";

/** 32 random bytes, base64url without padding: always 43 characters. */
export const REFRESH_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;

export interface TokenPair {
  token: string;
  expiresIn: number;
  refreshToken: string;
}

/** A new opaque refresh token: 256 bits from the CSPRNG. */
export function newRefreshToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** SHA-256 (hex) of a refresh token: what the database stores and looks up. */
export async function hashRefreshToken(token: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(token));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whom a session is for: the user, and the number whose tag its access tokens carry. */
export interface SessionOwner {
  id: string;
  mobileNumber: string;
}

/**
 * Every access token is signed here: it names its session (`sid`) and carries the number's tag
 * (`ntg`), so change-password can take the password budget before it has read the number.
 */
async function signAccessToken(
  deps: AuthDeps,
  owner: SessionOwner,
  now: Date,
  familyId: string,
): Promise<{ token: string; expiresIn: number }> {
  const tag = await numberTag(deps.config.otpSecret, owner.mobileNumber);
  return deps.tokens.sign(owner.id, now, familyId, tag);
}

/** What a new session needs stored; callers may write it inside a larger batch. */
export async function prepareSession(deps: AuthDeps, owner: SessionOwner, now: Date) {
  const userId = owner.id;
  const refreshToken = newRefreshToken();
  const familyId = newId();
  const [access, tokenHash] = await Promise.all([
    signAccessToken(deps, owner, now, familyId),
    hashRefreshToken(refreshToken),
  ]);
  return {
    pair: { token: access.token, expiresIn: access.expiresIn, refreshToken },
    row: {
      id: newId(),
      userId,
      familyId,
      tokenHash,
      expiresAt: new Date(now.getTime() + deps.config.refreshTokenTtlSeconds * 1000),
    },
  };
}

/** Starts a new session (a new refresh-token family) for a user who just authenticated. */
export async function startSession(deps: AuthDeps, owner: SessionOwner): Promise<TokenPair> {
  const now = deps.clock.now();
  const session = await prepareSession(deps, owner, now);
  await insertRefreshToken(deps.db, session.row, now);
  return session.pair;
}

/**
 * Starts a session for a password login, only while `passwordHash` (the hash just verified) is
 * still the user's: null when a change or reset replaced it meanwhile.
 */
export async function startPasswordSession(
  deps: AuthDeps,
  owner: SessionOwner,
  passwordHash: string,
): Promise<TokenPair | null> {
  const now = deps.clock.now();
  const session = await prepareSession(deps, owner, now);
  const inserted = await insertRefreshTokenForPassword(deps.db, session.row, passwordHash, now);
  return inserted ? session.pair : null;
}

const INVALID_REFRESH = "The refresh token is invalid, expired or revoked.";

/**
 * How long a rotated refresh token may be presented again as the retry of a rotation whose
 * answer was lost (Auth0's "reuse interval", Okta's "grace period"; Okta allows at most 60 s).
 * A retry arrives after the Worker's database deadline (QUERY_TIMEOUT_MS, 10 s) and the 503's
 * `Retry-After: 5`, and a client may need several retries through a database outage: 60 s covers
 * the deadline and about ten retries. Longer only widens what a thief holding a rotated token
 * can do before the owner's next refresh (docs/adr/0008-credentials.md, item 11).
 */
export const REFRESH_REUSE_INTERVAL_SECONDS = 60;

/**
 * Rotates a refresh token. A token that was already rotated is either the retry of a rotation
 * whose answer was lost, or a replay (stolen or leaked): within the reuse interval, while its
 * successor is unused, it is reissued (the successor is superseded); otherwise its whole family
 * is revoked, so the thief and the owner both have to authenticate again. A token that is not
 * rotated costs one round; an already-rotated one two, either way.
 */
export async function refreshSession(deps: AuthDeps, refreshToken: string): Promise<TokenPair> {
  if (!REFRESH_TOKEN_PATTERN.test(refreshToken)) throw new UnauthorizedError(INVALID_REFRESH);
  const now = deps.clock.now();
  const next = newRefreshToken();
  const [tokenHash, newTokenHash] = await Promise.all([
    hashRefreshToken(refreshToken),
    hashRefreshToken(next),
  ]);
  const successor = {
    tokenHash,
    newId: newId(),
    newTokenHash,
    expiresAt: new Date(now.getTime() + deps.config.refreshTokenTtlSeconds * 1000),
    now,
    familyStartedAfter: new Date(now.getTime() - deps.config.refreshFamilyMaxAgeSeconds * 1000),
  };
  let rotated = await rotateRefreshToken(deps.db, successor);
  if (!rotated) {
    const replay = await reissueOrRevokeRotatedToken(deps.db, {
      ...successor,
      rotatedAfter: new Date(now.getTime() - REFRESH_REUSE_INTERVAL_SECONDS * 1000),
    });
    if (replay.revoked > 0) {
      deps.log.warn("refresh_token_reuse", { revoked_tokens: replay.revoked });
    }
    if (!replay.reissued) throw new UnauthorizedError(INVALID_REFRESH);
    deps.log.info("refresh_token_reissued");
    rotated = replay.reissued;
  }
  const access = await signAccessToken(
    deps,
    { id: rotated.userId, mobileNumber: rotated.mobileNumber },
    now,
    rotated.familyId,
  );
  return { token: access.token, expiresIn: access.expiresIn, refreshToken: next };
}

/**
 * Ends a session: the family the access token was issued with (when a valid one came) and the
 * family of the refresh token (when one came). The refresh token alone is enough, so an expired
 * access token never strands a session. Idempotent: an unknown or revoked token changes nothing.
 */
export async function endSession(
  deps: AuthDeps,
  input: { caller?: { userId: string; sessionId?: string }; refreshToken?: string },
): Promise<void> {
  const now = deps.clock.now();
  const work: Promise<unknown>[] = [];
  const { caller } = input;
  if (caller?.sessionId) work.push(revokeFamily(deps.db, caller.userId, caller.sessionId, now));
  if (input.refreshToken !== undefined && REFRESH_TOKEN_PATTERN.test(input.refreshToken)) {
    const hash = await hashRefreshToken(input.refreshToken);
    work.push(revokeFamilyOfToken(deps.db, null, hash, now));
  }
  await Promise.all(work);
}
