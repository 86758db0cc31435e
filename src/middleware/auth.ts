import type { Context } from "hono";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";
import { sessionIsLive } from "../db/queries/refresh-tokens";
import { UnauthorizedError } from "../errors";
import { ID_PATTERN } from "../lib/ids";
import { type AccessClaims, InvalidTokenError } from "../lib/tokens";

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;
const REVOKED = "The bearer token is invalid or expired.";

/** Reads whose handlers may run while the session check is in flight (they write nothing). */
const SAFE_METHODS = new Set(["GET", "HEAD"]);

/**
 * Verifies the bearer token (no I/O) and STARTS the session check: is the token's refresh-token
 * family (`sid`) still unrevoked, and was the token issued after the last password change? See
 * docs/adr/0008-credentials.md. A revoked session's token gets 401 on every protected route:
 *
 * - `GET`/`HEAD`: the handler runs while the check is in flight (0 extra rounds); a failed check
 *   replaces its answer with the 401 (an error answer, which carries no data, is not held back).
 * - any other method: the check is awaited before the handler, so nothing is written for a
 *   revoked session (+1 round), unless the route uses `requireAuthDeferred` and awaits
 *   `liveSession(c)` together with its own first I/O.
 */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  await startSessionCheck(c);
  if (SAFE_METHODS.has(c.req.method)) {
    await next();
    // An answer that carries data waits for the check, and so does a 404 after a lookup: "not
    // found" against a 200 for another id would tell a revoked token's holder which ids exist
    // (the check started before the lookup, so this adds no round). Other error answers, and a
    // 404 for an id that is not even well formed (no lookup happened), reveal nothing the token
    // grants and are not held back a round.
    const status = c.res.status;
    if (status < 400 || (status === 404 && !malformedIdParam(c))) await liveSession(c);
  } else {
    await liveSession(c);
    await next();
  }
});

/**
 * `requireAuth` for handlers that await `liveSession(c)` themselves, in the same round as their
 * first I/O and before any write (e.g. `Promise.all([liveSession(c), firstRead])`). As a backstop
 * the check is awaited after the handler too, so a forgotten await still answers 401.
 */
export const requireAuthDeferred = createMiddleware<AppEnv>(async (c, next) => {
  await startSessionCheck(c);
  await next();
  await liveSession(c);
});

/** True when a path parameter of the matched route is not an id `newId` could have made. */
function malformedIdParam(c: Context<AppEnv>): boolean {
  const params = c.req.param() as Record<string, string>;
  return Object.values(params).some((value) => !ID_PATTERN.test(value));
}

/** Resolves when the caller's session stands; throws 401 for a revoked one. */
export async function liveSession(c: Context<AppEnv>): Promise<void> {
  if (!(await c.get("sessionCheck"))) throw new UnauthorizedError(REVOKED);
}

/**
 * The session check again, later (a long-lived stream asks it every few seconds, so a logout
 * or a revoked family ends it): resolves false once the caller's session no longer stands.
 */
export function sessionRecheck(c: Context<AppEnv>): () => Promise<boolean> {
  const { db } = c.get("ctx");
  const userId = c.get("userId");
  const familyId = c.get("sessionId");
  const issuedAt = new Date(Math.round(c.get("tokenIssuedAt") * 1000));
  if (!familyId) return async () => false;
  return () => sessionIsLive(db, { userId, familyId, issuedAt });
}

async function startSessionCheck(c: Context<AppEnv>): Promise<void> {
  const header = c.req.header("authorization");
  const match = header ? BEARER.exec(header) : null;
  if (!match?.[1]) throw new UnauthorizedError("A valid bearer token is required.");
  const { tokens, clock, db } = c.get("ctx");
  let claims: AccessClaims;
  try {
    claims = await tokens.verify(match[1], clock.now());
  } catch (err) {
    if (err instanceof InvalidTokenError) throw new UnauthorizedError(REVOKED);
    throw err;
  }
  c.set("userId", claims.userId);
  c.set("tokenIssuedAt", claims.issuedAt);
  // Every token we issue names its session; one without cannot be checked, so it is refused.
  if (!claims.sessionId) throw new UnauthorizedError(REVOKED);
  c.set("sessionId", claims.sessionId);
  const check = sessionIsLive(db, {
    userId: claims.userId,
    familyId: claims.sessionId,
    issuedAt: new Date(Math.round(claims.issuedAt * 1000)),
  });
  // Always awaited by the middleware; this only keeps an early rejection from being "unhandled".
  check.catch(() => {});
  c.set("sessionCheck", check);
}

/**
 * The caller named by a valid bearer token, or null when there is none or it is invalid or
 * expired (no I/O, no session check): for logout, where the refresh token alone also suffices.
 */
export async function optionalCaller(
  c: Context<AppEnv>,
): Promise<{ userId: string; sessionId?: string } | null> {
  const header = c.req.header("authorization");
  const match = header ? BEARER.exec(header) : null;
  if (!match?.[1]) return null;
  const { tokens, clock } = c.get("ctx");
  try {
    const claims = await tokens.verify(match[1], clock.now());
    c.set("userId", claims.userId);
    return { userId: claims.userId, ...(claims.sessionId ? { sessionId: claims.sessionId } : {}) };
  } catch (err) {
    if (err instanceof InvalidTokenError) return null;
    throw err;
  }
}

/** OpenAPI security requirement for routes behind requireAuth. */
export const bearerSecurity = [{ bearerAuth: [] as string[] }];
