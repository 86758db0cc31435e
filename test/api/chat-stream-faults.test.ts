import { describe, expect, it } from "vitest";
import { call, control, waitFor } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  geminiCalls,
  geminiFault,
  getMessage,
  marker,
  newChatroom,
  parseSse,
  qstashMessages,
  type SseEvent,
  settledReply,
  sql,
  streamPrompt,
} from "./chat-support.ts";

async function usedToday(session: TestSession): Promise<number> {
  const res = await call("GET", "/subscription/status", { token: session.token });
  expect(res.status).toBe(200);
  return res.body.usage.used_today as number;
}

describe("streamed replies that fail after delivering text keep it and count", () => {
  it("8 streamed Basic prompts that deliver text then fail: used_today 5, the rest refused", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const tag = marker("stream-escape");
    await geminiFault({ match: tag, kind: "stream_error" });
    const statuses: number[] = [];
    const replies: SseEvent[] = [];
    for (let i = 0; i < 8; i++) {
      const res = await streamPrompt(me, room.id, `${tag} prompt number ${i} with some words`);
      statuses.push(res.status);
      if (res.status !== 200) {
        const body = (await res.json()) as { error: { code: string } };
        expect(body.error.code).toBe("daily_limit_reached");
        continue;
      }
      const events = parseSse(await res.text());
      expect(events.some((e) => e.event === "delta")).toBe(true);
      const last = events.at(-1) as SseEvent;
      expect(last.event).toBe("error");
      replies.push(last);
    }
    expect(statuses).toEqual([200, 200, 200, 200, 200, 429, 429, 429]);
    expect(await usedToday(me)).toBe(5);
    for (const r of replies) {
      // The text the client saw stays on the failed reply.
      expect(r.data.reply).toMatchObject({ status: "failed", error: "upstream_error" });
      expect(r.data.reply.content).toMatch(/^Echo: /);
    }
    await control(`gemini/faults?match=${encodeURIComponent(tag)}`, undefined, "DELETE");
  });

  it("a late SAFETY stop after text: failed safety_blocked, text kept, prompt counted", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("late-safety");
    await geminiFault({ match: content, kind: "late_safety", times: 1 });
    const res = await streamPrompt(me, room.id, `${content} tell me more about it`);
    const events = parseSse(await res.text());
    const last = events.at(-1) as SseEvent;
    expect(last.event).toBe("error");
    expect(last.data.reply).toMatchObject({
      status: "failed",
      error: "safety_blocked",
      finish_reason: "SAFETY",
    });
    const deltas = events.filter((e) => e.event === "delta").map((e) => e.data.text);
    expect(last.data.reply.content).toBe(deltas.join(""));
    expect(await usedToday(me)).toBe(1);
  });

  it("a stream cut without a finishReason is not complete: failed, text kept, counted", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("cut");
    await geminiFault({ match: content, kind: "stream_cut", times: 1 });
    const res = await streamPrompt(me, room.id, `${content} a reply long enough to cut`);
    const events = parseSse(await res.text());
    const last = events.at(-1) as SseEvent;
    expect(last.event).toBe("error");
    expect(last.data.reply).toMatchObject({ status: "failed", error: "upstream_error" });
    expect(last.data.reply.content).toMatch(/^Echo: /);
    expect(await usedToday(me)).toBe(1);
  });

  it("a blocked prompt produces nothing: failed safety_blocked and refunded", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("blocked-prompt");
    await geminiFault({ match: content, kind: "blocked_prompt", times: 1 });
    const res = await streamPrompt(me, room.id, content);
    const events = parseSse(await res.text());
    expect(events.some((e) => e.event === "delta")).toBe(false);
    const last = events.at(-1) as SseEvent;
    expect(last.data.reply).toMatchObject({
      status: "failed",
      error: "safety_blocked",
      content: "",
    });
    expect(await usedToday(me)).toBe(0);
  });

  it("a 429 before any text is refunded (rate_limited)", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("stream-429");
    await geminiFault({ match: content, kind: "rate_limit", times: 1 });
    const res = await streamPrompt(me, room.id, content);
    const last = parseSse(await res.text()).at(-1) as SseEvent;
    expect(last.data.reply).toMatchObject({ status: "failed", error: "rate_limited" });
    expect(await usedToday(me)).toBe(0);
  });
});

describe("a streamed reply survives its client", () => {
  it("a client that disconnects and does not come back: after the grace the queue finishes the reply", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("gone-after-delta");
    // Chunks 2.5 s apart: the stream would end ~7.5 s after the disconnect, well past the test
    // stack's 3 s STREAM_GRACE_SECONDS, so the generation is handed to the queue.
    await geminiFault({ match: content, kind: "slow_stream", times: 1, ms: 2_500 });
    const abort = new AbortController();
    const res = await streamPrompt(me, room.id, `${content} a long answer please`, abort.signal);
    const reader = res.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    let seen = "";
    let replyId = "";
    while (!seen.includes("event: delta")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += new TextDecoder().decode(value);
      // The first block is the `message` event (the prompt); deltas follow with `id:` lines.
      const message = parseSse(seen.slice(0, seen.indexOf("\n\n") + 2)).find(
        (e) => e.event === "message",
      );
      if (message && !replyId) replyId = message.data.message.id;
    }
    expect(seen).toContain("event: delta");
    abort.abort();

    const detail = await call("GET", `/chatroom/${room.id}`, { token: me.token });
    const reply = (detail.body.messages as { id: string; role: string }[]).find(
      (m) => m.role === "model",
    );
    expect(reply).toBeDefined();
    const saved = await settledReply(me, room.id, reply?.id as string);
    expect(saved.status).toBe("complete");
    expect(saved.content).toContain(content);
    expect(await getMessage(me, room.id, reply?.id as string)).toMatchObject({
      status: "complete",
      finish_reason: "STOP",
    });
    // The unfinished generation was handed to the queued path: one QStash job for this reply.
    const published = await qstashMessages(content, "publish");
    expect(published.map((p) => p.deduplication_id)).toEqual([reply?.id]);
    expect((await geminiCalls(content)).map((c) => c.method)).toEqual([
      "streamGenerateContent",
      "generateContent",
    ]);
    expect(await usedToday(me)).toBe(1);
  });
});

/** Streams `content`, reads its first delta, drops the connection; the delta and reply id. */
async function dropAfterFirstDelta(me: TestSession, roomId: string, content: string) {
  const abort = new AbortController();
  const res = await streamPrompt(me, roomId, content, abort.signal);
  expect(res.status).toBe(200);
  const replyId = (res.headers.get("location") ?? "").split("/").at(-1) as string;
  const reader = res.body?.getReader() as ReadableStreamDefaultReader<Uint8Array>;
  let seen = "";
  const events = () => parseSse(seen.slice(0, seen.lastIndexOf("\n\n") + 2));
  while (!events().some((e) => e.event === "delta")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += new TextDecoder().decode(value);
  }
  const first = events().find((e) => e.event === "delta");
  expect(first).toBeDefined();
  abort.abort();
  return { replyId, firstText: first?.data.text as string };
}

describe("a streamed reply handed to the queue still counts (attacker review, finding 1)", () => {
  it("drop after one delta, the queued job then fails: failed with the delivered text, counted", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("handoff-fail");
    await geminiFault({ match: content, kind: "slow_stream", times: 1, ms: 2_500 });
    await geminiFault({ match: content, kind: "server_error" });
    const { replyId, firstText } = await dropAfterFirstDelta(me, room.id, `${content} go on`);
    const saved = await settledReply(me, room.id, replyId, 30_000);
    expect(saved).toMatchObject({ status: "failed", error: "upstream_error" });
    expect(saved.content.startsWith(firstText)).toBe(true);
    expect(await usedToday(me)).toBe(1);
    await control(`gemini/faults?match=${encodeURIComponent(content)}`, undefined, "DELETE");
  });

  it("drop after one delta, wait for the hand-off, cancel: used_today stays 1 and the text stays", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("handoff-cancel");
    // The stream paces its chunks 2.5 s apart (the disconnect is noticed at the next write, and
    // the rest outlasts the 3 s grace), and the queued job that takes over is slow, so the
    // cancel lands while the reply is a queued one.
    await geminiFault({ match: content, kind: "slow_stream", times: 1, ms: 2_500 });
    await geminiFault({ match: content, kind: "slow", times: 1, ms: 8_000 });
    const { replyId, firstText } = await dropAfterFirstDelta(
      me,
      room.id,
      `${content} a long answer please`,
    );

    const db = sql();
    await waitFor(async () => {
      const rows = await db.query("select job_id from messages where id = $1", [replyId]);
      const jobId = (rows as { job_id: string | null }[])[0]?.job_id;
      return jobId !== undefined && jobId !== null && jobId !== "stream";
    }, 15_000);

    const cancelled = await call("POST", `/chatroom/${room.id}/messages/${replyId}/cancel`, {
      token: me.token,
    });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.message.status).toBe("cancelled");
    expect(cancelled.body.message.content.startsWith(firstText)).toBe(true);
    expect(await getMessage(me, room.id, replyId)).toMatchObject({
      status: "cancelled",
      content: cancelled.body.message.content,
    });
    expect(await usedToday(me)).toBe(1);
    // The usage ledger agrees with the quota: the cancelled reply that kept text is one prompt.
    expect(await ledgerPromptsToday(me)).toBe(1);
  });
});

/** Today's prompts in the usage ledger (`GET /usage`). */
async function ledgerPromptsToday(me: TestSession): Promise<number> {
  const res = await call("GET", "/usage", { token: me.token });
  expect(res.status).toBe(200);
  return res.body.days.at(-1).prompts as number;
}
