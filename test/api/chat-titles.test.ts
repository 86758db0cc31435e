import { describe, expect, it } from "vitest";
import { call, control, waitFor } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  flushQStash,
  geminiCalls,
  geminiFault,
  marker,
  newChatroom,
  parseSse,
  qstashMessages,
  sendPrompt,
  settledReply,
  streamPrompt,
  warmList,
} from "./chat-support.ts";

async function untitledRoom(session: TestSession) {
  const res = await call("POST", "/chatroom", { token: session.token, body: {} });
  expect(res.status).toBe(201);
  expect(res.body.chatroom).toMatchObject({ title: "New chat", title_source: "auto" });
  return res.body.chatroom as { id: string };
}

async function chatroom(session: TestSession, id: string) {
  const res = await call("GET", `/chatroom/${id}`, { token: session.token });
  expect(res.status).toBe(200);
  return res.body.chatroom as { title: string; title_source: string };
}

async function usedToday(session: TestSession): Promise<number> {
  const res = await call("GET", "/subscription/status", { token: session.token });
  expect(res.status).toBe(200);
  return res.body.usage.used_today as number;
}

/** The local Gemini echoes the title job's conversation; its first line is the title. */
const expectedTitle = (content: string) => `Echo: User: ${content}`;

describe("auto titles", () => {
  it("titles a chatroom created without a title from its first exchange, without using quota", async () => {
    const me = await createSession();
    const room = await untitledRoom(me);
    await warmList(me);
    const content = marker("title");
    const sent = await sendPrompt(me, room.id, content);
    expect(sent.status).toBe(202);
    expect((await settledReply(me, room.id, sent.body.reply.id)).status).toBe("complete");

    const titled = await waitFor(async () => {
      const r = await chatroom(me, room.id);
      return r.title !== "New chat" && r;
    }, 15_000);
    expect(titled).toMatchObject({ title: expectedTitle(content), title_source: "auto" });
    // The list cache was invalidated: the cached page shows the new title.
    const list = await call("GET", "/chatroom", { token: me.token });
    const listed = (list.body.chatrooms as { id: string; title: string }[]).find(
      (r) => r.id === room.id,
    );
    expect(listed?.title).toBe(expectedTitle(content));

    // One cheap Gemini call through the queue, with its own instruction, not counted as a prompt.
    const calls = await geminiCalls(`User: ${content}`);
    expect(calls.map((c) => c.method)).toEqual(["generateContent"]);
    const jobs = await qstashMessages(content, "publish");
    expect(jobs.map((j) => j.deduplication_id).sort()).toEqual(
      [sent.body.reply.id, `title-${room.id}`].sort(),
    );
    const titleJob = jobs.find((j) => j.deduplication_id === `title-${room.id}`);
    expect(JSON.parse(titleJob?.body ?? "{}").systemInstruction.parts[0].text).toContain(
      "You name conversations",
    );
    expect(await usedToday(me)).toBe(1);

    // Only the first exchange names the chatroom.
    const second = marker("second");
    const again = await sendPrompt(me, room.id, second);
    await settledReply(me, room.id, again.body.reply.id);
    await flushQStash(second);
    expect(await geminiCalls(`User: ${second}`)).toEqual([]);
    expect((await chatroom(me, room.id)).title).toBe(expectedTitle(content));
  });

  it("titles a chatroom whose first reply was streamed", async () => {
    const me = await createSession();
    const room = await untitledRoom(me);
    const content = marker("title-stream");
    const events = parseSse(await (await streamPrompt(me, room.id, content)).text());
    expect(events.at(-1)?.event).toBe("done");
    const titled = await waitFor(async () => {
      const r = await chatroom(me, room.id);
      return r.title !== "New chat" && r;
    }, 15_000);
    expect(titled.title).toBe(expectedTitle(content));
  });

  it("never retitles a chatroom whose title the user set", async () => {
    const me = await createSession();
    const room = await newChatroom(me, "My own title");
    const content = marker("user-title");
    const sent = await sendPrompt(me, room.id, content);
    await settledReply(me, room.id, sent.body.reply.id);
    await flushQStash(content);
    expect((await qstashMessages(content, "publish")).map((j) => j.deduplication_id)).toEqual([
      sent.body.reply.id,
    ]);
    expect(await chatroom(me, room.id)).toMatchObject({
      title: "My own title",
      title_source: "user",
    });
  });

  it("a failing title job leaves 'New chat' and nothing else breaks", async () => {
    const me = await createSession();
    const room = await untitledRoom(me);
    const content = marker("title-fails");
    // Every attempt of the title job fails (its conversation text is only in that request).
    await geminiFault({ match: `User: ${content}`, kind: "server_error" });
    const sent = await sendPrompt(me, room.id, content);
    const reply = await settledReply(me, room.id, sent.body.reply.id);
    expect(reply.status).toBe("complete");
    await flushQStash(content);
    const calls = await geminiCalls(`User: ${content}`);
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls.every((c) => c.status === 500)).toBe(true);
    expect(await chatroom(me, room.id)).toMatchObject({ title: "New chat", title_source: "auto" });
    expect(await usedToday(me)).toBe(1);
    // The chatroom still works.
    const next = await sendPrompt(me, room.id, marker("after"));
    expect(next.status).toBe(202);
    await control(
      `gemini/faults?match=${encodeURIComponent(`User: ${content}`)}`,
      undefined,
      "DELETE",
    );
  });

  it("a rename while the title job runs wins", async () => {
    const me = await createSession();
    const room = await untitledRoom(me);
    const content = marker("title-race");
    // The title job's Gemini call takes 2.5 s; the user renames in the meantime.
    await geminiFault({ match: `User: ${content}`, kind: "slow", times: 1, ms: 2_500 });
    const sent = await sendPrompt(me, room.id, content);
    await settledReply(me, room.id, sent.body.reply.id);
    const renamed = await call("PATCH", `/chatroom/${room.id}`, {
      token: me.token,
      body: { title: "Renamed by me" },
    });
    expect(renamed.status).toBe(200);
    const renamedAt = Date.now();
    await flushQStash(content);
    // The title job did run and answer; its conditional write found the user's title.
    const calls = await geminiCalls(`User: ${content}`);
    expect(calls.map((c) => c.status)).toEqual([200]);
    // …after the rename: the call answered 2.5 s after it started.
    expect(Date.parse((calls[0] as unknown as { at: string }).at) + 2_500).toBeGreaterThan(
      renamedAt,
    );
    expect(await chatroom(me, room.id)).toMatchObject({
      title: "Renamed by me",
      title_source: "user",
    });
  });
});
