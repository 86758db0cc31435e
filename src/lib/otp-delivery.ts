import type { Logger } from "../log";
import { maskMobileNumber } from "./phone";

export interface OtpMessage {
  mobileNumber: string;
  code: string;
  purpose: "login" | "password_reset";
  expiresInSeconds: number;
}

/**
 * How a code reaches its owner. A real SMS gateway implements this interface; `codeForResponse`
 * is returned only by the test/development delivery that echoes the code (the spec's mocked SMS).
 */
export interface OtpDelivery {
  /** True when `deliver` hands the code back for the HTTP response. */
  readonly echoesCode: boolean;
  deliver(message: OtpMessage): Promise<{ codeForResponse?: string }>;
}

/** `OTP_DELIVERY=response`: the code goes back in the HTTP response (refused in production by env.ts). */
export const responseDelivery: OtpDelivery = {
  echoesCode: true,
  async deliver(m) {
    return { codeForResponse: m.code };
  },
};

/**
 * `OTP_DELIVERY=log`: the response carries no code; one log line records that a code was sent,
 * without the code itself (logs are not a place for secrets). Stand-in until a gateway is wired.
 */
export function logDelivery(log: Logger): OtpDelivery {
  return {
    echoesCode: false,
    async deliver(m) {
      log.info("otp_issued", {
        mobile_number: maskMobileNumber(m.mobileNumber),
        purpose: m.purpose,
        expires_in: m.expiresInSeconds,
      });
      return {};
    },
  };
}

export function createOtpDelivery(mode: "response" | "log", log: Logger): OtpDelivery {
  return mode === "response" ? responseDelivery : logDelivery(log);
}
