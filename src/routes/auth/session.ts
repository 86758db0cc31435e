import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses, jsonContent } from "../router";
import { jsonRequestBody, TokenPairSchema } from "./schemas";

export const refresh = createRoute({
  method: "post",
  path: "/auth/refresh",
  operationId: "refreshSession",
  tags: ["Auth"],
  summary: "Rotate a refresh token into a new token pair",
  description:
    "The presented refresh token stops working. Presenting an already-rotated token answers 401 and revokes its whole family (every token and access token of that session), with one exception for a refresh whose answer was lost: within 60 seconds of the rotation, while the refresh token it issued has not been used and the presented one has not expired, the same token gets a new pair and the unreceived one stops working. So a 503 may be retried with the same refresh token.",
  request: jsonRequestBody(
    z
      .object({
        refresh_token: z
          .string()
          .max(256)
          .openapi({ example: "rt_01936f4e1c2d7b3a.kX9vQ2mZ8pL4rT6w" }),
      })
      .strict()
      .openapi("RefreshRequest"),
  ),
  responses: {
    200: jsonContent(TokenPairSchema, "A new token pair"),
    ...errorResponses(400, 401, 413, 415, 503),
  },
});

export const logout = createRoute({
  method: "post",
  path: "/auth/logout",
  operationId: "logOut",
  tags: ["Auth"],
  summary: "End a session",
  description:
    "Revokes the session of refresh_token, and the session of the bearer token when a valid one comes (Authorization is optional: the refresh token alone is enough, so an expired access token never strands a session). From then on that session's access tokens are refused (401) by every protected endpoint. Idempotent: an unknown or already revoked refresh token answers 204. Without refresh_token: 401 for an invalid bearer token, 400 for none.",
  request: {
    body: {
      content: {
        "application/json": {
          schema: z
            .object({
              refresh_token: z
                .string()
                .max(256)
                .optional()
                .openapi({ example: "rt_01936f4e1c2d7b3a.kX9vQ2mZ8pL4rT6w" }),
            })
            .strict()
            .openapi("LogoutRequest"),
        },
      },
      required: false,
    },
  },
  responses: {
    204: { description: "Logged out" },
    ...errorResponses(400, 401, 413, 415, 503),
  },
});
