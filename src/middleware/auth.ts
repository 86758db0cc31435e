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
  if (SAFE_METHODS.has(c.req.method)) {
    await verifyBearer(c);
    // A malformed id is answered 404 before any lookup, and that answer is not held back: a
    // check started for it would be a query nobody reads (it starts on demand if ever needed).
    if (!malformedIdParam(c)) startCheck(c);
    await next();
    // An answer that carries data waits for the check, and so does a 404 after a lookup: "not
    // found" against a 200 for another id would tell a revoked token's holder which ids exist
    // (the check started before the lookup, so this adds no round). Other error answers, and a
    // 404 for an id that is not even well formed (no lookup happened), reveal nothing the token
    // grants and are not held back a round.
    const status = c.res.status;
    if (status < 400 || (status === 404 && !malformedIdParam(c))) await liveSession(c);
  } else {
    await startSessionCheck(c);
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

/**
 * `requireAuth` for handlers whose write carries the session check as its own condition
 * (`sessionLiveCondition`, e.g. an INSERT ... SELECT ... WHERE the session stands) and that read
 * nothing before it: the token is verified, but the separate check runs only if the handler asks
 * for it with `liveSession(c)` (a vendor call and its CPU saved on every request).
 */
export const requireAuthCarried = createMiddleware<AppEnv>(async (c, next) => {
  await verifyBearer(c);
  await next();
  // A refusal answered before the write (a 400 for the body, say) never consulted the session:
  // a revoked token still gets its 401 there, at the cost of a round on that path only. Not
  // after a 5xx: it grants nothing, and a second query to a failing database would only double
  // the wait for the 503.
  const status = c.res.status;
  if (status >= 400 && status < 500 && status !== 401) await liveSession(c);
});

/** True when a path parameter of the matched route is not an id `newId` could have made. */
function malformedIdParam(c: Context<AppEnv>): boolean {
  const params = c.req.param() as Record<string, string>;
  return Object.values(params).some((value) => !ID_PATTERN.test(value));
}

/** What a write needs to carry the session check itself (`sessionLiveCondition`). */
export interface CallerSession {
  familyId: string;
  issuedAt: Date;
}

/** The verified token's session, once `requireAuth`/`requireAuthDeferred` has run. */
export function sessionOf(c: Context<AppEnv>): CallerSession | undefined {
  const familyId = c.get("sessionId");
  if (!familyId) return undefined;
  return { familyId, issuedAt: new Date(Math.round(c.get("tokenIssuedAt") * 1000)) };
}

/**
 * Resolves when the caller's session stands; throws 401 for a revoked one. Starts the check if
 * the middleware did not (`requireAuthCarried`).
 */
export async function liveSession(c: Context<AppEnv>): Promise<void> {
  if (!(await (c.get("sessionCheck") ?? startCheck(c)))) throw new UnauthorizedError(REVOKED);
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
  await verifyBearer(c);
  startCheck(c);
}

/** Verifies the bearer token (no I/O) and records who it names; 401 otherwise. */
async function verifyBearer(c: Context<AppEnv>): Promise<void> {
  const header = c.req.header("authorization");
  const match = header ? BEARER.exec(header) : null;
  if (!match?.[1]) throw new UnauthorizedError("A valid bearer token is required.");
  const { tokens, clock } = c.get("ctx");
  let claims: AccessClaims;
  try {
    claims = await tokens.verify(match[1], clock.now());
  } catch (err) {
    if (err instanceof InvalidTokenError) throw new UnauthorizedError(REVOKED);
    throw err;
  }
  c.set("userId", claims.userId);
  c.set("tokenIssuedAt", claims.issuedAt);
  if (claims.numberTag) c.set("numberTag", claims.numberTag);
  // Every token we issue names its session; one without cannot be checked, so it is refused.
  if (!claims.sessionId) throw new UnauthorizedError(REVOKED);
  c.set("sessionId", claims.sessionId);
}

/** Starts the session check of the verified token (one query) and keeps it on the context. */
function startCheck(c: Context<AppEnv>): Promise<boolean> {
  const check = sessionIsLive(c.get("ctx").db, {
    userId: c.get("userId"),
    ...(sessionOf(c) as CallerSession),
  });
  // Always awaited by the middleware; this only keeps an early rejection from being "unhandled".
  check.catch(() => {});
  c.set("sessionCheck", check);
  return check;
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
