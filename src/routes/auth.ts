import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { AppEnv } from "../context";
import { UnauthorizedError, ValidationError } from "../errors";
import { clientLimitKey } from "../lib/client-ip";
import { CHALLENGE_ID_PATTERN } from "../lib/otp";
import { passwordProblem } from "../lib/passwords";
import { MOBILE_NUMBER_MAX_INPUT, MOBILE_NUMBER_RULE, normalizeMobileNumber } from "../lib/phone";
import {
  bearerSecurity,
  liveSession,
  optionalCaller,
  requireAuthDeferred,
} from "../middleware/auth";
import {
  changePassword,
  logInWithPassword,
  resetPassword,
  type Session,
  sendLoginCode,
  sendResetCode,
  signUp,
  verifyLoginCode,
} from "../services/auth/accounts";
import type { SentCode } from "../services/auth/otp";
import { endSession, refreshSession, type TokenPair } from "../services/auth/sessions";
import { createRouter, errorResponses, jsonContent } from "./router";
import { EmailSchema, NameSchema, toUserJson, UserSchema } from "./users";

// ---- request fields -------------------------------------------------------------------------

/** Accepts spaces, dashes and parentheses; yields E.164 or fails validation with the rule. */
const MobileNumberSchema = z
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
const NewPasswordSchema = z
  .string()
  .max(1024)
  .superRefine((value, ctx) => {
    const problem = passwordProblem(value);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .openapi({ minLength: 8, maxLength: 128, example: "correct horse battery staple" });

/** A password being checked: no policy (that would hint at it), only a sane size bound. */
const GivenPasswordSchema = z
  .string()
  .min(1)
  .max(1024)
  .openapi({ example: "correct horse battery staple" });

const OtpSchema = z
  .string()
  .regex(/^[0-9]{6}$/, "The code is 6 digits.")
  .openapi({ example: "012345" });

/** The challenge id send-otp / forgot-password returned with the code (optional). */
const ChallengeIdSchema = z
  .string()
  .regex(CHALLENGE_ID_PATTERN, "Send the challenge_id exactly as send-otp returned it.")
  .openapi({
    example: "3f9a1c0d5e7b2a64.q3Xc9vN0bLm1sT8yR2wZkA",
    description: "The challenge_id returned with the code (recommended; optional).",
  });

// ---- responses ------------------------------------------------------------------------------

const OtpSentSchema = z
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

const ACCESS_TOKEN_EXAMPLE =
  "eyJhbGciOiJIUzI1NiIsInR5cCI6ImFjY2VzcyJ9.eyJzdWIiOiIwMTkzNmY0ZSJ9.c2lnbmF0dXJl";

/** The spec's `token`, and the same pair in OAuth 2.0's names (RFC 6749 §5.1) for its clients. */
const TokenPairSchema = z
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
      description: "Exchange at /auth/refresh for a new pair; works once.",
    }),
  })
  .openapi("TokenPair");

const SessionSchema = TokenPairSchema.extend({ user: UserSchema }).openapi("Session");
const PasswordChangedSchema = SessionSchema.extend({
  message: z
    .string()
    .openapi({ example: "The password was changed; other sessions were signed out." }),
}).openapi("PasswordChanged");
// Not "Message": that name is the chat message schema, and a second one would replace it.
const MessageSchema = z
  .object({
    message: z
      .string()
      .openapi({ example: "The password was reset; every session was signed out." }),
  })
  .openapi("Notice");
const SIGNUP_TOKEN_DESCRIPTION =
  "Only when a password was given at signup. The password stays pending (password login refuses it) until the number is proved by a code: send this token with the number's first verify-otp to keep it; a first verification without it drops the password.";
const SignupTokenSchema = z
  .string()
  .regex(/^[0-9a-f]{64}$/, "The signup token is 64 hex characters.")
  .openapi({ example: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08" });
const SignupResponseSchema = z
  .object({
    user: UserSchema,
    signup_token: SignupTokenSchema.optional().openapi({ description: SIGNUP_TOKEN_DESCRIPTION }),
  })
  .openapi("SignupResponse");

const tokenPairJson = (p: TokenPair) => ({
  token: p.token,
  access_token: p.token,
  token_type: "Bearer" as const,
  expires_in: p.expiresIn,
  refresh_token: p.refreshToken,
});
const sessionJson = (s: Session) => ({ ...tokenPairJson(s), user: toUserJson(s.user) });
const sentJson = (s: SentCode, message: string) => ({
  ...(s.otp !== undefined ? { otp: s.otp } : {}),
  expires_in: s.expiresIn,
  challenge_id: s.challengeId,
  message,
});

const jsonBody = <T extends z.ZodType>(schema: T) => ({
  body: { content: { "application/json": { schema } }, required: true },
});

/**
 * The client per-IP limits count: Cloudflare sets CF-Connecting-IP and strips a client's copy
 * (X-Forwarded-For is client-controlled); IPv6 clients count by their /64.
 */
const clientIp = (c: Context<AppEnv>) =>
  clientLimitKey((c.req.header("cf-connecting-ip") ?? "unknown").slice(0, 64));

// ---- routes ---------------------------------------------------------------------------------

const signup = createRoute({
  method: "post",
  path: "/auth/signup",
  operationId: "signUp",
  tags: ["Auth"],
  summary: "Create an account for a mobile number",
  description:
    "Limit: 20 signups per hour per client IP, taken ones (409) included (429 + Retry-After). A password given here is pending: it works only after the number's first verify-otp carries the returned signup_token.",
  request: jsonBody(
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

const MobileOnlySchema = z.object({ mobile_number: MobileNumberSchema }).strict();

const sendOtp = createRoute({
  method: "post",
  path: "/auth/send-otp",
  operationId: "sendOtp",
  tags: ["Auth"],
  summary: "Send a login code to a registered number",
  description:
    "Limits: one code per 30 s and 5 per hour per number and client network (IPv6: /64), so a stranger's sends never use up yours; networks that have not yet proved the number (no code or password succeeded from them in 90 days) share 10 codes a day per number, so strangers cannot flood it or use up your sends; 20 per hour per number from all networks; 20 per hour per client IP (429 + Retry-After). Each code keeps its own challenge_id; a new one becomes the code your network's guesses without a challenge_id are tried against, and earlier ones stay usable with theirs. Keep challenge_id and send it back with the code. An unknown number is 404 user_not_found.",
  request: jsonBody(MobileOnlySchema.openapi("SendOtpRequest")),
  responses: {
    200: jsonContent(OtpSentSchema, "A code was issued, valid for expires_in seconds"),
    ...errorResponses(400, [404, "user_not_found"], 413, 415, 429, 503),
  },
});

const verifyOtp = createRoute({
  method: "post",
  path: "/auth/verify-otp",
  operationId: "verifyOtp",
  tags: ["Auth"],
  summary: "Exchange a login code for a session",
  description:
    "A code works once, for 5 minutes, and dies after 5 wrong attempts (details.attempts_left on 401); only the client holding its challenge_id, or one on the network it was sent to, can try it. 100 wrong codes in a row from networks that have not proved the number lock such networks' guesses WITHOUT the challenge_id for 24 h (429); guesses with it, and networks that proved the number, are never locked. Codes tried per client IP (IPv6: per /64), login and reset together: 100 per 15 minutes, checked before the code is (429 + Retry-After; the refused guess is not evaluated and does not count). signup_token keeps a signup password (see signup).",
  request: jsonBody(
    z
      .object({
        mobile_number: MobileNumberSchema,
        otp: OtpSchema,
        challenge_id: ChallengeIdSchema.optional(),
        signup_token: SignupTokenSchema.optional().openapi({
          description:
            "The signup response's token: keeps the signup password at the number's first verification (ignored afterwards).",
        }),
      })
      .strict()
      .openapi("VerifyOtpRequest"),
  ),
  responses: {
    200: jsonContent(SessionSchema, "A new session"),
    ...errorResponses(400, [401, "invalid_otp"], 413, 415, 429, 503),
  },
});

const login = createRoute({
  method: "post",
  path: "/auth/login",
  operationId: "logIn",
  tags: ["Auth"],
  summary: "Log in with a password",
  description:
    "Limits: 10 attempts per number and client network per 15 minutes; networks that have not proved the number share 20 per hour per number (the networks you proved it from are exempt, so a stranger cannot lock you out); 100 per client IP (IPv6: per /64) per 15 minutes (429 + Retry-After).",
  request: jsonBody(
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

const refresh = createRoute({
  method: "post",
  path: "/auth/refresh",
  operationId: "refreshSession",
  tags: ["Auth"],
  summary: "Rotate a refresh token into a new token pair",
  description:
    "The presented refresh token stops working. Presenting an already-rotated token revokes its whole family.",
  request: jsonBody(
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

const logout = createRoute({
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

const forgotPassword = createRoute({
  method: "post",
  path: "/auth/forgot-password",
  operationId: "forgotPassword",
  tags: ["Auth"],
  summary: "Send a password-reset code",
  description:
    "Same limits as send-otp. Answers the same way whether or not the number is registered; reset codes never work for login and vice versa.",
  request: jsonBody(MobileOnlySchema.openapi("ForgotPasswordRequest")),
  responses: {
    200: jsonContent(OtpSentSchema, "If the number is registered, a reset code was issued"),
    ...errorResponses(400, 413, 415, 429, 503),
  },
});

const resetPasswordRoute = createRoute({
  method: "post",
  path: "/auth/reset-password",
  operationId: "resetPassword",
  tags: ["Auth"],
  summary: "Set a new password with a reset code",
  description:
    "Revokes every session of the user; log in again afterwards. Shares verify-otp's per-IP limit on codes tried.",
  request: jsonBody(
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
    200: jsonContent(MessageSchema, "The password was reset"),
    ...errorResponses(400, [401, "invalid_otp"], 413, 415, 429, 503),
  },
});

const changePasswordRoute = createRoute({
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
  request: jsonBody(
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

/** Token and secret responses must not be stored by any cache (RFC 6749 §5.1). */
const NO_STORE = { "Cache-Control": "no-store" } as const;

export const authRoutes = createRouter()
  .openapi(signup, async (c) => {
    const body = c.req.valid("json");
    const { user, signupToken } = await signUp(c.get("ctx"), {
      mobileNumber: body.mobile_number,
      name: body.name ?? null,
      email: body.email ?? null,
      ...(body.password !== undefined ? { password: body.password } : {}),
      clientIp: clientIp(c),
    });
    return c.json(
      { user: toUserJson(user), ...(signupToken ? { signup_token: signupToken } : {}) },
      201,
      NO_STORE,
    );
  })
  .openapi(sendOtp, async (c) => {
    const { mobile_number } = c.req.valid("json");
    const sent = await sendLoginCode(c.get("ctx"), {
      mobileNumber: mobile_number,
      clientIp: clientIp(c),
    });
    return c.json(sentJson(sent, "A login code was sent."), 200, NO_STORE);
  })
  .openapi(verifyOtp, async (c) => {
    const body = c.req.valid("json");
    const session = await verifyLoginCode(c.get("ctx"), {
      mobileNumber: body.mobile_number,
      code: body.otp,
      clientIp: clientIp(c),
      ...(body.challenge_id !== undefined ? { challengeId: body.challenge_id } : {}),
      ...(body.signup_token !== undefined ? { signupToken: body.signup_token } : {}),
    });
    return c.json(sessionJson(session), 200, NO_STORE);
  })
  .openapi(login, async (c) => {
    const body = c.req.valid("json");
    const session = await logInWithPassword(c.get("ctx"), {
      mobileNumber: body.mobile_number,
      password: body.password,
      clientIp: clientIp(c),
    });
    return c.json(sessionJson(session), 200, NO_STORE);
  })
  .openapi(refresh, async (c) => {
    const pair = await refreshSession(c.get("ctx"), c.req.valid("json").refresh_token);
    return c.json(tokenPairJson(pair), 200, NO_STORE);
  })
  .openapi(logout, async (c) => {
    const body = (c.req.valid("json") ?? {}) as { refresh_token?: string };
    const caller = await optionalCaller(c);
    if (!caller && body.refresh_token === undefined) {
      // A bearer token that did not verify is a 401; no credential at all is a bad request.
      if (c.req.header("authorization") !== undefined) {
        throw new UnauthorizedError("The bearer token is invalid or expired.");
      }
      throw new ValidationError("Send refresh_token, or a bearer token.", [
        {
          path: "refresh_token",
          message: "Send refresh_token, or a bearer token.",
          location: "json",
        },
      ]);
    }
    await endSession(c.get("ctx"), {
      ...(caller ? { caller } : {}),
      ...(body.refresh_token !== undefined ? { refreshToken: body.refresh_token } : {}),
    });
    return c.body(null, 204);
  })
  .openapi(forgotPassword, async (c) => {
    const { mobile_number } = c.req.valid("json");
    const sent = await sendResetCode(c.get("ctx"), {
      mobileNumber: mobile_number,
      clientIp: clientIp(c),
    });
    return c.json(
      sentJson(sent, "If this number has an account, a password reset code was sent."),
      200,
      NO_STORE,
    );
  })
  .openapi(resetPasswordRoute, async (c) => {
    const body = c.req.valid("json");
    await resetPassword(c.get("ctx"), {
      mobileNumber: body.mobile_number,
      code: body.otp,
      newPassword: body.new_password,
      clientIp: clientIp(c),
      ...(body.challenge_id !== undefined ? { challengeId: body.challenge_id } : {}),
    });
    return c.json({ message: "The password was reset; every session was signed out." }, 200);
  })
  .openapi(changePasswordRoute, async (c) => {
    const body = c.req.valid("json");
    const session = await changePassword(c.get("ctx"), {
      userId: c.get("userId"),
      tokenIssuedAt: c.get("tokenIssuedAt"),
      ...(body.current_password !== undefined ? { currentPassword: body.current_password } : {}),
      ...(body.otp !== undefined ? { otp: body.otp } : {}),
      ...(body.challenge_id !== undefined ? { challengeId: body.challenge_id } : {}),
      newPassword: body.new_password,
      clientIp: clientIp(c),
      sessionLive: liveSession(c),
    });
    return c.json(
      {
        ...sessionJson(session),
        message: "The password was changed; other sessions were signed out.",
      },
      200,
      NO_STORE,
    );
  });
