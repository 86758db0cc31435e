import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { control } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import { marker, newChatroom, redis, sendPrompt } from "./chat-support.ts";

// The chaos soak's finding 4 (docs/reliability.md): with Redis slower than the Worker's 2 s
// deadline, the quota take timed out (the prompt answered 503, nothing written) but Redis still
// ran it a moment later, so the user's daily counter kept a prompt that never happened. The take
// is now keyed by the request, and a take whose answer was lost is given back (if it ran, before
// or after), so the counter ends where it began. The fault is scoped to this user's keys.
const counterKey = (userId: string) =>
  `quota:prompts:${userId}:${Math.floor(Date.now() / 86_400_000)}`;

async function counter(userId: string): Promise<number> {
  return Number((await redis("GET", counterKey(userId))) ?? 0);
}

describe("a quota take whose answer is lost", () => {
  it("leaves no prompt counted once Redis has run it late (503, then the counter settles)", async () => {
    // Another user's prompt first: Redis then knows the quota script, as it does in production
    // (a first EVALSHA that Redis does not know yet would fail instead of counting).
    const other = await createSession();
    const warm = await sendPrompt(other, (await newChatroom(other)).id, marker("warm-up"));
    expect(warm.status, warm.text).toBe(202);
    const me = await createSession();
    const room = await newChatroom(me);
    // Slower than REDIS_TIMEOUT_MS (2 s): Redis runs each command after the Worker gave up on it.
    const set = await control("redis/fault", { mode: "slow", ms: 2_400, match: me.user.id });
    expect(set.status).toBe(200);
    let status: number;
    try {
      const res = await sendPrompt(me, room.id, marker("lost-take"));
      status = res.status;
      expect(res.body.error?.code).toBe("dependency_unavailable");
    } finally {
      // Commands already waiting in the stand-in still run late, after this.
      await control("redis/fault", { mode: "none", match: me.user.id });
    }
    expect(status).toBe(503);
    // Every delayed command has run by now (2.4 s after it arrived), the give-back included.
    await sleep(6_000);
    expect(await counter(me.user.id)).toBe(0);

    // The next prompt is the day's first.
    const next = await sendPrompt(me, room.id, marker("after"));
    expect(next.status, next.text).toBe(202);
    expect(await counter(me.user.id)).toBe(1);
  }, 40_000);
});
