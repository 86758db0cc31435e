import { UnauthorizedError, ValidationError } from "../../errors";
import { liveSession, optionalCaller } from "../../middleware/auth";
import {
  changePassword,
  logInWithPassword,
  resetPassword,
  sendLoginCode,
  sendResetCode,
  signUp,
  verifyLoginCode,
} from "../../services/auth/accounts";
import { endSession, refreshSession } from "../../services/auth/sessions";
import { createRouter } from "../router";
import { toUserJson } from "../shared/schemas";
import { forgotPassword, sendOtp, verifyOtp } from "./otp";
import { changePasswordRoute, login, resetPasswordRoute, signup } from "./password";
import { clientIp, sentJson, sessionJson, tokenPairJson } from "./schemas";
import { logout, refresh } from "./session";

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
      ...(c.get("numberTag") !== undefined ? { numberTag: c.get("numberTag") } : {}),
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
