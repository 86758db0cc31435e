import { describe, expect, it } from "vitest";
import { call, control } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  createProSession,
  geminiFault,
  marker,
  newChatroom,
  sendPrompt,
  settledReply,
  sql,
} from "./chat-support.ts";

function regenerate(
  session: TestSession,
  roomId: string,
  messageId: string,
  headers: Record<string, string> = {},
) {
  return call("POST", `/chatroom/${roomId}/messages/${messageId}/regenerate`, {
    token: session.token,
    headers,
  });
}

async function promptsSeen(match: string): Promise<string[]> {
  const res = await control(`gemini/calls?match=${encodeURIComponent(match)}`);
  return (res.body.calls as { prompt: string }[]).map((c) => c.prompt);
}

const STAND_IN = "This reply comes from the local Gemini stand-in.";

describe("POST /chatroom/:id/messages/:message_id/regenerate", () => {
  it("queues a new reply to the same prompt with the history before it, and supersedes the old", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const earlier = await sendPrompt(pro, room.id, marker("earlier"));
    await settledReply(pro, room.id, earlier.body.reply.id);
    const content = marker("again");
    const sent = await sendPrompt(pro, room.id, content);
    const first = await settledReply(pro, room.id, sent.body.reply.id);
    expect(first.status).toBe("complete");
    const remaining = Number(sent.headers.get("ratelimit-remaining"));

    const res = await regenerate(pro, room.id, first.id);
    expect(res.status).toBe(202);
    const reply = res.body.reply;
    expect(reply).toMatchObject({ role: "model", status: "pending", superseded_by: null });
    expect(res.body.message).toBeUndefined();
    expect(res.headers.get("location")).toBe(`/chatroom/${room.id}/messages/${reply.id}`);
    // It spends a prompt.
    expect(Number(res.headers.get("ratelimit-remaining"))).toBe(remaining - 1);
    expect((await settledReply(pro, room.id, reply.id)).status).toBe("complete");

    // Gemini saw the earlier exchange and the prompt, not the reply being replaced.
    const [original, again] = await promptsSeen(content);
    expect(original).toBeDefined();
    expect(again).toBe(original);
    expect(again?.split(STAND_IN)).toHaveLength(2); // the earlier reply only

    const second = await regenerate(pro, room.id, reply.id);
    expect(second.status).toBe(202);
    const newest = second.body.reply.id as string;
    await settledReply(pro, room.id, newest);

    const all = await call("GET", `/chatroom/${room.id}/messages`, { token: pro.token });
    const byId = new Map(all.body.messages.map((m: { id: string }) => [m.id, m]));
    expect(byId.get(first.id)).toMatchObject({ superseded_by: newest });
    expect(byId.get(reply.id)).toMatchObject({ superseded_by: newest });
    expect(byId.get(newest)).toMatchObject({ superseded_by: null, status: "complete" });

    const view = await call("GET", `/chatroom/${room.id}`, { token: pro.token });
    const ids = view.body.messages.map((m: { id: string }) => m.id);
    expect(ids).toEqual([
      earlier.body.message.id,
      earlier.body.reply.id,
      sent.body.message.id,
      newest,
    ]);
    expect(view.body.chatroom.message_count).toBe(6);
  });

  it("creates one reply and spends one prompt for two requests with one Idempotency-Key", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const sent = await sendPrompt(pro, room.id, marker("keyed"));
    await settledReply(pro, room.id, sent.body.reply.id);
    const key = { "idempotency-key": marker("regen-key") };
    const [a, b] = await Promise.all([
      regenerate(pro, room.id, sent.body.reply.id, key),
      regenerate(pro, room.id, sent.body.reply.id, key),
    ]);
    expect([a.status, b.status]).toEqual([202, 202]);
    expect(a.body.reply.id).toBe(b.body.reply.id);
    const later = await regenerate(pro, room.id, sent.body.reply.id, key);
    expect(later.status).toBe(202);
    expect(later.headers.get("idempotent-replayed")).toBe("true");
    expect(later.body.reply.id).toBe(a.body.reply.id);
    // The same key on another message is another request.
    const reused = await regenerate(pro, room.id, a.body.reply.id, key);
    expect(reused.status).toBe(409);
    expect(reused.body.error.code).toBe("idempotency_key_reused");

    await settledReply(pro, room.id, a.body.reply.id);
    const all = await call("GET", `/chatroom/${room.id}/messages`, { token: pro.token });
    expect(all.body.messages.filter((m: { role: string }) => m.role === "model")).toHaveLength(2);
    const probe = await sendPrompt(pro, room.id, marker("probe"));
    expect(Number(probe.headers.get("ratelimit-remaining"))).toBe(
      Number(sent.headers.get("ratelimit-remaining")) - 2,
    );
  });

  it("leaves exactly one current reply after parallel regenerates, each accepted one spending one prompt", async () => {
    // Soak review: on PostgreSQL (READ COMMITTED) each regenerate's supersede saw only what was
    // committed when it started, so two in parallel both stayed current. The embedded PGlite
    // runs batches one at a time; the real-backend run of this file is where it showed.
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const sent = await sendPrompt(pro, room.id, marker("parallel"));
    const first = await settledReply(pro, room.id, sent.body.reply.id);
    const before = Number(sent.headers.get("ratelimit-remaining"));

    const answers = await Promise.all(
      Array.from({ length: 10 }, () => regenerate(pro, room.id, first.id)),
    );
    // All are accepted, one after another (no deadlock, no lost write answered 503).
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 202));
    const accepted = answers;

    const replies = await sql().query(
      "select id, superseded_by from messages where reply_to_id = $1 and role = 'model'",
      [sent.body.message.id],
    );
    // Every accepted regenerate wrote its reply, and only those did.
    expect(replies.map((r) => r.id).sort()).toEqual(
      [first.id, ...accepted.map((a) => a.body.reply.id as string)].sort(),
    );
    const current = replies.filter((r) => r.superseded_by === null);
    expect(current).toHaveLength(1);
    // Every other reply points at the current one.
    for (const r of replies) {
      if (r.id !== current[0]?.id) expect(r.superseded_by).toBe(current[0]?.id);
    }
    const view = await call("GET", `/chatroom/${room.id}`, { token: pro.token });
    expect(view.body.messages.filter((m: { role: string }) => m.role === "model")).toHaveLength(1);

    // One prompt per accepted regenerate: the probe sees the rest of the day's count.
    const probe = await sendPrompt(pro, room.id, marker("probe"));
    expect(Number(probe.headers.get("ratelimit-remaining"))).toBe(before - accepted.length - 1);
    await Promise.all(accepted.map((a) => settledReply(pro, room.id, a.body.reply.id)));
  });

  it("refuses pending replies, prompts and others' replies; takes cancelled ones; stops at the daily limit", async () => {
    const basic = await createSession();
    const room = await newChatroom(basic);
    const doneContent = marker("done");
    const done = await sendPrompt(basic, room.id, doneContent);
    await settledReply(basic, room.id, done.body.reply.id);

    const slow = marker("slow");
    await geminiFault({ match: slow, kind: "slow", times: 1, ms: 2_000 });
    const pending = await sendPrompt(basic, room.id, slow);
    expect(pending.status).toBe(202);
    const stillPending = await regenerate(basic, room.id, pending.body.reply.id);
    expect(stillPending.status).toBe(409);
    expect(stillPending.body.error.code).toBe("reply_in_progress");
    await settledReply(basic, room.id, pending.body.reply.id);

    expect((await regenerate(basic, room.id, done.body.message.id)).status).toBe(404);
    const stranger = await createSession();
    expect((await regenerate(stranger, room.id, done.body.reply.id)).status).toBe(404);

    // A cancelled reply can be asked again; then the day's prompts run out.
    await geminiFault({ match: doneContent, kind: "slow", times: 1, ms: 2_000 });
    const regen = await regenerate(basic, room.id, done.body.reply.id);
    expect(regen.status).toBe(202);
    const cancelled = await call(
      "POST",
      `/chatroom/${room.id}/messages/${regen.body.reply.id}/cancel`,
      {
        token: basic.token,
      },
    );
    expect(cancelled.status).toBe(200);
    let last = regen.body.reply.id as string;
    for (let i = 0; i < 10; i++) {
      const res = await regenerate(basic, room.id, last);
      if (res.status === 429) {
        expect(res.body.error.code).toBe("daily_limit_reached");
        return;
      }
      expect(res.status).toBe(202);
      last = res.body.reply.id;
      await settledReply(basic, room.id, last);
    }
    throw new Error("the daily limit was never reached");
  });
});
