import { createRoute } from "@hono/zod-openapi";
import { requireAuthCarried, sessionOf } from "../../middleware/auth";
import { getCurrentUser, updateCurrentUser } from "../../services/auth/accounts";
import { createRouter, errorResponses, jsonContent } from "../router";
import { toUserJson } from "../shared/schemas";

import { UpdateMeSchema, UserResponseSchema } from "./schemas";

const getMe = createRoute({
  method: "get",
  path: "/user/me",
  operationId: "getMe",
  tags: ["User"],
  summary: "The authenticated user",
  // The read carries the session check (one query, issue 18).
  middleware: [requireAuthCarried] as const,
  responses: {
    200: jsonContent(UserResponseSchema, "The caller's profile"),
    ...errorResponses(401, 503),
  },
});

const patchMe = createRoute({
  method: "patch",
  path: "/user/me",
  operationId: "updateMe",
  tags: ["User"],
  summary: "Update the caller's name or email (null clears a field)",
  // The update itself is conditional on the session (one round, one query for the check and the
  // write), so the separate check never runs.
  middleware: [requireAuthCarried] as const,
  request: {
    body: { content: { "application/json": { schema: UpdateMeSchema } }, required: true },
  },
  responses: {
    200: jsonContent(UserResponseSchema, "The updated profile"),
    ...errorResponses(400, 401, 413, 415, 503),
  },
});

/** The caller's profile; every route requires a bearer token. */
export const userRoutes = createRouter({ auth: true })
  .openapi(getMe, async (c) => {
    const user = await getCurrentUser(c.get("ctx"), {
      userId: c.get("userId"),
      tokenIssuedAt: c.get("tokenIssuedAt"),
      session: sessionOf(c),
    });
    return c.json({ user: toUserJson(user) }, 200);
  })
  .openapi(patchMe, async (c) => {
    const body = c.req.valid("json");
    const user = await updateCurrentUser(c.get("ctx"), {
      userId: c.get("userId"),
      tokenIssuedAt: c.get("tokenIssuedAt"),
      sessionId: c.get("sessionId") as string,
      changes: {
        ...(body.name !== undefined ? { name: body.name } : {}),
        ...(body.email !== undefined ? { email: body.email } : {}),
      },
    });
    return c.json({ user: toUserJson(user) }, 200);
  });
