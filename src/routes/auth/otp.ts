import { createRoute, z } from "@hono/zod-openapi";
import { errorResponses, jsonContent } from "../router";
import {
  ChallengeIdSchema,
  jsonRequestBody,
  MobileNumberSchema,
  MobileOnlySchema,
  OtpSchema,
  OtpSentSchema,
  SessionSchema,
  SignupTokenSchema,
} from "./schemas";

export const sendOtp = createRoute({
  method: "post",
  path: "/auth/send-otp",
  operationId: "sendOtp",
  tags: ["Auth"],
  summary: "Send a login code to a registered number",
  description:
    "Limits: one code per 30 s and 5 per hour per number and client network (IPv6: /64), so a stranger's sends never use up yours; networks that have not yet proved the number (no code or password succeeded from them in 90 days) share 10 codes a day per number, so strangers cannot flood it or use up your sends; 20 per hour per number from all networks; 20 per hour per client IP (429 + Retry-After). Each code keeps its own challenge_id; a new one becomes the code your network's guesses without a challenge_id are tried against, and earlier ones stay usable with theirs. Keep challenge_id and send it back with the code. An unknown number is 404 user_not_found.",
  request: jsonRequestBody(MobileOnlySchema.openapi("SendOtpRequest")),
  responses: {
    200: jsonContent(OtpSentSchema, "A code was issued, valid for expires_in seconds"),
    ...errorResponses(400, [404, "user_not_found"], 413, 415, 429, 503),
  },
});

export const verifyOtp = createRoute({
  method: "post",
  path: "/auth/verify-otp",
  operationId: "verifyOtp",
  tags: ["Auth"],
  summary: "Exchange a login code for a session",
  description:
    "A code works once, for 5 minutes, and dies after 5 wrong attempts (details.attempts_left on 401); only the client holding its challenge_id, or one on the network it was sent to, can try it. 100 wrong codes in a row from networks that have not proved the number lock such networks' guesses WITHOUT the challenge_id for 24 h (429); guesses with it, and networks that proved the number, are never locked. Codes tried per client IP (IPv6: per /64), login and reset together: 100 per 15 minutes, checked before the code is (429 + Retry-After; the refused guess is not evaluated and does not count). signup_token keeps a signup password (see signup).",
  request: jsonRequestBody(
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

export const forgotPassword = createRoute({
  method: "post",
  path: "/auth/forgot-password",
  operationId: "forgotPassword",
  tags: ["Auth"],
  summary: "Send a password-reset code",
  description:
    "Same limits as send-otp. Answers the same way whether or not the number is registered; reset codes never work for login and vice versa.",
  request: jsonRequestBody(MobileOnlySchema.openapi("ForgotPasswordRequest")),
  responses: {
    200: jsonContent(OtpSentSchema, "If the number is registered, a reset code was issued"),
    ...errorResponses(400, 413, 415, 429, 503),
  },
});
