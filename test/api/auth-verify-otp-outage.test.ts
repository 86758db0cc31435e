// The chaos soak's finding 9 (docs/reliability.md): verify-otp used the code in Redis, then
// the database failed while starting the session (503); only a failed user lookup put the code
// back, so the client's retry of the 503 met 401 invalid_otp and the user could not log in.
import { beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../src/db/client.ts";
import { systemClock } from "../../src/lib/clock.ts";
import { createOtpStore } from "../../src/lib/otp.ts";
import { responseDelivery } from "../../src/lib/otp-delivery.ts";
import { createRedis } from "../../src/lib/redis.ts";
import { createAccessTokens } from "../../src/lib/tokens.ts";
import { rootLogger } from "../../src/log.ts";
import { sendLoginCode, signUp, verifyLoginCode } from "../../src/services/auth/accounts.ts";
import { type AuthDeps, createAuthLimiters } from "../../src/services/auth/deps.ts";
import { cloudUrl, testEnv, uniqueClientIp, uniqueMobileNumber } from "../support/api.ts";

let redis: ReturnType<typeof createRedis>;
let db: Database;
beforeAll(() => {
  redis = createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
  db = createDatabase(testEnv.DATABASE_URL as string, testEnv.NEON_FETCH_ENDPOINT);
});

function deps(database: Database = db): AuthDeps {
  return {
    db: database,
    redis,
    clock: systemClock,
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
  };
}

/** The database, except that its next `batch` fails as Neon's driver does when it is down. */
function batchFailingOnce(): Database {
  let failed = false;
  return new Proxy(db, {
    get(target, prop, receiver) {
      if (prop === "batch" && !failed) {
        return () => {
          failed = true;
          return Promise.reject(
            new Error("Error connecting to database: Error: Network connection lost."),
          );
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}

describe("verify-otp when the database fails after the code was used", () => {
  it("puts the code back, so the retry of the 503 logs in with it", async () => {
    const mobileNumber = uniqueMobileNumber();
    const clientIp = uniqueClientIp();
    await signUp(deps(), { mobileNumber, clientIp });
    const sent = await sendLoginCode(deps(), { mobileNumber, clientIp });
    const attempt = {
      mobileNumber,
      code: sent.otp as string,
      clientIp,
      challengeId: sent.challengeId,
    };

    // The first proof of the number: its batch fails (the route answers 503).
    await expect(verifyLoginCode(deps(batchFailingOnce()), attempt)).rejects.toThrow(
      /Network connection lost/,
    );
    const session = await verifyLoginCode(deps(), attempt);
    expect(session.user.mobileVerifiedAt).not.toBeNull();
    expect(session.token).toEqual(expect.any(String));

    // Used once it worked: a third try is refused.
    await expect(verifyLoginCode(deps(), attempt)).rejects.toMatchObject({ code: "invalid_otp" });
  });
});
