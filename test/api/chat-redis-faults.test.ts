import { describe, expect, it } from "vitest";
import { call, control } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { marker, newChatroom, qstashMessages, sendPrompt } from "./chat-support.ts";

// Redis faults here are scoped to one user's keys (every quota and cache key holds the user id),
// so they do not disturb other test files sharing the local cloud.
async function withRedisFault<T>(
  session: TestSession,
  mode: "down" | "error" | "slow",
  fn: () => Promise<T>,
  ms?: number,
): Promise<T> {
  const set = await control("redis/fault", { mode, match: session.user.id, ...(ms ? { ms } : {}) });
  expect(set.status).toBe(200);
  try {
    return await fn();
  } finally {
    await control("redis/fault", { mode: "none", match: session.user.id });
  }
}

describe("when Redis fails", () => {
  it.each(["down", "error"] as const)(
    "(%s) prompts fail closed with 503 and nothing is written or published",
    async (mode) => {
      const me = await createSession();
      const room = await newChatroom(me);
      const content = marker(`redis-${mode}`);
      const res = await withRedisFault(me, mode, () => sendPrompt(me, room.id, content));
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("dependency_unavailable");
      const detail = await call("GET", `/chatroom/${room.id}`, { token: me.token });
      expect(detail.body.chatroom.message_count).toBe(0);
      expect(detail.body.messages).toEqual([]);
      expect(await qstashMessages(content)).toEqual([]);
    },
  );

  it("reads keep working: the list comes from the database", async () => {
    const me = await createSession();
    const room = await newChatroom(me, "still here");
    await withRedisFault(me, "down", async () => {
      const list = await call("GET", "/chatroom", { token: me.token });
      expect(list.status).toBe(200);
      expect(list.headers.get("x-cache")).toBe("MISS");
      expect(list.body.chatrooms.map((r: { id: string }) => r.id)).toEqual([room.id]);
      const detail = await call("GET", `/chatroom/${room.id}`, { token: me.token });
      expect(detail.status).toBe(200);
      const created = await call("POST", "/chatroom", { token: me.token, body: { title: "new" } });
      expect(created.status).toBe(201);
    });
  });

  it("a slow Redis does not hold the list: it is served from the database within the bound", async () => {
    const me = await createSession();
    await newChatroom(me);
    await withRedisFault(
      me,
      "slow",
      async () => {
        const started = Date.now();
        const list = await call("GET", "/chatroom", { token: me.token });
        expect(list.status).toBe(200);
        expect(list.headers.get("x-cache")).toBe("MISS");
        expect(Date.now() - started).toBeLessThan(1500);
      },
      3000,
    );
  });
});
