import { afterEach, describe, expect, it } from "vitest";
import { call, control } from "../../support/api.ts";
import {
  createProSession,
  geminiFault,
  getMessage,
  marker,
  newChatroom,
  parseSse,
  sendPrompt,
  streamPrompt,
} from "../chat-support.ts";

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

describe("a streamed reply cancelled while the database is down", () => {
  // Soak finding (issue 19): the stream's save after a cancel read the row once; Neon down at
  // that moment ended the stream with an error, and the cancelled reply kept neither the text
  // it had sent nor a refund, so the quota counted a prompt the books showed as refunded.
  it("keeps the text it sent once the database is back, and counts the prompt once", async () => {
    const pro = await createProSession();
    const room = await newChatroom(pro);
    const content = marker("cancel-outage");
    // Four pieces 500 ms apart: the cancel lands after the first.
    await geminiFault({ match: content, kind: "slow_stream", times: 1, ms: 500 });
    const res = await streamPrompt(pro, room.id, content);
    expect(res.status).toBe(200);
    const remaining = Number(res.headers.get("ratelimit-remaining"));
    const replyId = (res.headers.get("location") ?? "").split("/").at(-1) as string;
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let text = "";
    const readUntil = async (done: (t: string) => boolean) => {
      while (!done(text)) {
        const { value, done: end } = await reader.read();
        if (end) return;
        text += decoder.decode(value, { stream: true });
      }
    };
    await readUntil((t) => t.includes("event: delta"));

    const cancelled = await call("POST", `/chatroom/${room.id}/messages/${replyId}/cancel`, {
      token: pro.token,
    });
    expect(cancelled.status).toBe(200);
    // Neon goes down: the stream's cancel check and then its save fail until it is back.
    await control("neon/fault", { mode: "down" });
    const deltas = () =>
      parseSse(text.slice(0, text.lastIndexOf("\n\n") + 2)).filter((e) => e.event === "delta")
        .length;
    await readUntil((t) => deltas() >= 4 || /event: (cancelled|error|done)/.test(t));
    // Down a while after the stream's last piece, when its save runs.
    await new Promise((r) => setTimeout(r, 1_000));
    await control("neon/fault", { mode: "none" });
    await readUntil(() => false);

    const events = parseSse(text);
    const sent = events
      .filter((e) => e.event === "delta")
      .map((e) => (e.data as { text: string }).text)
      .join("");
    expect(sent).not.toBe("");
    expect(events.at(-1)?.event).toBe("cancelled");
    const saved = await getMessage(pro, room.id, replyId);
    expect(saved.status).toBe("cancelled");
    expect(saved.content).toBe(sent);
    // Text was sent, so the prompt counts: once in the ledger, and not refunded.
    const usage = await call("GET", "/usage", { token: pro.token });
    expect(usage.body.days.at(-1).prompts).toBe(1);
    const next = await sendPrompt(pro, room.id, marker("next"));
    expect(Number(next.headers.get("ratelimit-remaining"))).toBe(remaining - 1);
  });
});
