import { createRoute, z } from "@hono/zod-openapi";
import type { UserRow } from "../db/queries/users";
import { bearerSecurity, requireAuth, requireAuthDeferred } from "../middleware/auth";
import { getCurrentUser, updateCurrentUser } from "../services/auth/accounts";
import { createRouter, errorResponses, jsonContent } from "./router";

export const UserSchema = z
  .object({
    id: z.string().openapi({ example: "01936f4e-1c2d-7b3a-9f00-123456789abc" }),
    mobile_number: z.string().openapi({ example: "+15550100000" }),
    name: z.string().nullable().openapi({ example: "Ada Lovelace" }),
    email: z.string().nullable().openapi({ example: "ada@example.com" }),
    tier: z.enum(["basic", "pro"]),
    /** Only ever in the caller's own profile: no endpoint reveals this for someone else. */
    has_password: z.boolean(),
    created_at: z.string().openapi({ format: "date-time", example: "2025-01-15T09:30:00.000Z" }),
  })
  .openapi("User");

export type UserJson = z.infer<typeof UserSchema>;

/** The public shape of a user: never the hash, Stripe ids or internal timestamps. */
export function toUserJson(user: UserRow): UserJson {
  return {
    id: user.id,
    mobile_number: user.mobileNumber,
    name: user.name,
    email: user.email,
    tier: user.tier,
    has_password: user.passwordHash !== null,
    created_at: user.createdAt.toISOString(),
  };
}

// Postgres text refuses NUL (a 500) and lone surrogates would be stored as U+FFFD: refuse both.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export const NameSchema = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .refine(
    (s) => !s.includes("\0") && !LONE_SURROGATE.test(s),
    "The name contains invalid characters.",
  )
  .openapi({ example: "Ada Lovelace" });
export const EmailSchema = z.email().max(254).openapi({ example: "ada@example.com" });

const UserResponseSchema = z.object({ user: UserSchema }).openapi("UserResponse");

const getMe = createRoute({
  method: "get",
  path: "/user/me",
  operationId: "getMe",
  tags: ["User"],
  summary: "The authenticated user",
  security: bearerSecurity,
  middleware: [requireAuth] as const,
  responses: {
    200: jsonContent(UserResponseSchema, "The caller's profile"),
    ...errorResponses(401, 503),
  },
});

const UpdateMeSchema = z
  .object({ name: NameSchema.nullable().optional(), email: EmailSchema.nullable().optional() })
  .strict()
  .refine((b) => b.name !== undefined || b.email !== undefined, {
    message: "Send at least one of name, email.",
  })
  .openapi("UpdateUserRequest");

const patchMe = createRoute({
  method: "patch",
  path: "/user/me",
  operationId: "updateMe",
  tags: ["User"],
  summary: "Update the caller's name or email (null clears a field)",
  security: bearerSecurity,
  // The update itself is conditional on the session (one round for the check and the write).
  middleware: [requireAuthDeferred] as const,
  request: {
    body: { content: { "application/json": { schema: UpdateMeSchema } }, required: true },
  },
  responses: {
    200: jsonContent(UserResponseSchema, "The updated profile"),
    ...errorResponses(400, 401, 413, 415, 503),
  },
});

export const userRoutes = createRouter()
  .openapi(getMe, async (c) => {
    const user = await getCurrentUser(c.get("ctx"), {
      userId: c.get("userId"),
      tokenIssuedAt: c.get("tokenIssuedAt"),
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
