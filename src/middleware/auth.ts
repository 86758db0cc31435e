import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";
import { UnauthorizedError } from "../errors";
import { InvalidTokenError } from "../lib/tokens";

const BEARER = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/;

/**
 * Authenticates a request from its bearer token alone: no database or Redis round trip. Sets
 * `userId`. Tokens are accepted only in the Authorization header, never in the URL.
 */
export const requireAuth = createMiddleware<AppEnv>(async (c, next) => {
  const header = c.req.header("authorization");
  const match = header ? BEARER.exec(header) : null;
  if (!match?.[1]) throw new UnauthorizedError("A valid bearer token is required.");
  const { tokens, clock } = c.get("services");
  try {
    const claims = await tokens.verify(match[1], clock.now());
    c.set("userId", claims.userId);
    c.set("tokenIssuedAt", claims.issuedAt);
    if (claims.sessionId) c.set("sessionId", claims.sessionId);
  } catch (err) {
    if (err instanceof InvalidTokenError) {
      throw new UnauthorizedError("The bearer token is invalid or expired.");
    }
    throw err;
  }
  await next();
});

/** OpenAPI security requirement for routes behind requireAuth. */
export const bearerSecurity = [{ bearerAuth: [] as string[] }];
