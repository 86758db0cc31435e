import type { ServiceConfig } from "../../config";
import type { Database } from "../../db/client";
import type { Clock } from "../../lib/clock";
import type { OtpStore } from "../../lib/otp";
import type { OtpDelivery } from "../../lib/otp-delivery";
import { createRateLimiter, type RateLimiter } from "../../lib/rate-limit";
import type { RedisClient } from "../../lib/redis";
import type { AccessTokens } from "../../lib/tokens";
import type { Logger } from "../../log";

/** Send and login limits (project choices, see docs/adr/0002-password-hashing.md). */
export const AUTH_LIMITS = {
  /** Minimum gap between two codes for one number and purpose. */
  otpCooldownSeconds: 30,
  /**
   * The send windows below (per number and network, per number, per client IP) are exact
   * sliding logs of this length, taken together by one script under the request's token
   * (`OtpStore.takeSendWindows`), so a send that fails gives its take back.
   */
  otpSendWindowSeconds: 3600,
  /** Codes per (number, purpose, client network) per sliding hour. */
  otpPerNumberPerHour: 5,
  /**
   * Codes per number and purpose per sliding hour from all networks together: the SMS spend
   * ceiling. Strangers alone cannot reach it (they share `otpStrangerSendsPerDay`).
   */
  otpPerNumberAllPerHour: 20,
  /**
   * How long a network stays known for a number after it last proved it (a right code, or a
   * password login, from it). Known networks are exempt from the strangers' ceilings below.
   */
  knownNetworkTtlSeconds: 90 * 24 * 3600,
  /**
   * Codes per number and purpose per fixed day from all UNKNOWN networks together: bounds the
   * guesses strangers get at a number's codes to 5 x 10 a day per purpose however many networks
   * (IPv6 /64s) they hold, and the SMS they can make the owner receive.
   */
  otpStrangerSendsPerDay: 10,
  /** Password attempts per number per fixed hour from all unknown networks together. */
  loginStrangerPerHour: 20,
  /** Codes requested per client IP per sliding hour (all numbers together). */
  otpPerIpPerHour: 20,
  /**
   * Signups per client IP per sliding hour. Equal to the per-IP code budget: an account needs a
   * code to be used, so no legitimate flow is refused here that send-otp would not refuse.
   */
  signupPerIpPerHour: 20,
  /**
   * Password attempts per (number, client network) per sliding 15 minutes (login, and
   * change-password's current_password).
   */
  loginPerNumberPer15Min: 10,
  /**
   * Password logins per client IP (IPv6: per /64) per sliding 15 minutes, across numbers: one
   * client trying a few common passwords on many numbers meets this, not the per-number limit.
   */
  loginPerIpPer15Min: 100,
  /**
   * Codes tried (login and reset) per client IP per fixed 15 minutes, across numbers: bounds
   * guessing at many numbers' codes from one client. Counted inside the consume script, before
   * the guess is evaluated (a refused guess neither counts nor reveals anything).
   */
  verifyPerIpPer15Min: 100,
} as const;

export interface AuthLimiters {
  signupPerIp: RateLimiter;
  loginPerNumber: RateLimiter;
  loginPerIp: RateLimiter;
}

/** The slice of the service context the auth services need; tests build it with a fixed clock. */
export interface AuthDeps {
  db: Database;
  redis: RedisClient;
  clock: Clock;
  tokens: AccessTokens;
  otpStore: OtpStore;
  otpDelivery: OtpDelivery;
  limiters: AuthLimiters;
  config: Pick<
    ServiceConfig,
    "otpSecret" | "refreshTokenTtlSeconds" | "refreshFamilyMaxAgeSeconds"
  >;
  log: Logger;
  /**
   * Work that may finish after the response (ctx.waitUntil in the Worker); without it (tests
   * calling services directly) such work is awaited before the answer.
   */
  waitUntil?: (p: Promise<unknown>) => void;
}

export function createAuthLimiters(redis: RedisClient): AuthLimiters {
  const sliding = (prefix: string, tokens: number, window: "1 h" | "15 m") =>
    createRateLimiter({ redis, prefix, algorithm: "sliding", tokens, window });
  return {
    signupPerIp: sliding("rl:signup:ip", AUTH_LIMITS.signupPerIpPerHour, "1 h"),
    loginPerNumber: sliding("rl:login:number", AUTH_LIMITS.loginPerNumberPer15Min, "15 m"),
    loginPerIp: sliding("rl:login:ip", AUTH_LIMITS.loginPerIpPer15Min, "15 m"),
  };
}
