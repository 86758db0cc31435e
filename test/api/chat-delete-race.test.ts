import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { call, control, testEnv } from "../support/api.ts";
import type { TestSession } from "../support/session.ts";
import {
  callbackBody,
  createProSession,
  geminiAnswer,
  marker,
  newChatroom,
  postCallback,
  sendPrompt,
  signQStash,
  sql,
} from "./chat-support.ts";

// Replies in this file are never handed to QStash (a publish fault scoped to this file's tag),
// so every callback they receive is one this test sends, at the moment it chooses.
const tag = marker("delete-race");
let me: TestSession;

beforeAll(async () => {
  await control("qstash/publish-fault", { match: tag, mode: "error" });
  // Pro, so the prompts of this file never meet the daily limit.
  me = await createProSession();
});

afterAll(async () => {
  await control("qstash/publish-fault", { match: tag, mode: "none" });
});

/** Delivers Gemini's answer for a reply, signed as QStash signs it. */
async function answer(replyId: string) {
  const path = `/webhook/qstash/reply?reply_id=${replyId}`;
  const body = callbackBody(geminiAnswer(marker("answer")));
  return postCallback(path, body, await signQStash(`${testEnv.APP_URL}${path}`, body));
}

/** A chatroom with one answered exchange (to regenerate) and one reply still pending. */
async function busyRoom() {
  const room = await newChatroom(me);
  const answered = await sendPrompt(me, room.id, `${tag} ${marker("answered")}`);
  expect(answered.status).toBe(202);
  expect((await answer(answered.body.reply.id)).status).toBe(200);
  const pending = await sendPrompt(me, room.id, `${tag} ${marker("pending")}`);
  expect(pending.status).toBe(202);
  return {
    roomId: room.id,
    answeredReplyId: answered.body.reply.id as string,
    pendingReplyId: pending.body.reply.id as string,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Keeps the chatroom row busy for `ms` in a transaction of its own, as any write to the chatroom
 * (a prompt's counters, a rename) does for a moment: what arrives meanwhile queues on the row,
 * in arrival order. The race below is then decided by the order the test sends things in, not
 * by luck.
 */
function holdChatroom(roomId: string, ms: number) {
  const db = sql();
  return db.transaction([
    db.query("update chatrooms set title = title where id = $1", [roomId]),
    db.query("select pg_sleep($1)", [ms / 1000]),
  ]);
}

/**
 * While the chatroom row is busy: the DELETE, then (queued behind it on that row) a regenerate
 * and the save of the pending reply.
 */
async function raceDelete(r: Awaited<ReturnType<typeof busyRoom>>) {
  const held = holdChatroom(r.roomId, 1_000);
  await sleep(150);
  const deleted = call("DELETE", `/chatroom/${r.roomId}`, { token: me.token });
  await sleep(250);
  const [regenerated, saved] = await Promise.all([
    call("POST", `/chatroom/${r.roomId}/messages/${r.answeredReplyId}/regenerate`, {
      token: me.token,
    }),
    answer(r.pendingReplyId),
  ]);
  await held;
  return { deleted: (await deleted).status, regenerated: regenerated.status, saved: saved.status };
}

describe("DELETE /chatroom/:id racing the chatroom's replies", () => {
  it("deletes while a regenerate is written and a reply is saved, with no deadlock (no 503)", {
    // Five rounds of a 1 s hold; the embedded PGlite runs them one batch at a time (~12 s).
    timeout: 60_000,
  }, async () => {
    // On PostgreSQL the DELETE locks the chatroom row, then its messages (ON DELETE CASCADE).
    // A regenerate's batch locks the chatroom first too (its INSERT's foreign-key check), but
    // saving a reply locked the reply row first and the chatroom last: a DELETE already queued
    // on the chatroom then waited for the reply, the save for the chatroom (40P01, answered
    // 503). The embedded PGlite runs one batch at a time: there it passes either way; the
    // real-backend run of this file is where it showed.
    const outcomes = [];
    const rooms = [];
    // Two chatrooms at a time: each holds up to 4 of the local Neon's 10 pooled connections.
    for (let round = 0; round < 5; round++) {
      const pair = await Promise.all([busyRoom(), busyRoom()]);
      rooms.push(...pair);
      outcomes.push(...(await Promise.all(pair.map(raceDelete))));
    }
    for (const o of outcomes) {
      expect(o.deleted).toBe(204);
      // Written before the DELETE (then deleted with the room), or after it: the room is gone.
      expect([202, 404]).toContain(o.regenerated);
      // Saved before the DELETE, or the reply went with the room (404 until QStash gives up).
      expect([200, 404]).toContain(o.saved);
    }
    const left = await sql().query(
      "select count(*)::int as n from messages where chatroom_id = any($1)",
      [rooms.map((r) => r.roomId)],
    );
    expect(left[0]?.n).toBe(0);
  });
});
