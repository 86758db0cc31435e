import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";

/**
 * One JSON line per request: id, route, status, latency, user, rate-limit outcome. Never bodies,
 * headers or query strings, so no secret or message content can reach the logs.
 */
export const requestLog = createMiddleware<AppEnv>(async (c, next) => {
  const started = performance.now();
  await next();
  c.get("log").info("request", {
    method: c.req.method,
    route: c.req.routePath,
    status: c.res.status,
    latency_ms: Math.round((performance.now() - started) * 10) / 10,
    user_id: c.get("userId") ?? null,
    // Only rate limiters answer 429, so a 429 is a limited request whoever refused it.
    rate_limit: c.get("rateLimitOutcome") ?? (c.res.status === 429 ? "limited" : null),
  });
});
