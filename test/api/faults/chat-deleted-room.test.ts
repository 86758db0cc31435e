import { afterEach, describe, expect, it } from "vitest";
import { call, control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { geminiCalls, marker, newChatroom, qstashMessages, sendPrompt } from "../chat-support.ts";

const DB_DELAY_MS = 600;

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

describe("a chatroom deleted between the two rounds of a prompt", () => {
  it("makes no Gemini call: the publish waits for a commit that never comes", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("deleted-between-rounds");
    // Every /sql request waits DB_DELAY_MS: round 1 runs at ~0.6 s, round 2's batch at ~1.2 s.
    await control("neon/fault", { mode: "slow", ms: DB_DELAY_MS });
    const sent = sendPrompt(me, room.id, content);
    await new Promise((r) => setTimeout(r, DB_DELAY_MS * 1.5));
    // The control query is not delayed: the room is gone before round 2's batch runs.
    const deleted = await control("neon/query", {
      sql: "delete from chatrooms where id = $1",
      params: [room.id],
    });
    expect(deleted.status).toBe(200);
    const res = await sent;
    await control("neon/fault", { mode: "none" });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");

    await new Promise((r) => setTimeout(r, 500));
    expect(await qstashMessages(content, "publish")).toEqual([]);
    expect(await geminiCalls(content)).toEqual([]);
    const status = await call("GET", "/subscription/status", { token: me.token });
    expect(status.body.usage.used_today).toBe(0);
  });
});
