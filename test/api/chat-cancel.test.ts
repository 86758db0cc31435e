import { describe, expect, it } from "vitest";
import { call, testEnv, waitFor } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  callbackBody,
  createProSession,
  geminiAnswer,
  geminiCalls,
  geminiFault,
  getMessage,
  marker,
  newChatroom,
  postCallback,
  qstashMessages,
  sendPrompt,
  settledReply,
  signQStash,
  sql,
  streamPrompt,
} from "./chat-support.ts";

function cancel(session: TestSession, roomId: string, messageId: string) {
  return call("POST", `/chatroom/${roomId}/messages/${messageId}/cancel`, {
    token: session.token,
  });
}

interface SseEvent {
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: event payloads are asserted field by field.
  data: any;
  at: number;
}

/** Opens a streamed prompt and reads its events as they arrive. */
async function openStream(session: TestSession, roomId: string, content: string) {
  const res = await streamPrompt(session, roomId, content);
  expect(res.status).toBe(200);
  const remaining = Number(res.headers.get("ratelimit-remaining"));
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: SseEvent[] = [];
  let buffer = "";
  let ended = false;
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf("\n\n");
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const lines = block.split("\n");
        const event = lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message";
        const data = lines.find((l) => l.startsWith("data: "))?.slice(6) ?? "null";
        events.push({ event, data: JSON.parse(data), at: Date.now() });
        cut = buffer.indexOf("\n\n");
      }
    }
    ended = true;
  })();
  return {
    events,
    remaining,
    ended: () => ended,
    done: pump,
    next: (name: string, timeoutMs = 10_000) =>
      waitFor<SseEvent>(async () => events.find((e) => e.event === name), timeoutMs, 10),
  };
}

describe("POST /chatroom/:id/messages/:message_id/cancel", () => {
  it("cancels a queued reply at QStash, refunds its prompt, and ignores a later callback", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const content = marker("queued-cancel");
    await geminiFault({ match: content, kind: "slow", times: 1, ms: 3_000 });
    const sent = await sendPrompt(pro, room.id, content);
    expect(sent.status).toBe(202);
    const remainingAfterPrompt = Number(sent.headers.get("ratelimit-remaining"));
    const replyId = sent.body.reply.id as string;
    // The job is published after the response; cancel once QStash holds it.
    await waitFor(async () => (await qstashMessages(content, "publish")).length === 1);

    const res = await cancel(pro, room.id, replyId);
    expect(res.status).toBe(200);
    expect(res.body.message).toMatchObject({ id: replyId, status: "cancelled", content: "" });
    const [job] = await qstashMessages(content, "publish");
    expect(job?.state).toBe("CANCELLED");

    // The prompt came back: the next prompt leaves as many as the cancelled one did.
    const next = await sendPrompt(pro, room.id, marker("after-cancel"));
    expect(Number(next.headers.get("ratelimit-remaining"))).toBe(remainingAfterPrompt);

    // A delivery already in flight reports back anyway: it changes nothing.
    const path = `/webhook/qstash/reply?reply_id=${replyId}`;
    const body = callbackBody(geminiAnswer("too late"));
    const late = await postCallback(
      path,
      body,
      await signQStash(`${testEnv.APP_URL}${path}`, body),
    );
    expect(late.status).toBe(200);
    const after = await getMessage(pro, room.id, replyId);
    expect(after).toMatchObject({ status: "cancelled", content: "" });

    // Cancelling twice answers the same 200.
    const again = await cancel(pro, room.id, replyId);
    expect(again.status).toBe(200);
    expect(again.body.message).toEqual(res.body.message);
  });

  it("answers 409 reply_finished for a finished reply and 404 for prompts and others' replies", async () => {
    const owner = await createSession();
    const room = await newChatroom(owner);
    const sent = await sendPrompt(owner, room.id, marker("finished"));
    const replyId = sent.body.reply.id as string;
    expect((await settledReply(owner, room.id, replyId)).status).toBe("complete");
    const finished = await cancel(owner, room.id, replyId);
    expect(finished.status).toBe(409);
    expect(finished.body.error.code).toBe("reply_finished");
    expect((await getMessage(owner, room.id, replyId)).status).toBe("complete");

    expect((await cancel(owner, room.id, sent.body.message.id)).status).toBe(404);
    expect((await cancel(owner, room.id, "not-an-id")).status).toBe(404);
    const stranger = await createSession();
    const foreign = await cancel(stranger, room.id, replyId);
    expect(foreign.status).toBe(404);
    expect(foreign.body.error.code).toBe("not_found");
    expect((await call("POST", `/chatroom/${room.id}/messages/${replyId}/cancel`)).status).toBe(
      401,
    );
  });

  it("stops a streaming reply within a second and keeps the text already sent", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const content = marker("stream-cancel");
    await geminiFault({ match: content, kind: "slow_stream", times: 1, ms: 1_500 });
    const stream = await openStream(pro, room.id, content);
    const first = await stream.next("delta");
    const replyId = (await stream.next("message")).data.message.id as string;
    // The reply id is the message's successor: read it from the chatroom.
    const detail = await call("GET", `/chatroom/${room.id}`, { token: pro.token });
    const reply = detail.body.messages.find(
      (m: { role: string; id: string }) => m.role === "model",
    ) as { id: string };
    expect(reply.id > replyId).toBe(true);

    const cancelledAt = Date.now();
    const res = await cancel(pro, room.id, reply.id);
    expect(res.status).toBe(200);
    expect(res.body.message.status).toBe("cancelled");
    const end = await stream.next("cancelled", 5_000);
    expect(end.at - cancelledAt).toBeLessThan(1_000);
    await stream.done;
    const deltas = stream.events.filter((e) => e.event === "delta").map((e) => e.data.text);
    expect(deltas.length).toBeLessThan(4);
    expect(deltas[0]).toBe(first.data.text);
    expect(stream.events.some((e) => e.event === "done")).toBe(false);

    const saved = await getMessage(pro, room.id, reply.id);
    expect(saved.status).toBe("cancelled");
    expect(saved.content).toBe(deltas.join(""));
    expect(end.data.reply.content).toBe(saved.content);
    // The cancel marked the refund owed (no text on the row yet); keeping the text took the mark
    // off, so the sweep will not give back a prompt that counts.
    const [mark] = await sql().query("select refund_owed_at from messages where id = $1", [
      reply.id,
    ]);
    expect(mark?.refund_owed_at).toBeNull();
    // Gemini was asked once, by the stream; nothing was handed to the queue.
    expect((await geminiCalls(content)).map((c) => c.method)).toEqual(["streamGenerateContent"]);
    expect(await qstashMessages(content, "publish")).toEqual([]);
    // Text was sent, so the prompt counts, in the usage ledger as in the quota.
    const usage = await call("GET", "/usage", { token: pro.token });
    expect(usage.body.days.at(-1).prompts).toBe(1);
    // The next prompt has one fewer left.
    const next = await sendPrompt(pro, room.id, marker("next"));
    expect(Number(next.headers.get("ratelimit-remaining"))).toBe(stream.remaining - 1);
  });

  it("settles a cancel racing the stream's completion one way or the other, never both", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    for (let i = 0; i < 4; i++) {
      const content = marker(`race-${i}`);
      const stream = await openStream(pro, room.id, content);
      const prompt = (await stream.next("message")).data.message as { id: string };
      const detail = await call("GET", `/chatroom/${room.id}/messages?limit=1`, {
        token: pro.token,
      });
      const reply = detail.body.messages[0] as { id: string; role: string };
      expect(reply.role).toBe("model");
      expect(reply.id > prompt.id).toBe(true);
      const res = await cancel(pro, room.id, reply.id);
      await stream.done;
      const saved = await getMessage(pro, room.id, reply.id);
      const names = stream.events.map((e) => e.event);
      if (res.status === 409) {
        expect(res.body.error.code).toBe("reply_finished");
        expect(saved.status).toBe("complete");
        expect(names.at(-1)).toBe("done");
      } else {
        expect(res.status).toBe(200);
        expect(saved.status).toBe("cancelled");
        expect(names.at(-1)).toBe("cancelled");
        const deltas = stream.events.filter((e) => e.event === "delta").map((e) => e.data.text);
        expect(saved.content).toBe(deltas.join(""));
      }
    }
  });
});
