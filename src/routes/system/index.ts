import { createRoute, z } from "@hono/zod-openapi";
import { sql } from "drizzle-orm";
import { checkHealth } from "../../services/health";
import { createRouter, errorResponses, jsonContent } from "../router";

const CheckSchema = z.object({
  status: z.enum(["ok", "error"]),
  latency_ms: z.number().openapi({ example: 3 }),
  error: z.string().optional().openapi({ example: "fetch failed" }),
});

const HealthSchema = z
  .object({
    status: z.enum(["ok", "degraded"]),
    checks: z.object({ database: CheckSchema, redis: CheckSchema }),
  })
  .openapi("Health");

const health = createRoute({
  method: "get",
  path: "/health",
  operationId: "getHealth",
  tags: ["System"],
  summary: "Liveness and dependency checks",
  responses: {
    200: jsonContent(HealthSchema, "Every dependency answered"),
    503: jsonContent(HealthSchema, "A dependency failed; the failing check says which"),
    // The body limit applies before any route, to a GET carrying a body too.
    ...errorResponses(413),
  },
});

export const systemRoutes = createRouter().openapi(health, async (c) => {
  const { db, redis } = c.get("ctx");
  const report = await checkHealth({
    database: () => db.execute(sql`select 1`),
    redis: () => redis.ping(),
  });
  return c.json(report, report.status === "ok" ? 200 : 503);
});
