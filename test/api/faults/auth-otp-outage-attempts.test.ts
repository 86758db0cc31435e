// Switches the GLOBAL database fault, so it lives under faults/ and runs alone. A right code whose
// request then meets a database outage (the user lookup fails: 503) is put back, so the owner's
// retry works. It used to come back with 0 attempts spent: a stranger guessing at the code (with
// its challenge id) got 5 fresh guesses every time the owner's request met an outage, which an
// attacker who can provoke outages, or one who waits for them, could repeat. Tested from the
// stranger's side: the guesses it spent stay spent across the owner's 503.
import { afterEach, describe, expect, it } from "vitest";
import { type ApiResponse, call, control, uniqueClientIp } from "../../support/api.ts";
import { signUp } from "../../support/session.ts";

const database = (mode: "down" | "none") => control("neon/fault", { mode });

afterEach(async () => {
  await database("none");
});

/** Sends `request` while the database is unreachable, always switching it back. */
async function whileDatabaseDown(request: () => Promise<ApiResponse>): Promise<ApiResponse> {
  expect((await database("down")).status).toBe(200);
  try {
    return await request();
  } finally {
    await database("none");
  }
}

const from = (ip: string) => ({ "cf-connecting-ip": ip });
const wrongCode = (code: string) => String((Number(code) + 1) % 1e6).padStart(6, "0");

/**
 * A code for `mobile_number` sent to the owner at `ownerIp` (`path`: send-otp or
 * forgot-password), the owner's and a stranger's attempt at it through `attemptPath`; the
 * stranger holds the challenge id (a shared NAT, a leaked link), so its guesses reach the code.
 */
async function codeUnderAttack(path: string, attemptPath: string, extra: object = {}) {
  const mobile_number = await signUp();
  const ownerIp = uniqueClientIp();
  const strangerIp = uniqueClientIp();
  const sent = await call("POST", path, { body: { mobile_number }, headers: from(ownerIp) });
  expect(sent.status, sent.text).toBe(200);
  const attempt = (otp: string, ip: string) => () =>
    call("POST", attemptPath, {
      body: { mobile_number, otp, challenge_id: sent.body.challenge_id, ...extra },
      headers: from(ip),
    });
  return {
    owner: attempt(sent.body.otp, ownerIp),
    stranger: attempt(wrongCode(sent.body.otp), strangerIp),
  };
}

/** The stranger spends 3 of the code's 5 attempts; the owner's right code then meets the outage. */
async function strangerGuessesThenOwnerMeetsOutage(
  code: Awaited<ReturnType<typeof codeUnderAttack>>,
) {
  for (const left of [4, 3, 2]) {
    const guess = await code.stranger();
    expect(guess.status, guess.text).toBe(401);
    expect(guess.body.error.details).toEqual({ attempts_left: left });
  }
  const failed = await whileDatabaseDown(code.owner);
  expect(failed.status, failed.text).toBe(503);
  expect(failed.body.error.code).toBe("dependency_unavailable");
}

describe("a code put back after a database outage keeps the attempts spent on it", () => {
  it("verify-otp: the stranger's next guess is its 4th, and the owner's retry logs in", async () => {
    const code = await codeUnderAttack("/auth/send-otp", "/auth/verify-otp");
    await strangerGuessesThenOwnerMeetsOutage(code);

    const guess = await code.stranger();
    expect(guess.status, guess.text).toBe(401);
    expect(guess.body.error.details).toEqual({ attempts_left: 1 });
    const retried = await code.owner();
    expect(retried.status, retried.text).toBe(200);
  });

  it("reset-password: the stranger's last guesses kill the code, so the outage gave it none", async () => {
    const code = await codeUnderAttack("/auth/forgot-password", "/auth/reset-password", {
      new_password: "a new password 1",
    });
    await strangerGuessesThenOwnerMeetsOutage(code);

    const fourth = await code.stranger();
    expect(fourth.body.error.details).toEqual({ attempts_left: 1 });
    const fifth = await code.stranger();
    expect(fifth.body.error.details).toEqual({ attempts_left: 0 });
    // Five guesses in all: the code is dead, the owner's right code with it (a new one is needed).
    const sixth = await code.stranger();
    expect(sixth.body.error.details).toEqual({ attempts_left: 0 });
    const owner = await code.owner();
    expect(owner.status, owner.text).toBe(401);
    expect(owner.body.error.code).toBe("invalid_otp");
  });
});
