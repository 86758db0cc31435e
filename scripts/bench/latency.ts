// Latencies a user feels beyond one request: (a) how long after the Gemini stand-in sends its
// first chunk the client holds its first SSE delta, and (b) how long after a QStash callback
// arrives the reply is visible to a poll. Both at vendor latency 0, on loopback.
import { randomUUID } from "node:crypto";
import { ms1, type Summary, summarize, table } from "../support/http.ts";
import type { Harness } from "./harness.ts";

export interface LatencyReport {
  /** Gemini stand-in's first chunk → client's first `event: delta`. */
  first_delta_ms: Summary;
  /** Client sends the prompt → client's first `event: delta` (context for the above). */
  prompt_to_first_delta_ms: Summary;
  /** Callback sent → its 200 (the reply saved). */
  callback_ms: Summary;
  /** Callback sent → the first poll that shows the reply complete. */
  callback_to_visible_ms: Summary;
  samples: number;
}

/** The stand-in records each call with `at` (ISO, whole ms) as it starts answering. */
async function geminiCallAt(h: Harness, match: string): Promise<number> {
  const res = await fetch(
    `${h.host.cloudUrl}/_control/gemini/calls?match=${encodeURIComponent(match)}`,
  );
  const body = (await res.json()) as { calls: { at: string; method: string }[] };
  const call = body.calls.find((c) => c.method === "streamGenerateContent");
  if (!call) throw new Error(`the Gemini stand-in recorded no stream for "${match}"`);
  return Date.parse(call.at);
}

/** Wall-clock now with sub-millisecond resolution (the stand-in runs in this process). */
const wallNow = () => performance.timeOrigin + performance.now();

async function streamedPrompt(h: Harness, token: string, room: string) {
  const content = `bench-stream ${randomUUID()}`;
  const started = wallNow();
  const res = await fetch(`${h.host.workerUrl}/chatroom/${room}/message`, {
    method: "POST",
    headers: {
      authorization: `Bearer ${token}`,
      "content-type": "application/json",
      accept: "text/event-stream",
    },
    body: JSON.stringify({ content }),
  });
  if (res.status !== 200 || !res.body) throw new Error(`streamed prompt answered ${res.status}`);
  const decoder = new TextDecoder();
  let text = "";
  let firstDelta: number | undefined;
  const reader = res.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    text += decoder.decode(value, { stream: true });
    if (firstDelta === undefined && text.includes("event: delta")) firstDelta = wallNow();
  }
  if (firstDelta === undefined || !text.includes("event: done")) {
    throw new Error(`streamed prompt: no delta or no done event: ${text.slice(0, 300)}`);
  }
  const sentAt = await geminiCallAt(h, content);
  return { firstDelta: firstDelta - sentAt, promptToDelta: firstDelta - started };
}

const POLL_EVERY_MS = 5;

async function callbackToVisible(h: Harness, token: string, room: string, replyId: string) {
  const { path, opts } = await h.qstashCallback(replyId);
  const started = performance.now();
  let done = false;
  const callback = h.call("POST", path, opts).then((r) => {
    done = true;
    if (r.status !== 200) throw new Error(`callback answered ${r.status}: ${r.text}`);
    return performance.now() - started;
  });
  // Polls every POLL_EVERY_MS while the callback runs, and after it until the reply shows (back
  // to back, the polls would slow the callback they wait for on this 2-core box).
  let visible: number | undefined;
  for (let i = 0; visible === undefined; i++) {
    await new Promise((r) => setTimeout(r, POLL_EVERY_MS));
    const poll = await h.call("GET", `/chatroom/${room}/messages/${replyId}`, { token });
    if (poll.body.message?.status === "complete") visible = performance.now() - started;
    else if (done && i > 1000) throw new Error(`reply ${replyId} never became visible`);
  }
  return { callback: await callback, visible };
}

export async function measureLatencies(
  h: Harness,
  opts: { samples: number; warmup: number },
): Promise<LatencyReport> {
  const s = await h.session({ pro: true });
  const room = await h.chatroom(s);
  await h.setLatency(0);
  const first: number[] = [];
  const toDelta: number[] = [];
  for (let i = 0; i < opts.samples + opts.warmup; i++) {
    const r = await streamedPrompt(h, s.token, room);
    if (i >= opts.warmup) {
      first.push(r.firstDelta);
      toDelta.push(r.promptToDelta);
    }
  }
  const replies = await h.pendingReplies(s, room, opts.samples + opts.warmup);
  const callback: number[] = [];
  const visible: number[] = [];
  for (const [i, id] of replies.entries()) {
    const r = await callbackToVisible(h, s.token, room, id);
    if (i >= opts.warmup) {
      callback.push(r.callback);
      visible.push(r.visible);
    }
  }
  return {
    first_delta_ms: summarize(first),
    prompt_to_first_delta_ms: summarize(toDelta),
    callback_ms: summarize(callback),
    callback_to_visible_ms: summarize(visible),
    samples: opts.samples,
  };
}

export function printLatencies(r: LatencyReport): void {
  const row = (label: string, s: Summary) => [label, ms1(s.p50), ms1(s.p95), ms1(s.max)];
  console.log(
    `\nlatency (${r.samples} samples, vendor latency 0):\n${table(
      ["path", "p50", "p95", "max"],
      [
        row("Gemini's first chunk → client's first SSE delta", r.first_delta_ms),
        row("prompt sent → client's first SSE delta", r.prompt_to_first_delta_ms),
        row("QStash callback sent → its 200", r.callback_ms),
        row(
          `QStash callback sent → reply visible to a poll (every ${POLL_EVERY_MS} ms)`,
          r.callback_to_visible_ms,
        ),
      ],
    )}`,
  );
}
