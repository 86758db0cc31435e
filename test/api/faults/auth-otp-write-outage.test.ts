// Switches the GLOBAL database fault, so it lives under faults/ and runs alone. reset-password and
// change-password's `otp` path use the code in Redis, then write the password (one batch). When
// that write met a database outage (503), the code stayed used: the client's retry of the 503
// met 401 invalid_otp and had to ask for a new code (verify-otp had the same bug, soak finding
// 9). The code now goes back by its consume's token, keeping the attempts spent on it, so a
// stranger guessing at it (with its challenge id) gains no guesses from the outage.
//
// The owner's failing request is made through the service, whose database switches the local
// Neon down for exactly that write (the real driver meets the dropped connection, as the Worker
// would, and the route answers such errors 503); every other request goes to the Worker.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { createDatabase, type Database } from "../../../src/db/client.ts";
import { isDependencyFailure } from "../../../src/errors/dependency.ts";
import { systemClock } from "../../../src/lib/clock.ts";
import { createRedis } from "../../../src/lib/redis.ts";
import { createAccessTokens } from "../../../src/lib/tokens.ts";
import { changePassword, resetPassword } from "../../../src/services/auth/accounts.ts";
import type { AuthDeps } from "../../../src/services/auth/deps.ts";
import { call, cloudUrl, control, testEnv, uniqueClientIp } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { authServiceDeps } from "../auth-support.ts";

const database = (mode: "down" | "none") => control("neon/fault", { mode });

afterEach(async () => {
  await database("none");
});

let redis: ReturnType<typeof createRedis>;
let db: Database;
const tokens = createAccessTokens(testEnv.JWT_SECRET as string, 900);
beforeAll(() => {
  redis = createRedis(`${cloudUrl}/redis`, testEnv.UPSTASH_REDIS_REST_TOKEN as string);
  db = createDatabase(testEnv.DATABASE_URL as string, testEnv.NEON_FETCH_ENDPOINT);
});

/** The Worker's auth dependencies, over the same local cloud and secrets. */
function deps(database: Database): AuthDeps {
  return authServiceDeps({ db: database, redis, clock: systemClock, tokens });
}

/**
 * The database, except that its first `batch` (the password write, the only batch on these
 * paths) runs while the local Neon is down: the driver's request fails as against an
 * unreachable database. Counts the batches that met the outage.
 */
function writeMeetsOutage(): { db: Database; failedWrites: () => number } {
  let failed = 0;
  const refused = async () => (await control("neon/stats")).body.refused as number;
  const proxy = new Proxy(db, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== "function") return value;
      if (prop !== "batch" || failed > 0) return value.bind(target);
      return async (...args: unknown[]) => {
        failed++;
        const refusedBefore = await refused();
        expect((await database("down")).status).toBe(200);
        try {
          return await value.apply(target, args);
        } finally {
          await database("none");
          // The write reached the local Neon and was refused there (not failed on our side).
          expect(await refused()).toBe(refusedBefore + 1);
        }
      };
    },
  });
  return { db: proxy, failedWrites: () => failed };
}

/** Runs `request` and answers what it threw: it must throw what the route answers 503. */
async function outageOf(request: Promise<unknown>): Promise<void> {
  const err = await request.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Error);
  expect(isDependencyFailure(err as Error), String(err)).toBe(true);
}

const from = (ip: string) => ({ "cf-connecting-ip": ip });
const wrongCode = (code: string) => String((Number(code) + 1) % 1e6).padStart(6, "0");
const login = (mobile_number: string, password: string) =>
  call("POST", "/auth/login", { body: { mobile_number, password } });

/**
 * A reset code sent to the owner at `ownerIp`, and a stranger holding its challenge id (a shared
 * NAT, a leaked link) who spends 3 of its 5 attempts through reset-password.
 */
async function resetCodeUnderAttack(mobile_number: string, ownerIp: string) {
  const sent = await call("POST", "/auth/forgot-password", {
    body: { mobile_number },
    headers: from(ownerIp),
  });
  expect(sent.status, sent.text).toBe(200);
  const code = { otp: sent.body.otp as string, challengeId: sent.body.challenge_id as string };
  const strangerIp = uniqueClientIp();
  const strangerGuesses = () =>
    call("POST", "/auth/reset-password", {
      body: {
        mobile_number,
        otp: wrongCode(code.otp),
        challenge_id: code.challengeId,
        new_password: "the stranger's password",
      },
      headers: from(strangerIp),
    });
  for (const left of [4, 3, 2]) {
    const guess = await strangerGuesses();
    expect(guess.status, guess.text).toBe(401);
    expect(guess.body.error.details).toEqual({ attempts_left: left });
  }
  return { ...code, strangerGuesses };
}

/** The stranger's next guess after the outage is its 4th: the outage gave it nothing. */
async function expectFourthGuess(strangerGuesses: () => ReturnType<typeof call>) {
  const fourth = await strangerGuesses();
  expect(fourth.status, fourth.text).toBe(401);
  expect(fourth.body.error.details).toEqual({ attempts_left: 1 });
}

/** The code was used once it worked: a reset with it is refused as an invalid code. */
async function expectCodeUsed(
  mobile_number: string,
  code: { otp: string; challengeId: string },
  ip: string,
) {
  const again = await call("POST", "/auth/reset-password", {
    body: {
      mobile_number,
      otp: code.otp,
      challenge_id: code.challengeId,
      new_password: "x".repeat(12),
    },
    headers: from(ip),
  });
  expect(again.status, again.text).toBe(401);
  expect(again.body.error.code).toBe("invalid_otp");
}

describe("a password write that fails on the database after the code was used", () => {
  it("reset-password: the code goes back with its spent attempts; the retry of the 503 resets with it", async () => {
    const s = await createSession({ password: "the old password" });
    const mobile_number = s.user.mobile_number;
    const ownerIp = uniqueClientIp();
    const code = await resetCodeUnderAttack(mobile_number, ownerIp);
    const owner = {
      mobileNumber: mobile_number,
      code: code.otp,
      newPassword: "the new password 1",
      clientIp: ownerIp,
      challengeId: code.challengeId,
    };

    const outage = writeMeetsOutage();
    await outageOf(resetPassword(deps(outage.db), owner));
    expect(outage.failedWrites()).toBe(1);
    // Nothing was written: the old password and session still work.
    expect((await login(mobile_number, "the old password")).status).toBe(200);

    await expectFourthGuess(code.strangerGuesses);
    const retried = await call("POST", "/auth/reset-password", {
      body: {
        mobile_number,
        otp: code.otp,
        challenge_id: code.challengeId,
        new_password: owner.newPassword,
      },
      headers: from(ownerIp),
    });
    expect(retried.status, retried.text).toBe(200);
    expect((await login(mobile_number, owner.newPassword)).status).toBe(200);
    expect((await call("GET", "/user/me", { token: s.token })).status).toBe(401);
    await expectCodeUsed(mobile_number, code, ownerIp);
  });

  it("change-password with otp: the code goes back with its spent attempts; the retry of the 503 sets the first password", async () => {
    const s = await createSession();
    const mobile_number = s.user.mobile_number;
    const ownerIp = uniqueClientIp();
    const code = await resetCodeUnderAttack(mobile_number, ownerIp);
    const claims = await tokens.verify(s.token, new Date());
    const newPassword = "a first password 1";

    const outage = writeMeetsOutage();
    await outageOf(
      changePassword(deps(outage.db), {
        userId: claims.userId,
        tokenIssuedAt: claims.issuedAt,
        ...(claims.numberTag !== undefined ? { numberTag: claims.numberTag } : {}),
        otp: code.otp,
        challengeId: code.challengeId,
        newPassword,
        clientIp: ownerIp,
        sessionLive: Promise.resolve(),
      }),
    );
    expect(outage.failedWrites()).toBe(1);
    // Nothing was written: still no password, and the session stands.
    expect((await login(mobile_number, newPassword)).status).toBe(401);
    expect((await call("GET", "/user/me", { token: s.token })).status).toBe(200);

    await expectFourthGuess(code.strangerGuesses);
    const change = () =>
      call("POST", "/auth/change-password", {
        token: s.token,
        body: { otp: code.otp, challenge_id: code.challengeId, new_password: newPassword },
        headers: from(ownerIp),
      });
    const retried = await change();
    expect(retried.status, retried.text).toBe(200);
    expect((await login(mobile_number, newPassword)).status).toBe(200);
    await expectCodeUsed(mobile_number, code, ownerIp);
  });
});
