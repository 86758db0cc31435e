import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";
import { rootLogger } from "../log";

const SAFE_ID = /^[A-Za-z0-9._-]{8,128}$/;

/**
 * Gives every request an id (a caller's well-formed X-Request-Id is kept) and echoes it, and
 * the request's logger, which stamps that id and the user id once the auth middleware sets it.
 */
export const requestId = createMiddleware<AppEnv>(async (c, next) => {
  const incoming = c.req.header("x-request-id");
  // A random UUID (native), not a time-ordered `newId`: nothing sorts by request id, and uuid's
  // v7 was a visible share of a request's CPU (docs/performance.md).
  const id = incoming && SAFE_ID.test(incoming) ? incoming : crypto.randomUUID();
  c.set("requestId", id);
  c.set(
    "log",
    rootLogger.with(() => {
      const userId = c.get("userId");
      return userId ? { request_id: id, user_id: userId } : { request_id: id };
    }),
  );
  c.header("X-Request-Id", id);
  await next();
  c.res.headers.set("X-Request-Id", id);
});
