// The auth services' dependencies as the Worker builds them, over this run's local cloud and
// secrets: for tests that call the services directly, replacing one part (a failing store, a
// database that goes down, another clock) through `overrides`.
import { createDatabase } from "../../src/db/client.ts";
import { fixedClock } from "../../src/lib/clock.ts";
import { createOtpStore } from "../../src/lib/otp.ts";
import { responseDelivery } from "../../src/lib/otp-delivery.ts";
import { createRedis } from "../../src/lib/redis.ts";
import { createAccessTokens } from "../../src/lib/tokens.ts";
import { rootLogger } from "../../src/log.ts";
import { type AuthDeps, createAuthLimiters } from "../../src/services/auth/deps.ts";
import { cloudUrl, testEnv } from "../support/api.ts";

/** The local cloud's Redis through the Worker's adapter. */
export function localRedis(): AuthDeps["redis"] {
  return createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
}

/**
 * The auth dependencies; the OTP store and the limiters are built on `overrides.redis` when it
 * is given. The clock is fixed (2030-01-01) unless overridden.
 */
export function authServiceDeps(overrides: Partial<AuthDeps> = {}): AuthDeps {
  const redis = overrides.redis ?? localRedis();
  return {
    db: createDatabase(testEnv.DATABASE_URL as string, testEnv.NEON_FETCH_ENDPOINT),
    redis,
    clock: fixedClock(new Date("2030-01-01T00:00:00.000Z")),
    tokens: createAccessTokens(testEnv.JWT_SECRET as string, 900),
    otpStore: createOtpStore(redis),
    otpDelivery: responseDelivery,
    limiters: createAuthLimiters(redis),
    config: {
      otpSecret: testEnv.OTP_SECRET as string,
      refreshTokenTtlSeconds: 3600,
      refreshFamilyMaxAgeSeconds: 7200,
    },
    log: rootLogger,
    ...overrides,
  };
}
