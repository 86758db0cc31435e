import { createRoute, z } from "@hono/zod-openapi";
import { bearerSecurity, requireAuthDeferred } from "../../middleware/auth";
import { errorResponses, jsonContent } from "../router";
import { EmailSchema, NameSchema } from "../shared/schemas";
import {
  ChallengeIdSchema,
  GivenPasswordSchema,
  jsonRequestBody,
  MobileNumberSchema,
  NewPasswordSchema,
  NoticeSchema,
  OtpSchema,
  PasswordChangedSchema,
  SessionSchema,
  SignupResponseSchema,
} from "./schemas";

export const signup = createRoute({
  method: "post",
  path: "/auth/signup",
  operationId: "signUp",
  tags: ["Auth"],
  summary: "Create an account for a mobile number",
  description:
    "Limit: 20 signups per hour per client IP, taken ones (409) included (429 + Retry-After). A password given here is pending: it works only after the number's first verify-otp carries the returned signup_token.",
  request: jsonRequestBody(
    z
      .object({
        mobile_number: MobileNumberSchema,
        name: NameSchema.optional(),
        email: EmailSchema.optional(),
        password: NewPasswordSchema.optional(),
      })
      .strict()
      .openapi("SignupRequest"),
  ),
  responses: {
    201: jsonContent(SignupResponseSchema, "The account was created"),
    ...errorResponses(400, 409, 413, 415, 429, 503),
  },
});

export const login = createRoute({
  method: "post",
  path: "/auth/login",
  operationId: "logIn",
  tags: ["Auth"],
  summary: "Log in with a password",
  description:
    "Limits: 10 attempts per number and client network per 15 minutes; networks that have not proved the number share 20 per hour per number (the networks you proved it from are exempt, so a stranger cannot lock you out); 100 per client IP (IPv6: per /64) per 15 minutes (429 + Retry-After).",
  request: jsonRequestBody(
    z
      .object({ mobile_number: MobileNumberSchema, password: GivenPasswordSchema })
      .strict()
      .openapi("LoginRequest"),
  ),
  responses: {
    200: jsonContent(SessionSchema, "A new session"),
    ...errorResponses(400, [401, "invalid_credentials"], 413, 415, 429, 503),
  },
});

export const resetPasswordRoute = createRoute({
  method: "post",
  path: "/auth/reset-password",
  operationId: "resetPassword",
  tags: ["Auth"],
  summary: "Set a new password with a reset code",
  description:
    "Revokes every session of the user; log in again afterwards. Shares verify-otp's per-IP limit on codes tried.",
  request: jsonRequestBody(
    z
      .object({
        mobile_number: MobileNumberSchema,
        otp: OtpSchema,
        challenge_id: ChallengeIdSchema.optional(),
        new_password: NewPasswordSchema,
      })
      .strict()
      .openapi("ResetPasswordRequest"),
  ),
  responses: {
    200: jsonContent(NoticeSchema, "The password was reset"),
    ...errorResponses(400, [401, "invalid_otp"], 413, 415, 429, 503),
  },
});

export const changePasswordRoute = createRoute({
  method: "post",
  path: "/auth/change-password",
  operationId: "changePassword",
  tags: ["Auth"],
  summary: "Set or change the caller's password",
  description:
    "current_password is required once a password is set; wrong guesses share the login budget (10 per 15 minutes per number and client network; 20 per hour per number from networks that have not proved it). Setting a first password needs otp, a fresh code from /auth/forgot-password (403 reauthentication_required without it): a bearer token alone never sets a password. Every other session is revoked; the response carries a fresh token pair for this one.",
  security: bearerSecurity,
  // The service awaits the session check together with its first read.
  middleware: [requireAuthDeferred] as const,
  request: jsonRequestBody(
    z
      .object({
        current_password: GivenPasswordSchema.optional(),
        otp: OtpSchema.optional().openapi({
          description: "A reset code from /auth/forgot-password; required to set a first password.",
        }),
        challenge_id: ChallengeIdSchema.optional(),
        new_password: NewPasswordSchema,
      })
      .strict()
      .openapi("ChangePasswordRequest"),
  ),
  responses: {
    200: jsonContent(PasswordChangedSchema, "The password was changed"),
    ...errorResponses(
      400,
      [401, "unauthorized", "invalid_credentials", "invalid_otp"],
      [403, "reauthentication_required"],
      413,
      415,
      429,
      503,
    ),
  },
});
