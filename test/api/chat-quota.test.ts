import { describe, expect, it } from "vitest";
import { createSession } from "../support/session.ts";
import { createProSession, marker, newChatroom, sendPrompt, sql } from "./chat-support.ts";

describe("daily prompt quota", () => {
  it("accepts exactly 5 of 30 parallel prompts from a Basic user", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const tag = marker("burst");
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => sendPrompt(me, room.id, `${tag} #${i}`)),
    );
    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 429);
    expect(accepted).toHaveLength(5);
    expect(refused).toHaveLength(25);

    const remaining = accepted.map((r) => Number(r.headers.get("ratelimit-remaining"))).sort();
    expect(remaining).toEqual([0, 1, 2, 3, 4]);
    const midnight = new Date(Math.ceil(Date.now() / 86_400_000) * 86_400_000).toISOString();
    for (const r of refused) {
      expect(r.body.error.code).toBe("daily_limit_reached");
      expect(r.body.error.details).toEqual({ limit: 5, used: 5, resets_at: midnight });
      expect(Number(r.headers.get("retry-after"))).toBeGreaterThan(0);
      expect(r.headers.get("ratelimit-limit")).toBe("5");
      expect(r.headers.get("ratelimit-remaining")).toBe("0");
    }
    const rows = await sql().query(
      "select count(*)::int as n from messages where chatroom_id = $1 and role = 'user'",
      [room.id],
    );
    expect(rows[0]?.n).toBe(5);

    // Refused prompts gave their tokens back: the counter sits at the limit, not at 30.
    const later = await sendPrompt(me, room.id, marker("sixth"));
    expect(later.status).toBe(429);
    expect(later.body.error.details.used).toBe(5);
  });

  it("lets a Pro user go past the Basic limit", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const tag = marker("pro");
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => sendPrompt(pro, room.id, `${tag} #${i}`)),
    );
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(202));
    const remaining = results.map((r) => Number(r.headers.get("ratelimit-remaining")));
    expect(Math.min(...remaining)).toBe(992);
    expect(results[0]?.headers.get("ratelimit-limit")).toBe("1000");
  });

  it("applies the Basic limit to a user downgraded mid-day", async () => {
    const user = await createProSession();
    const room = await newChatroom(user);
    for (let i = 0; i < 6; i++) {
      expect((await sendPrompt(user, room.id, marker("pre"))).status).toBe(202);
    }
    await sql().query("update users set tier = 'basic' where id = $1", [user.user.id]);
    const res = await sendPrompt(user, room.id, marker("post"));
    expect(res.status).toBe(429);
    expect(res.body.error.details).toMatchObject({ limit: 5, used: 5 });
  });
});
