import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../../context";
import { clientLimitKey } from "../../lib/client-ip";
import { CHALLENGE_ID_PATTERN } from "../../lib/otp";
import { passwordProblem } from "../../lib/passwords";
import {
  MOBILE_NUMBER_MAX_INPUT,
  MOBILE_NUMBER_RULE,
  normalizeMobileNumber,
} from "../../lib/phone";
import type { Session } from "../../services/auth/accounts";
import type { SentCode } from "../../services/auth/otp";
import type { TokenPair } from "../../services/auth/sessions";
import { toUserJson, UserSchema } from "../shared/schemas";

// ---- request fields -------------------------------------------------------------------------

/** Accepts spaces, dashes and parentheses; yields E.164 or fails validation with the rule. */
export const MobileNumberSchema = z
  .string()
  .max(MOBILE_NUMBER_MAX_INPUT)
  .transform((value, ctx) => {
    const normalized = normalizeMobileNumber(value);
    if (normalized === null) {
      ctx.addIssue({ code: "custom", message: MOBILE_NUMBER_RULE });
      return z.NEVER;
    }
    return normalized;
  })
  .openapi({ type: "string", example: "+1 (555) 010-0000", description: MOBILE_NUMBER_RULE });

/** A new password: 8–128 characters after NFKC normalisation, never truncated. */
export const NewPasswordSchema = z
  .string()
  .max(1024)
  .superRefine((value, ctx) => {
    const problem = passwordProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({ minLength: 8, maxLength: 128, example: "correct horse battery staple" });

/** A password being checked: no policy (that would hint at it), only a sane size bound. */
export const GivenPasswordSchema = z
  .string()
  .min(1)
  .max(1024)
  .openapi({ example: "correct horse battery staple" });

export const OtpSchema = z
  .string()
  .regex(/^[0-9]{6}$/, "The code is 6 digits.")
  .openapi({ example: "012345" });

/** The challenge id send-otp / forgot-password returned with the code (optional). */
export const ChallengeIdSchema = z
  .string()
  .regex(CHALLENGE_ID_PATTERN, "Send the challenge_id exactly as send-otp returned it.")
  .openapi({
    example: "3f9a1c0d5e7b2a64.q3Xc9vN0bLm1sT8yR2wZkA",
    description: "The challenge_id returned with the code (recommended; optional).",
  });

// ---- responses ------------------------------------------------------------------------------

export const OtpSentSchema = z
  .object({
    otp: z.string().optional().openapi({
      example: "012345",
      description:
        "Only when the deployment echoes codes (OTP_DELIVERY=response); never in production.",
    }),
    expires_in: z.number().int().openapi({ example: 300 }),
    challenge_id: z.string().openapi({
      example: "3f9a1c0d5e7b2a64.q3Xc9vN0bLm1sT8yR2wZkA",
      description:
        "Names this code. Send it back with the code (verify-otp, reset-password, change-password): then only you can use up the code's attempts, and no one else's wrong guesses can lock you out. Without it the code issued to your network is used.",
    }),
    message: z.string().openapi({ example: "A login code was sent." }),
  })
  .openapi("OtpSent");

export const ACCESS_TOKEN_EXAMPLE =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6ImFjY2VzcyJ9.eyJzdWIiOiIwMTkzNmY0ZSJ9.c2lnbmF0dXJl";

/** The spec's `token`, and the same pair in OAuth 2.0's names (RFC 6749 §5.1) for its clients. */
export const TokenPairSchema = z
  .object({
    token: z.string().openapi({
      example: ACCESS_TOKEN_EXAMPLE,
      description: "The access token (send as `Authorization: Bearer <token>`).",
    }),
    access_token: z.string().openapi({
      example: ACCESS_TOKEN_EXAMPLE,
      description: "The same access token as `token`, under its OAuth 2.0 name.",
    }),
    token_type: z.literal("Bearer"),
    expires_in: z
      .number()
      .int()
      .openapi({ example: 900, description: "Seconds until the access token expires." }),
    refresh_token: z.string().openapi({
      example: "rt_01936f4e1c2d7b3a.kX9vQ2mZ8pL4rT6w",
      description:
        "Exchange at /auth/refresh for a new pair; works once (a retry after a lost answer aside: see /auth/refresh).",
    }),
  })
  .openapi("TokenPair");

export const SessionSchema = TokenPairSchema.extend({ user: UserSchema }).openapi("Session");
export const PasswordChangedSchema = SessionSchema.extend({
  message: z
    .string()
    .openapi({ example: "The password was changed; other sessions were signed out." }),
}).openapi("PasswordChanged");
// Not "Message": that name is the chat message schema, and a second one would replace it.
export const NoticeSchema = z
  .object({
    message: z
      .string()
      .openapi({ example: "The password was reset; every session was signed out." }),
  })
  .openapi("Notice");
export const SIGNUP_TOKEN_DESCRIPTION =
  "Only when a password was given at signup. The password stays pending (password login refuses it) until the number is proved by a code: send this token with the number's first verify-otp to keep it; a first verification without it drops the password.";
export const SignupTokenSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "The signup token is 64 hex characters.")
  .openapi({ example: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" });
export const SignupResponseSchema = z
  .object({
    user: UserSchema,
    signup_token: SignupTokenSchema.optional().openapi({ description: SIGNUP_TOKEN_DESCRIPTION }),
  })
  .openapi("SignupResponse");

export const tokenPairJson = (p: TokenPair) => ({
  token: p.token,
  access_token: p.token,
  token_type: "Bearer" as const,
  expires_in: p.expiresIn,
  refresh_token: p.refreshToken,
});
export const sessionJson = (s: Session) => ({ ...tokenPairJson(s), user: toUserJson(s.user) });
export const sentJson = (s: SentCode, message: string) => ({
  ...(s.otp !== undefined ? { otp: s.otp } : {}),
  expires_in: s.expiresIn,
  challenge_id: s.challengeId,
  message,
});

export const jsonRequestBody = <T extends z.ZodType>(schema: T) => ({
  body: { content: { "application/json": { schema } }, required: true },
});

/**
 * The client per-IP limits count: Cloudflare sets CF-Connecting-IP and strips a client's copy
 * (X-Forwarded-For is client-controlled); IPv6 clients count by their /64.
 */
export const clientIp = (c: Context<AppEnv>) =>
  clientLimitKey((c.req.header("cf-connecting-ip") ?? "unknown").slice(0, 64));

export const MobileOnlySchema = z.object({ mobile_number: MobileNumberSchema }).strict();
