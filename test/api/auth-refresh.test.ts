import { describe, expect, it } from "vitest";
import { REFRESH_REUSE_INTERVAL_SECONDS } from "../../src/services/auth/sessions.ts";
import { call } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import { sql } from "./chat-support.ts";
import {
  backdateRotation,
  expireToken,
  hashOf,
  liveTokenHashes,
  refresh,
  rowOf,
  setRotationAndExpiry,
} from "./refresh-support.ts";

const me = (token: string) => call("GET", "/user/me", { token });

describe("POST /auth/refresh", () => {
  it("rotates: a new pair is issued and the old refresh token stops working once the new one is used", async () => {
    const s = await createSession();
    const first = await refresh(s.refresh_token);
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
    expect(first.body.refresh_token).not.toBe(s.refresh_token);
    expect((await me(first.body.token)).status).toBe(200);
    expect((await refresh(first.body.refresh_token)).status).toBe(200);

    const old = await refresh(s.refresh_token);
    expect(old.status).toBe(401);
    expect(old.body.error.code).toBe("unauthorized");
  });

  it("refuses an expired refresh token without ending its session (an idle client, not a replay)", async () => {
    const s = await createSession();
    const r1 = await refresh(s.refresh_token);
    expect(r1.status).toBe(200);
    await expireToken(r1.body.refresh_token, 5);
    const late = await refresh(r1.body.refresh_token);
    expect(late.status, late.text).toBe(401);
    expect(late.body.error.code).toBe("unauthorized");
    // Not rotated, so not a replay: the family stands until its access token runs out.
    expect((await me(r1.body.token)).status).toBe(200);
    expect((await rowOf(r1.body.refresh_token))?.rotated_at).toBeNull();
  });

  it("revokes the whole family when a rotated token is replayed after its successor was used (theft detection)", async () => {
    const s = await createSession();
    const r1 = await refresh(s.refresh_token);
    const r2 = await refresh(r1.body.refresh_token);
    expect(r2.status).toBe(200);
    // The attacker replays the first token well within the reuse interval, but the owner has
    // moved on: refused, and the owner's live token and access token die with it.
    expect((await refresh(s.refresh_token)).status).toBe(401);
    expect((await refresh(r2.body.refresh_token)).status).toBe(401);
    expect((await me(r2.body.token)).status).toBe(401);
    expect(await liveTokenHashes(s.user.id)).toEqual([]);
  });

  it("does not touch the user's other sessions when one family is revoked", async () => {
    const s = await createSession({ password: "correct horse battery" });
    const other = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: "correct horse battery" },
    });
    expect(other.status).toBe(200);
    const r1 = await refresh(s.refresh_token);
    const r2 = await refresh(r1.body.refresh_token);
    expect(r2.status).toBe(200);
    expect((await refresh(s.refresh_token)).status).toBe(401); // reuse: this family is revoked
    expect((await refresh(r2.body.refresh_token)).status).toBe(401);
    expect((await refresh(other.body.refresh_token)).status).toBe(200);
  });

  it("leaves exactly one live refresh token when two refreshes with the same token race", async () => {
    const s = await createSession();
    const results = await Promise.all([refresh(s.refresh_token), refresh(s.refresh_token)]);
    // The later one is a retry within the reuse interval: it supersedes the earlier successor.
    const issued = results.filter((r) => r.status === 200).map((r) => r.body.refresh_token);
    expect(issued.length).toBeGreaterThanOrEqual(1);
    const live = await liveTokenHashes(s.user.id);
    expect(live).toHaveLength(1);
    expect(issued.map(hashOf)).toContain(live[0]);
    const winner = issued.find((t) => hashOf(t) === live[0]) as string;
    expect((await refresh(winner)).status).toBe(200);
  });

  it("keeps the session a password change issues refreshable, and nothing from before it", async () => {
    const s = await createSession({ password: "correct horse battery" });
    const changed = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { current_password: "correct horse battery", new_password: "new horse battery staple" },
    });
    expect(changed.status).toBe(200);
    expect((await refresh(changed.body.refresh_token)).status).toBe(200);
    expect((await refresh(s.refresh_token)).status).toBe(401);
  });

  it("leaves no live refresh token from before a password change that races a refresh", async () => {
    // On a real PostgreSQL the two can interleave; whichever wins, a token rotated from the old
    // session must be dead once the change has committed.
    for (let i = 0; i < 6; i++) {
      const s = await createSession({ password: "correct horse battery" });
      const [rotated, changed] = await Promise.all([
        refresh(s.refresh_token),
        call("POST", "/auth/change-password", {
          token: s.token,
          body: {
            current_password: "correct horse battery",
            new_password: "new horse battery staple",
          },
        }),
      ]);
      expect(changed.status).toBe(200);
      if (rotated.status === 200)
        expect((await refresh(rotated.body.refresh_token)).status).toBe(401);
      else expect(rotated.status).toBe(401);
    }
  });

  it("leaves no live refresh token of a family whose logout races a refresh", async () => {
    // The same race with logout: a successor rotated while the logout runs must die with it.
    for (let i = 0; i < 6; i++) {
      const s = await createSession();
      const [rotated, loggedOut] = await Promise.all([
        refresh(s.refresh_token),
        call("POST", "/auth/logout", {
          token: s.token,
          body: { refresh_token: s.refresh_token },
        }),
      ]);
      expect(loggedOut.status).toBe(204);
      if (rotated.status === 200)
        expect((await refresh(rotated.body.refresh_token)).status).toBe(401);
      else expect(rotated.status).toBe(401);
    }
  });

  it.each([
    ["garbage", "not-a-token"],
    ["well-formed but unknown", "A".repeat(43)],
    ["an access token", "eyJhbGciOiJIUzI1NiJ9.e30.x"],
  ])("refuses %s with 401", async (_name, token) => {
    const res = await refresh(token);
    expect(res.status).toBe(401);
    expect(res.text).not.toContain(token);
  });

  it.each([
    ["missing", {}],
    ["a number", { refresh_token: 5 }],
    ["too long", { refresh_token: "a".repeat(300) }],
    ["unknown field", { refresh_token: "A".repeat(43), user_id: "x" }],
  ])("rejects a body with %s with 400", async (_name, body) => {
    const res = await call("POST", "/auth/refresh", { body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });
});

describe("the reuse interval: a rotated token presented again while its successor is unused", () => {
  it("reissues within the interval: a working pair, the family alive, the unused successor superseded", async () => {
    const s = await createSession();
    // The rotation commits but its answer never reaches the client (the fault test makes that
    // happen for real); the client retries the same token.
    const lost = await refresh(s.refresh_token);
    expect(lost.status).toBe(200);
    const retry = await refresh(s.refresh_token);
    expect(retry.status).toBe(200);
    expect(retry.body.refresh_token).not.toBe(lost.body.refresh_token);
    expect((await me(retry.body.token)).status).toBe(200);
    // One live token, the retry's; the lost successor is superseded (rotated and revoked).
    expect(await liveTokenHashes(s.user.id)).toEqual([hashOf(retry.body.refresh_token)]);
    const superseded = await rowOf(lost.body.refresh_token);
    expect(superseded?.revoked_at).not.toBeNull();
    const reissued = await rowOf(retry.body.refresh_token);
    const original = await rowOf(s.refresh_token);
    expect(reissued?.parent_id).toBe(original?.id);
    // The session goes on: the new token rotates, and so does its successor.
    const next = await refresh(retry.body.refresh_token);
    expect(next.status).toBe(200);
    expect((await refresh(next.body.refresh_token)).status).toBe(200);
  });

  it("keeps reissuing while each retry's answer is lost, leaving one live token each time", async () => {
    const s = await createSession();
    const answers = [];
    for (let i = 0; i < 3; i++) {
      const res = await refresh(s.refresh_token);
      expect(res.status).toBe(200);
      expect(await liveTokenHashes(s.user.id)).toEqual([hashOf(res.body.refresh_token)]);
      answers.push(res.body.refresh_token as string);
    }
    expect((await refresh(answers[2])).status).toBe(200);
  });

  it("gives exactly one live pair to parallel retries within the interval", async () => {
    const s = await createSession();
    const lost = await refresh(s.refresh_token);
    expect(lost.status).toBe(200);
    const retries = await Promise.all([1, 2, 3].map(() => refresh(s.refresh_token)));
    const issued = retries.filter((r) => r.status === 200).map((r) => r.body.refresh_token);
    expect(issued.length).toBeGreaterThanOrEqual(1);
    const live = await liveTokenHashes(s.user.id);
    expect(live).toHaveLength(1);
    expect(issued.map(hashOf)).toContain(live[0]);
    expect(live[0]).not.toBe(hashOf(lost.body.refresh_token));
    const winner = issued.find((t) => hashOf(t) === live[0]) as string;
    expect((await refresh(winner)).status).toBe(200);
  });

  it("revokes the family when the rotated token comes back after the interval, successor unused", async () => {
    const s = await createSession();
    const r1 = await refresh(s.refresh_token);
    expect(r1.status).toBe(200);
    await backdateRotation(s.refresh_token, REFRESH_REUSE_INTERVAL_SECONDS + 1);
    expect((await refresh(s.refresh_token)).status).toBe(401);
    // The owner's unused successor and its access token die with the family.
    expect((await refresh(r1.body.refresh_token)).status).toBe(401);
    expect((await me(r1.body.token)).status).toBe(401);
    expect(await liveTokenHashes(s.user.id)).toEqual([]);
  });

  it("revokes the family when the rotated token comes back after its own expiry, inside the interval", async () => {
    // Rotated 10 s ago, 5 s before its expiry; presented again 5 s after it: inside the 60 s
    // interval, but an expired token gets no successor, by rotation or by reissue. Not a retry,
    // so theft detection (ADR 8, item 11): the family, the unused successor included, dies.
    const s = await createSession();
    const lost = await refresh(s.refresh_token);
    expect(lost.status).toBe(200);
    await setRotationAndExpiry(s.refresh_token, { rotatedSecondsAgo: 10, expiresInSeconds: -5 });
    const retry = await refresh(s.refresh_token);
    expect(retry.status, retry.text).toBe(401);
    expect((await refresh(lost.body.refresh_token)).status).toBe(401);
    expect((await me(lost.body.token)).status).toBe(401);
    expect(await liveTokenHashes(s.user.id)).toEqual([]);

    // The same times with the expiry 5 s ahead instead: still a retry, reissued.
    const other = await createSession();
    expect((await refresh(other.refresh_token)).status).toBe(200);
    await setRotationAndExpiry(other.refresh_token, { rotatedSecondsAgo: 10, expiresInSeconds: 5 });
    const live = await refresh(other.refresh_token);
    expect(live.status, live.text).toBe(200);
    expect(await liveTokenHashes(other.user.id)).toEqual([hashOf(live.body.refresh_token)]);
  });

  it("revokes the family when the owner presents the successor a thief's replay superseded", async () => {
    // A thief who copied the token replays it within the interval, before the owner's client
    // has used its successor: the thief gets a pair (the price of the interval), but the
    // owner's next refresh is a replay of a superseded token, which ends the thief's pair too.
    const s = await createSession();
    const owner = await refresh(s.refresh_token);
    const thief = await refresh(s.refresh_token);
    expect(thief.status).toBe(200);
    expect((await refresh(owner.body.refresh_token)).status).toBe(401);
    expect((await refresh(thief.body.refresh_token)).status).toBe(401);
    expect((await me(thief.body.token)).status).toBe(401);
    expect(await liveTokenHashes(s.user.id)).toEqual([]);
  });

  it("does not revive a session that was logged out", async () => {
    const s = await createSession();
    const r1 = await refresh(s.refresh_token);
    expect(r1.status).toBe(200);
    const out = await call("POST", "/auth/logout", {
      body: { refresh_token: r1.body.refresh_token },
    });
    expect(out.status).toBe(204);
    expect((await refresh(s.refresh_token)).status).toBe(401);
    expect(await liveTokenHashes(s.user.id)).toEqual([]);
  });

  it("does not reissue a rotated token issued before a password change", async () => {
    const s = await createSession({ password: "correct horse battery" });
    const r1 = await refresh(s.refresh_token);
    expect(r1.status).toBe(200);
    const changed = await call("POST", "/auth/change-password", {
      token: r1.body.token,
      body: { current_password: "correct horse battery", new_password: "new horse battery staple" },
    });
    expect(changed.status).toBe(200);
    expect((await refresh(s.refresh_token)).status).toBe(401);
    // Only the session the change issued is live.
    expect(await liveTokenHashes(s.user.id)).toEqual([hashOf(changed.body.refresh_token)]);
  });
});

describe("POST /auth/logout", () => {
  it("answers 204 and revokes this session's refresh token, without a body", async () => {
    const s = await createSession();
    const res = await call("POST", "/auth/logout", { token: s.token });
    expect(res.status).toBe(204);
    expect((await refresh(s.refresh_token)).status).toBe(401);
  });

  it("logs out with the refresh token alone: an expired access token never strands a session", async () => {
    const s = await createSession();
    // No Authorization at all (the access token may have expired): the refresh token suffices.
    const out = await call("POST", "/auth/logout", { body: { refresh_token: s.refresh_token } });
    expect(out.status).toBe(204);
    expect((await refresh(s.refresh_token)).status).toBe(401);
    expect((await call("GET", "/user/me", { token: s.token })).status).toBe(401);
    // Idempotent, and an unknown token changes nothing.
    const again = await call("POST", "/auth/logout", { body: { refresh_token: s.refresh_token } });
    expect(again.status).toBe(204);
    const expired = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln";
    const withBadBearer = await call("POST", "/auth/logout", {
      headers: { authorization: `Bearer ${expired}` },
      body: { refresh_token: s.refresh_token },
    });
    expect(withBadBearer.status).toBe(204);
    // Without a refresh token, a bearer token that does not verify is 401, and nothing is 400.
    expect(
      (await call("POST", "/auth/logout", { headers: { authorization: `Bearer ${expired}` } }))
        .status,
    ).toBe(401);
    expect((await call("POST", "/auth/logout", { body: {} })).status).toBe(400);
  });

  it("ends only the presented refresh token's session, leaving the user's others", async () => {
    const [a, b] = await Promise.all([createSession(), createSession()]);
    // Holding b's refresh token is holding b's session: presenting it ends that session only.
    expect(
      (
        await call("POST", "/auth/logout", {
          token: a.token,
          body: { refresh_token: b.refresh_token },
        })
      ).status,
    ).toBe(204);
    expect((await refresh(b.refresh_token)).status).toBe(401);
    expect((await call("GET", "/user/me", { token: a.token })).status).toBe(401);
    const c = await createSession();
    expect((await call("GET", "/user/me", { token: c.token })).status).toBe(200);
  });

  it("revokes the body's refresh token even when it belongs to another of the caller's sessions", async () => {
    // Two sessions of one user, so the access token's own session cannot explain the revocation.
    const s = await createSession({ password: "correct horse battery" });
    const other = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: "correct horse battery" },
    });
    expect(other.status).toBe(200);
    const res = await call("POST", "/auth/logout", {
      token: s.token,
      body: { refresh_token: other.body.refresh_token },
    });
    expect(res.status).toBe(204);
    expect((await refresh(other.body.refresh_token)).status).toBe(401);
    expect((await refresh(s.refresh_token)).status).toBe(401);
  });

  it("needs a credential: a refresh token or a bearer token (400 without either)", async () => {
    const res = await call("POST", "/auth/logout");
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("refresh_token");
  });

  it("rejects unknown fields", async () => {
    const s = await createSession();
    const res = await call("POST", "/auth/logout", { token: s.token, body: { everything: true } });
    expect(res.status).toBe(400);
  });
});

describe("absolute session lifetime", () => {
  it("refuses to refresh a family that started more than 90 days ago, however often rotated", async () => {
    const s = await createSession();
    const rotated = await refresh(s.refresh_token);
    expect(rotated.status).toBe(200);
    const familyOf = `(select family_id from refresh_tokens where user_id = $1 limit 1)`;
    // The login was 89 days ago: still within the lifetime.
    await sql().query(
      `update refresh_tokens set created_at = now() - interval '89 days' where family_id = ${familyOf} and rotated_at is not null`,
      [s.user.id],
    );
    const young = await refresh(rotated.body.refresh_token);
    expect(young.status).toBe(200);
    // The login was 91 days ago: the family is over, even though its latest token is fresh.
    await sql().query(
      `update refresh_tokens set created_at = now() - interval '91 days' where family_id = ${familyOf} and rotated_at is not null`,
      [s.user.id],
    );
    const old = await refresh(young.body.refresh_token);
    expect(old.status).toBe(401);
  });
});
