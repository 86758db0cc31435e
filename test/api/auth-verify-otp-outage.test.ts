// The chaos soak's finding 9 (docs/reliability.md): verify-otp used the code in Redis, then
// the database failed while starting the session (503); only a failed user lookup put the code
// back, so the client's retry of the 503 met 401 invalid_otp and the user could not log in.
import { beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../src/db/client.ts";
import { systemClock } from "../../src/lib/clock.ts";
import { createOtpStore } from "../../src/lib/otp.ts";
import { createRedis } from "../../src/lib/redis.ts";
import { sendLoginCode, signUp, verifyLoginCode } from "../../src/services/auth/accounts.ts";
import type { AuthDeps } from "../../src/services/auth/deps.ts";
import { cloudUrl, testEnv, uniqueClientIp, uniqueMobileNumber } from "../support/api.ts";
import { authServiceDeps } from "./auth-support.ts";

let redis: ReturnType<typeof createRedis>;
let db: Database;
beforeAll(() => {
  redis = createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
  db = createDatabase(testEnv.DATABASE_URL as string, testEnv.NEON_FETCH_ENDPOINT);
});

function deps(database: Database = db): AuthDeps {
  return authServiceDeps({ db: database, redis, clock: systemClock });
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

// An outage must not hand out fresh guesses: the code put back after the database failed used to
// come back with 0 attempts spent, so whoever was guessing at it (a stranger holding its challenge
// id) got 5 more each time the owner's login met an outage.
describe("verify-otp when the database fails after the code was used, with guesses spent on it", () => {
  it("puts the code back with the stranger's spent attempts: the outage gives no fresh guesses", async () => {
    const mobileNumber = uniqueMobileNumber();
    const ownerIp = uniqueClientIp();
    await signUp(deps(), { mobileNumber, clientIp: ownerIp });
    const sent = await sendLoginCode(deps(), { mobileNumber, clientIp: ownerIp });
    const owner = {
      mobileNumber,
      code: sent.otp as string,
      clientIp: ownerIp,
      challengeId: sent.challengeId,
    };
    // A second client with the code's challenge id (it reaches the code from any network).
    const stranger = {
      ...owner,
      code: String((Number(owner.code) + 1) % 1e6).padStart(6, "0"),
      clientIp: uniqueClientIp(),
    };
    for (const left of [4, 3, 2]) {
      await expect(verifyLoginCode(deps(), stranger)).rejects.toMatchObject({
        code: "invalid_otp",
        details: { attempts_left: left },
      });
    }

    // The owner's right code meets the outage (the proof's batch fails: 503); the code goes back.
    await expect(verifyLoginCode(deps(batchFailingOnce()), owner)).rejects.toThrow(
      /Network connection lost/,
    );

    // Still 3 spent: the stranger's next wrong guess is its 4th (1 left), not a fresh first (4).
    await expect(verifyLoginCode(deps(), stranger)).rejects.toMatchObject({
      code: "invalid_otp",
      details: { attempts_left: 1 },
    });
    // And the owner's retry of the 503 still logs in with it.
    await expect(verifyLoginCode(deps(), owner)).resolves.toMatchObject({
      token: expect.any(String),
    });
  });
});

// The load test's finding (`npm run load -- --self-host --users 200`): the consume passed the 2 s
// Redis deadline but Redis ran it, so the retry of the 503 met 401 invalid_otp. These run the
// consume by hand around a lost answer: before it is lost (it ran), or after the give-back.
describe("verify-otp when the code's consume loses its answer", () => {
  const timeout = () => Promise.reject(new Error("TimeoutError: the operation timed out"));

  async function loginCode() {
    const mobileNumber = uniqueMobileNumber();
    const clientIp = uniqueClientIp();
    await signUp(deps(), { mobileNumber, clientIp });
    const sent = await sendLoginCode(deps(), { mobileNumber, clientIp });
    return { mobileNumber, clientIp, code: sent.otp as string, challengeId: sent.challengeId };
  }

  /** Deps whose consume runs in Redis and then loses its answer (Redis ran it past the deadline). */
  function ranThenLost(): AuthDeps {
    const store = createOtpStore(redis);
    return {
      ...deps(),
      otpStore: {
        ...store,
        consume: async (i) => {
          await store.consume(i);
          return timeout();
        },
      },
    };
  }

  it("puts back a right code whose consume ran: the retry logs in, once", async () => {
    const attempt = await loginCode();
    await expect(verifyLoginCode(ranThenLost(), attempt)).rejects.toThrow(/timed out/);
    await expect(verifyLoginCode(deps(), attempt)).resolves.toMatchObject({
      token: expect.any(String),
    });
    await expect(verifyLoginCode(deps(), attempt)).rejects.toMatchObject({ code: "invalid_otp" });
  });

  it("stops a consume Redis runs after the give-back: the retry logs in, the late run uses nothing", async () => {
    const attempt = await loginCode();
    const store = createOtpStore(redis);
    const held: (() => Promise<unknown>)[] = [];
    const late: AuthDeps = {
      ...deps(),
      otpStore: {
        ...store,
        consume: (i) => {
          held.push(() => store.consume(i).catch((err: Error) => err.message));
          return timeout();
        },
      },
    };
    await expect(verifyLoginCode(late, attempt)).rejects.toThrow(/timed out/);
    const [lateRun] = await Promise.all(held.map((run) => run()));
    expect(lateRun).toMatch(/given back before it ran/);
    await expect(verifyLoginCode(deps(), attempt)).resolves.toMatchObject({
      token: expect.any(String),
    });
  });

  it("gives a wrong guess whose answer was lost nothing back: its attempt stays spent", async () => {
    const attempt = await loginCode();
    const wrong = { ...attempt, code: String((Number(attempt.code) + 1) % 1e6).padStart(6, "0") };
    await expect(verifyLoginCode(ranThenLost(), wrong)).rejects.toThrow(/timed out/);
    await expect(verifyLoginCode(deps(), wrong)).rejects.toMatchObject({
      code: "invalid_otp",
      details: { attempts_left: 3 },
    });
  });
});
