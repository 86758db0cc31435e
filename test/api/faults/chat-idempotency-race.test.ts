// A client that times out on its last prompt of the day and sends it again (same
// Idempotency-Key) while the first is still being written: the repeat must get the first
// response, not a 429 for a prompt that was in fact accepted. The database is slowed for
// everyone (a global switch, hence this folder) to hold the first request mid-write.
import { randomUUID } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import { marker, newChatroom, sendPrompt, sql } from "../chat-support.ts";

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

describe("Idempotency-Key repeats racing the first request", () => {
  it("a repeat of the day's last prompt, sent while the first is being written, replays it", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    for (let i = 0; i < 4; i++) {
      expect((await sendPrompt(me, room.id, marker(`used-${i}`))).status).toBe(202);
    }
    const key = randomUUID();
    const content = marker("last");

    await control("neon/fault", { mode: "slow", ms: 1500 });
    const first = sendPrompt(me, room.id, content, { "idempotency-key": key });
    // The first has taken the day's last prompt (Redis) and is waiting on the database.
    await new Promise((r) => setTimeout(r, 400));
    const again = await sendPrompt(me, room.id, content, { "idempotency-key": key });
    const original = await first;
    await control("neon/fault", { mode: "none" });

    expect(original.status, original.text).toBe(202);
    expect(again.status, again.text).toBe(202);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(again.body.reply.id).toBe(original.body.reply.id);
    // One exchange for the two requests: 5 prompts and their 5 replies in the room.
    const [row] = await sql().query(
      "select count(*)::int as n from messages where chatroom_id = $1",
      [room.id],
    );
    expect(row?.n).toBe(10);
  });

  it("a new key at the daily limit is still refused at once with 429", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    for (let i = 0; i < 5; i++) {
      expect((await sendPrompt(me, room.id, marker(`spend-${i}`))).status).toBe(202);
    }
    const started = Date.now();
    const res = await sendPrompt(me, room.id, marker("over"), { "idempotency-key": randomUUID() });
    expect(res.status).toBe(429);
    expect(res.body.error.code).toBe("daily_limit_reached");
    // It held the key's claim itself, so it did not wait for an in-flight twin.
    expect(Date.now() - started).toBeLessThan(3_000);
  });
});
