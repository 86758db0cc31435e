import { afterEach, describe, expect, it } from "vitest";
import { QUERY_TIMEOUT_MS } from "../../../src/db/client.ts";
import { REDIS_TIMEOUT_MS } from "../../../src/lib/redis.ts";
import { call, control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { newChatroom, sendPrompt } from "../chat-support.ts";

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
  await control("redis/fault", { mode: "none" });
});

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

describe("vendor calls that hang", () => {
  it(
    "answer 503 once a database query passes its deadline, instead of hanging",
    async () => {
      const me = await createSession();
      await control("neon/fault", { mode: "slow", ms: QUERY_TIMEOUT_MS + 5_000 });
      const { value: res, ms } = await timed(() => call("GET", "/user/me", { token: me.token }));
      expect(res.status).toBe(503);
      expect(res.body.error.code).toBe("dependency_unavailable");
      expect(ms).toBeGreaterThanOrEqual(QUERY_TIMEOUT_MS - 500);
      expect(ms).toBeLessThan(QUERY_TIMEOUT_MS + 4_000);
    },
    QUERY_TIMEOUT_MS + 15_000,
  );

  it("refuse a prompt with 503 once Redis passes its deadline, spending nothing", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    await control("redis/fault", { mode: "slow", ms: REDIS_TIMEOUT_MS + 3_000, match: me.user.id });
    const { value: res, ms } = await timed(() =>
      sendPrompt(me, room.id, "hello while Redis hangs"),
    );
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("dependency_unavailable");
    expect(ms).toBeLessThan(REDIS_TIMEOUT_MS + 2_500);

    await control("redis/fault", { mode: "none" });
    const messages = await call("GET", `/chatroom/${room.id}/messages`, { token: me.token });
    expect(messages.body.messages).toEqual([]);
  });
});
