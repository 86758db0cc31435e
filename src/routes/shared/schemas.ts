import { z } from "@hono/zod-openapi";
import type { UserRow } from "../../db/queries/users";

/**
 * Field and view schemas more than one resource uses: the person's name and email, a chatroom
 * title, and the public view of a user. Text fields refuse NUL (Postgres text refuses it: a 500)
 * and lone surrogates (they would be stored as U+FFFD) up front, here and only here.
 */

/** True when `s` can be stored as-is: no NUL, no lone surrogate. */
export const wellFormed = (s: string) =>
  !s.includes("\0") &&
  !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

export const NameSchema = z
  .string()
  .trim()
  .min(1)
  .max(100)
  .refine(wellFormed, "The name contains invalid characters.")
  .openapi({ example: "Ada Lovelace" });

export const EmailSchema = z.email().max(254).openapi({ example: "ada@example.com" });

export const TitleSchema = z
  .string()
  .trim()
  .min(1, "The title must not be empty.")
  .max(100)
  .refine(wellFormed, "The title contains invalid characters.")
  .openapi({ example: "Trip ideas" });

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
