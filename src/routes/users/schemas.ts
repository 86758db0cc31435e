import { z } from "@hono/zod-openapi";
import { EmailSchema, NameSchema, UserSchema } from "../shared/schemas";

export const UserResponseSchema = z.object({ user: UserSchema }).openapi("UserResponse");

export const UpdateMeSchema = z
  .object({ name: NameSchema.nullable().optional(), email: EmailSchema.nullable().optional() })
  .strict()
  .refine((b) => b.name !== undefined || b.email !== undefined, {
    message: "Send at least one of name, email.",
  })
  .openapi("UpdateUserRequest");
