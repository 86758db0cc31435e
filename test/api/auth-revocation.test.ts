// Revocation is real (issue 12, item 3): once a session is revoked, its access token gets 401 from
// EVERY protected operation in the OpenAPI document, at once, and writes nothing.
import { beforeAll, describe, expect, it } from "vitest";
import { call, uniqueClientIp } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { loadOperations, type Operation } from "./fuzz-support.ts";

const PASSWORD = "correct horse battery";
const NEW_PASSWORD = "tr0ub4dor & 3 staples";

let secured: Operation[];

beforeAll(async () => {
  secured = (await loadOperations()).operations.filter((op) => op.secured);
});

const login = async (mobile_number: string, password = PASSWORD) => {
  const res = await call("POST", "/auth/login", {
    body: { mobile_number, password },
    headers: { "cf-connecting-ip": uniqueClientIp() },
  });
  expect(res.status, res.text).toBe(200);
  return { token: res.body.token as string, refresh_token: res.body.refresh_token as string };
};

/** A chatroom of the token's user with one prompt in it: real ids for every path. */
async function roomOf(token: string): Promise<{ roomId: string; messageId: string }> {
  const res = await call("POST", "/chatroom", { token, body: { title: "revocation" } });
  expect(res.status, res.text).toBe(201);
  const roomId = res.body.chatroom.id as string;
  const sent = await call("POST", `/chatroom/${roomId}/message`, {
    token,
    body: { content: "revocation fixture" },
  });
  expect(sent.status, sent.text).toBe(202);
  return { roomId, messageId: sent.body.message.id as string };
}

/**
 * Calls every protected operation with `token` on the user's own chatroom and message (so a
 * live session would get data, not a 404); answers the statuses by operation.
 */
async function everyProtected(
  token: string,
  ids: { roomId: string; messageId: string },
): Promise<Record<string, number>> {
  const answers = await Promise.all(
    secured.map(async (op) => {
      const path = op.path.replace("{id}", ids.roomId).replace("{message_id}", ids.messageId);
      const res = await call(op.method, path, {
        token,
        headers: { "cf-connecting-ip": uniqueClientIp() },
        ...(op.body ? { body: { title: "written by a revoked session", content: "hello" } } : {}),
      });
      return [op.operationId, res.status] as const;
    }),
  );
  return Object.fromEntries(answers);
}

function expectAllRefused(statuses: Record<string, number>) {
  expect(Object.keys(statuses).length).toBeGreaterThanOrEqual(15);
  const notRefused = Object.entries(statuses).filter(([, status]) => status !== 401);
  expect(notRefused).toEqual([]);
}

async function roomTitles(token: string): Promise<string[]> {
  const res = await call("GET", "/chatroom?limit=100", { token });
  expect(res.status, res.text).toBe(200);
  return (res.body.chatrooms as { title: string }[]).map((r) => r.title);
}

describe("a revoked session's access token is refused everywhere", () => {
  it("covers every secured operation, and a live token is not refused by any", async () => {
    const s = await createSession();
    const statuses = await everyProtected(s.token, await roomOf(s.token));
    expect(Object.values(statuses)).not.toContain(401);
  });

  it("after logout", async () => {
    const s: TestSession = await createSession({ password: PASSWORD });
    const other = await login(s.mobile_number);
    const room = await roomOf(s.token);
    const out = await call("POST", "/auth/logout", {
      token: s.token,
      body: { refresh_token: s.refresh_token },
    });
    expect(out.status).toBe(204);
    expectAllRefused(await everyProtected(s.token, room));
    // Nothing was written by the refused calls, and the other session is untouched.
    expect(await roomTitles(other.token)).not.toContain("written by a revoked session");
  });

  it("after change-password (other sessions) and reset-password (every session)", async () => {
    const s = await createSession({ password: PASSWORD });
    const other = await login(s.mobile_number);
    const room = await roomOf(s.token);
    const changed = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { current_password: PASSWORD, new_password: NEW_PASSWORD },
    });
    expect(changed.status).toBe(200);
    expectAllRefused(await everyProtected(other.token, room));

    const code = await call("POST", "/auth/forgot-password", {
      body: { mobile_number: s.mobile_number },
      headers: { "cf-connecting-ip": uniqueClientIp() },
    });
    const reset = await call("POST", "/auth/reset-password", {
      body: {
        mobile_number: s.mobile_number,
        otp: code.body.otp,
        challenge_id: code.body.challenge_id,
        new_password: PASSWORD,
      },
      headers: { "cf-connecting-ip": uniqueClientIp() },
    });
    expect(reset.status).toBe(200);
    expectAllRefused(await everyProtected(changed.body.token, room));
  });

  it("after refresh-token theft detection (a rotated token replayed)", async () => {
    const s = await createSession();
    const room = await roomOf(s.token);
    const rotated = await call("POST", "/auth/refresh", {
      body: { refresh_token: s.refresh_token },
    });
    expect(rotated.status).toBe(200);
    // The owner uses the successor, so the replay is not a retry within the reuse interval.
    const used = await call("POST", "/auth/refresh", {
      body: { refresh_token: rotated.body.refresh_token },
    });
    expect(used.status).toBe(200);
    const replay = await call("POST", "/auth/refresh", {
      body: { refresh_token: s.refresh_token },
    });
    expect(replay.status).toBe(401);
    expectAllRefused(await everyProtected(used.body.token, room));
  });
});
