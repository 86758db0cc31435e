// Known networks (issue 12 review, items 1-5; ADR 0008): a network that proved a number (a right
// code or a password login from it) is exempt from the ceilings that strangers share, so strangers
// holding any number of IPv6 /64s meet a per-number bound on sends and guesses without ever
// blocking or locking the owner; and the sessions of an unproved account are dead.
import { describe, expect, it } from "vitest";
import { call, uniqueMobileNumber } from "../support/api.ts";
import { createSession, signUp } from "../support/session.ts";
import { redis, sql } from "./chat-support.ts";

/** A fresh IPv6 /64 each call: free for an attacker, so every test uses many. */
function uniqueSlash64(): string {
  const [a = 0, b = 0, c = 0] = crypto.getRandomValues(new Uint16Array(3));
  return `2001:db8:${a.toString(16)}:${b.toString(16)}::${(c % 0xfff) + 1}`;
}
const from = (ip: string) => ({ "cf-connecting-ip": ip });
const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, "0");
const PASSWORD = "correct horse battery";

/** A signed-up number, not yet proved. */
const registered = () => signUp();
const send = (mobile_number: string, ip: string, path = "/auth/send-otp") =>
  call("POST", path, { body: { mobile_number }, headers: from(ip) });

/** The owner proves the number from `ip` with a login code (send-otp → verify-otp). */
async function proveByLoginCode(mobile_number: string, ip: string) {
  const sent = await send(mobile_number, ip);
  expect(sent.status).toBe(200);
  const ok = await call("POST", "/auth/verify-otp", {
    body: { mobile_number, otp: sent.body.otp },
    headers: from(ip),
  });
  expect(ok.status, ok.text).toBe(200);
  return ok.body as { token: string; refresh_token: string };
}

/** The owner proves the number from `ip` with a reset code (forgot → reset-password). */
async function proveByResetCode(mobile_number: string, ip: string) {
  const sent = await send(mobile_number, ip, "/auth/forgot-password");
  expect(sent.status).toBe(200);
  const ok = await call("POST", "/auth/reset-password", {
    body: { mobile_number, otp: sent.body.otp, new_password: PASSWORD },
    headers: from(ip),
  });
  expect(ok.status, ok.text).toBe(200);
}

/** Strangers, one /64 each, send until the shared ceiling refuses; answers how many got through. */
async function strangersSendUntilRefused(mobile_number: string, path: string) {
  let sent = 0;
  for (let i = 0; i < 15; i++) {
    const res = await send(mobile_number, uniqueSlash64(), path);
    if (res.status === 429) {
      expect(res.body.error.code).toBe("rate_limited");
      return sent;
    }
    expect(res.status, res.text).toBe(200);
    sent++;
  }
  return sent;
}

describe("strangers' sends share one ceiling per number and purpose", () => {
  it("login codes: 10 a day from unknown /64s, and the owner's known network still gets codes", async () => {
    const number = await registered();
    const owner = uniqueSlash64();
    await proveByResetCode(number, owner);
    // Without the ceiling each new /64 gets 5 codes an hour (5 guesses each): unbounded.
    expect(await strangersSendUntilRefused(number, "/auth/send-otp")).toBe(10);
    // The owner's network proved the number: not blocked, and its code works.
    const mine = await send(number, owner);
    expect(mine.status, mine.text).toBe(200);
    const ok = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: mine.body.otp },
      headers: from(owner),
    });
    expect(ok.status).toBe(200);
  });

  it("reset codes (a takeover) too, and the owner's reset still works", async () => {
    const number = await registered();
    const owner = uniqueSlash64();
    await proveByLoginCode(number, owner);
    expect(await strangersSendUntilRefused(number, "/auth/forgot-password")).toBe(10);
    await proveByResetCode(number, owner);
  });

  it("an unregistered number's reset answers the same (no registration oracle)", async () => {
    expect(await strangersSendUntilRefused(uniqueMobileNumber(), "/auth/forgot-password")).toBe(10);
  });
});

describe("a password login", () => {
  it("makes its network known: its sends pass the strangers' exhausted ceiling", async () => {
    const s = await createSession({ password: PASSWORD });
    const laptop = uniqueSlash64();
    expect(await strangersSendUntilRefused(s.mobile_number, "/auth/forgot-password")).toBe(10);
    // Unknown so far: the laptop meets the exhausted ceiling like any stranger.
    expect((await send(s.mobile_number, laptop, "/auth/forgot-password")).status).toBe(429);
    const login = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: PASSWORD },
      headers: from(laptop),
    });
    expect(login.status, login.text).toBe(200);
    expect((await send(s.mobile_number, laptop, "/auth/forgot-password")).status).toBe(200);
  });

  it("with a wrong password records nothing", async () => {
    const s = await createSession({ password: PASSWORD });
    expect(await strangersSendUntilRefused(s.mobile_number, "/auth/forgot-password")).toBe(10);
    const stranger = uniqueSlash64();
    const bad = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: "not the password" },
      headers: from(stranger),
    });
    expect(bad.status).toBe(401);
    expect((await send(s.mobile_number, stranger, "/auth/forgot-password")).status).toBe(429);
  });
});

describe("the wrong-code lock", () => {
  it("never locks a known network, even without the challenge id; strangers stay locked", async () => {
    const number = await registered();
    const owner = uniqueSlash64();
    await proveByResetCode(number, owner);
    // As if strangers had made 100 wrong guesses on their own codes.
    await redis("SET", `otp:v1:failures:${number}`, 100, "EX", 600);
    const stranger = uniqueSlash64();
    const theirs = await send(number, stranger);
    const locked = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: theirs.body.otp },
      headers: from(stranger),
    });
    expect(locked.status).toBe(429);
    const mine = await send(number, owner);
    const ok = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: mine.body.otp },
      headers: from(owner),
    });
    expect(ok.status, ok.text).toBe(200);
  });

  it("is not fed by a known network's own slips", async () => {
    const number = await registered();
    const owner = uniqueSlash64();
    await proveByResetCode(number, owner);
    await redis("SET", `otp:v1:failures:${number}`, 50, "EX", 600);
    const mine = await send(number, owner);
    const slip = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp: wrong(mine.body.otp) },
      headers: from(owner),
    });
    expect(slip.status).toBe(401);
    expect(await redis("GET", `otp:v1:failures:${number}`)).toBe("50");
  });
});

describe("password login has a per-number ceiling across unknown networks", () => {
  it("20 an hour from strangers' /64s, then even the right password is 429; the owner is not", async () => {
    const s = await createSession({ password: PASSWORD });
    const owner = uniqueSlash64();
    await proveByLoginCode(s.mobile_number, owner);
    // Four /64s, five wrong passwords each: under the per-(number, network) limit of 10.
    for (let n = 0; n < 4; n++) {
      const ip = uniqueSlash64();
      for (let i = 0; i < 5; i++) {
        const res = await call("POST", "/auth/login", {
          body: { mobile_number: s.mobile_number, password: `guess ${n}-${i}` },
          headers: from(ip),
        });
        expect(res.status, res.text).toBe(401);
      }
    }
    const refused = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: PASSWORD },
      headers: from(uniqueSlash64()),
    });
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("rate_limited");
    // The owner's network proved the number with a code: exempt.
    const again = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: PASSWORD },
      headers: from(owner),
    });
    expect(again.status, again.text).toBe(200);
  }, 60_000);
});

describe("an unproved account's sessions are dead", () => {
  it("refresh and every protected call refuse a session of an account nobody proved", async () => {
    // The state an old session of a stranger's signup was left in: a session, no proof.
    const s = await createSession({ password: PASSWORD });
    expect((await call("GET", "/chatroom", { token: s.token })).status).toBe(200);
    await sql().query("update users set mobile_verified_at = null where id = $1", [s.user.id]);
    const listed = await call("GET", "/chatroom", { token: s.token });
    expect(listed.status).toBe(401);
    // PATCH /user/me checks the session inside its UPDATE: it must not write either.
    const renamed = await call("PATCH", "/user/me", { token: s.token, body: { name: "Planted" } });
    expect(renamed.status).toBe(401);
    await sql().query("update users set mobile_verified_at = now() where id = $1", [s.user.id]);
    const me = await call("GET", "/user/me", { token: s.token });
    expect(me.body.user.name).not.toBe("Planted");
    await sql().query("update users set mobile_verified_at = null where id = $1", [s.user.id]);
    const refreshed = await call("POST", "/auth/refresh", {
      body: { refresh_token: s.refresh_token },
    });
    expect(refreshed.status).toBe(401);
  });
});

describe("a revoked token's GET", () => {
  it("answers 401, not 404, for an id that is not the caller's (no existence oracle)", async () => {
    const [s, other] = await Promise.all([createSession(), createSession()]);
    const room = await call("POST", "/chatroom", { token: other.token, body: { title: "theirs" } });
    expect(room.status).toBe(201);
    const path = `/chatroom/${room.body.chatroom.id}`;
    expect((await call("GET", path, { token: s.token })).status).toBe(404);
    const out = await call("POST", "/auth/logout", { body: { refresh_token: s.refresh_token } });
    expect(out.status).toBe(204);
    expect((await call("GET", path, { token: s.token })).status).toBe(401);
    // A malformed id is answered before any lookup (nothing to reveal, no round spent waiting).
    expect((await call("GET", "/chatroom/not-an-id", { token: s.token })).status).toBe(404);
  });
});
