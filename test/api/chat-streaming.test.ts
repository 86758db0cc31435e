import { describe, expect, it } from "vitest";
import { workerUrl } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  geminiCalls,
  geminiFault,
  getMessage,
  marker,
  newChatroom,
  parseSse,
  qstashMessages,
  remainingAfterOnePrompt,
  settledReply,
  streamPrompt,
} from "./chat-support.ts";

describe("POST /chatroom/:id/message with Accept: text/event-stream", () => {
  it("streams message, deltas and done, and saves the same reply the queued path would", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("stream");
    const res = await streamPrompt(me, room.id, content);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    expect(res.headers.get("ratelimit-remaining")).toBe("4");
    const events = parseSse(await res.text());

    expect(events[0]?.event).toBe("message");
    expect(events[0]?.data.message).toMatchObject({ role: "user", content, status: "complete" });
    const deltas = events.filter((e) => e.event === "delta");
    expect(deltas.length).toBeGreaterThan(1);
    const last = events.at(-1);
    expect(last?.event).toBe("done");
    expect(last?.data.reply).toMatchObject({ role: "model", status: "complete" });
    expect(last?.data.reply.content).toBe(deltas.map((d) => d.data.text).join(""));
    expect(last?.data.reply.usage.reply_tokens).toBeGreaterThan(0);

    const saved = await getMessage(me, room.id, last?.data.reply.id);
    expect(saved).toEqual(last?.data.reply);
    expect((await geminiCalls(content)).map((c) => c.method)).toEqual(["streamGenerateContent"]);
    expect(await qstashMessages(content)).toEqual([]);
  });

  it("ends with an error event for a SAFETY block, saves the failure and refunds the prompt", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("stream-safety");
    await geminiFault({ match: content, kind: "safety", times: 1 });
    const events = parseSse(await (await streamPrompt(me, room.id, content)).text());
    const last = events.at(-1);
    expect(last?.event).toBe("error");
    expect(last?.data.error.code).toBe("safety_blocked");
    expect(last?.data.reply).toMatchObject({ status: "failed", error: "safety_blocked" });
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(4);
  });

  it("ends with an error event when Gemini answers 500", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("stream-500");
    await geminiFault({ match: content, kind: "server_error", times: 1 });
    const events = parseSse(await (await streamPrompt(me, room.id, content)).text());
    expect(events.map((e) => e.event)).toEqual(["message", "error"]);
    expect(events[1]?.data.reply).toMatchObject({ status: "failed", error: "upstream_error" });
  });

  it("finishes and saves the reply when the client disconnects mid-stream", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("stream-gone");
    await geminiFault({ match: content, kind: "slow", times: 1, ms: 1500 });
    const abort = new AbortController();
    const res = await streamPrompt(me, room.id, content, abort.signal);
    const reader = res.body?.getReader();
    const first = await reader?.read();
    const firstEvent = parseSse(new TextDecoder().decode(first?.value))[0];
    expect(firstEvent?.event).toBe("message");
    abort.abort();

    const detail = await fetch(`${workerUrl}/chatroom/${room.id}`, {
      headers: { authorization: `Bearer ${me.token}` },
    });
    const body = (await detail.json()) as {
      messages: { id: string; role: string; status: string }[];
    };
    const reply = body.messages.find((m) => m.role === "model");
    expect(reply?.status).toBe("pending");
    const saved = await settledReply(me, room.id, reply?.id as string);
    expect(saved.status).toBe("complete");
    expect(saved.content).toContain(content);
  });
});
