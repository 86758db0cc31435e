import { describe, expect, it } from "vitest";
import { call, waitFor, workerUrl } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  createProSession,
  geminiCalls,
  geminiFault,
  marker,
  newChatroom,
  qstashMessages,
  sendPrompt,
  streamPrompt,
} from "./chat-support.ts";

interface Event {
  id: number | null;
  event: string;
  // biome-ignore lint/suspicious/noExplicitAny: event payloads are asserted field by field.
  data: any;
}

/** Reads an SSE response event by event, keeping each event's `id:`. */
function readEvents(res: Response) {
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  const events: Event[] = [];
  let buffer = "";
  let ended = false;
  const done = (async () => {
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buffer += decoder.decode(value, { stream: true });
        let cut = buffer.indexOf("\n\n");
        while (cut >= 0) {
          const lines = buffer
            .slice(0, cut)
            .split("\n")
            .filter((l) => !l.startsWith(":"));
          buffer = buffer.slice(cut + 2);
          // A heartbeat (an SSE comment) is no event.
          if (lines.length === 0) {
            cut = buffer.indexOf("\n\n");
            continue;
          }
          const id = lines.find((l) => l.startsWith("id: "))?.slice(4);
          events.push({
            id: id === undefined ? null : Number(id),
            event: lines.find((l) => l.startsWith("event: "))?.slice(7) ?? "message",
            data: JSON.parse(lines.find((l) => l.startsWith("data: "))?.slice(6) ?? "null"),
          });
          cut = buffer.indexOf("\n\n");
        }
      }
    } catch {
      // Aborted by the test.
    }
    ended = true;
  })();
  return {
    events,
    done,
    ended: () => ended,
    until: (test: (events: Event[]) => boolean, timeoutMs = 15_000) =>
      waitFor(
        async () => {
          if (test(events)) return true;
          if (ended) throw new Error(`stream ended first: ${JSON.stringify(events)}`);
          return false;
        },
        timeoutMs,
        5,
      ),
  };
}

function follow(
  session: TestSession,
  roomId: string,
  replyId: string,
  lastEventId?: string,
  signal?: AbortSignal,
) {
  return fetch(`${workerUrl}/chatroom/${roomId}/messages/${replyId}/stream`, {
    headers: {
      authorization: `Bearer ${session.token}`,
      accept: "text/event-stream",
      ...(lastEventId === undefined ? {} : { "last-event-id": lastEventId }),
    },
    signal,
  });
}

const deltas = (events: Event[]) => events.filter((e) => e.event === "delta");
const TERMINAL = new Set(["done", "error", "cancelled"]);
const terminal = (events: Event[]) => events.find((e) => TERMINAL.has(e.event));

/** Starts a streamed prompt whose 4 chunks arrive `paceMs` apart; returns its reader and ids. */
async function startStream(session: TestSession, roomId: string, label: string, paceMs: number) {
  const content = `${marker(label)} tell me a long story about cats and dogs and birds`;
  await geminiFault({ match: content, kind: "slow_stream", times: 1, ms: paceMs });
  const abort = new AbortController();
  const res = await streamPrompt(session, roomId, content, abort.signal);
  expect(res.status).toBe(200);
  const stream = readEvents(res);
  await stream.until((e) => e.some((x) => x.event === "message"));
  const message = stream.events.find((e) => e.event === "message");
  // The reply's id is in Location (the `message` event carries the prompt).
  const location = res.headers.get("location") ?? "";
  return {
    content,
    abort,
    stream,
    promptId: message?.data.message.id as string,
    replyId: location.split("/").at(-1) as string,
  };
}

describe("GET /chatroom/:id/messages/:message_id/stream (resume)", () => {
  it("live deltas carry ids 1, 2, … and the reply's text is their concatenation", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const s = await startStream(me, room.id, "ids", 0);
    await s.stream.done;
    const ds = deltas(s.stream.events);
    expect(ds.map((d) => d.id)).toEqual(ds.map((_, i) => i + 1));
    expect(terminal(s.stream.events)?.event).toBe("done");
    expect(terminal(s.stream.events)?.data.reply.content).toBe(ds.map((d) => d.data.text).join(""));
  });

  it("resumes after a disconnect at every point of a stream: no delta lost or repeated", async () => {
    // Disconnect after k deltas, for every k from 0 (only the prompt seen) to 4 (all of them,
    // not yet `done`). The generation outlives its client, so the resumed stream is the same one.
    // A user each: five follows at once would exceed MAX_FOLLOWS_PER_USER (4).
    const runs = await Promise.all(
      [0, 1, 2, 3, 4].map(async (k) => {
        const me = await createProSession();
        // A chatroom each: a prompt in another's history would match its Gemini call lookups.
        const room = await newChatroom(me);
        const s = await startStream(me, room.id, `resume-${k}`, 300);
        if (k > 0) await s.stream.until((e) => deltas(e).length >= k);
        s.abort.abort();
        const seen = deltas(s.stream.events).slice(0, k);
        expect(terminal(s.stream.events)).toBeUndefined();
        const last = seen.at(-1)?.id;
        const res = await follow(
          me,
          room.id,
          s.replyId,
          last === undefined ? undefined : `${last}`,
        );
        expect(res.status).toBe(200);
        expect(res.headers.get("content-type")).toContain("text/event-stream");
        const resumed = readEvents(res);
        await resumed.done;
        return { k, s, seen, resumed: resumed.events };
      }),
    );
    for (const { k, s, seen, resumed } of runs) {
      const end = terminal(resumed);
      expect(end?.event, `k=${k}`).toBe("done");
      expect(resumed.at(-1)).toBe(end);
      const all = [...seen, ...deltas(resumed)];
      expect(
        all.map((d) => d.id),
        `k=${k}`,
      ).toEqual([1, 2, 3, 4]);
      expect(all.map((d) => d.data.text).join(""), `k=${k}`).toBe(end?.data.reply.content);
      expect(end?.data.reply).toMatchObject({ id: s.replyId, status: "complete" });
      // One generation: the stream ran on after its client left; nothing went to the queue.
      expect((await geminiCalls(s.content)).map((c) => c.method)).toEqual([
        "streamGenerateContent",
      ]);
      expect(await qstashMessages(s.content, "publish")).toEqual([]);
    }
  });

  it("a second device attaches to a live reply and gets every delta, then done", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const s = await startStream(me, room.id, "second-device", 400);
    await s.stream.until((e) => deltas(e).length >= 1);
    const res = await follow(me, room.id, s.replyId);
    expect(res.status).toBe(200);
    const other = readEvents(res);
    await Promise.all([s.stream.done, other.done]);
    for (const events of [s.stream.events, other.events]) {
      expect(deltas(events).map((d) => d.id)).toEqual([1, 2, 3, 4]);
      expect(terminal(events)?.event).toBe("done");
    }
    expect(deltas(other.events).map((d) => d.data.text)).toEqual(
      deltas(s.stream.events).map((d) => d.data.text),
    );
    expect(terminal(other.events)?.data.reply).toEqual(terminal(s.stream.events)?.data.reply);
  });

  it("a finished reply answers one done event with the whole message", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const s = await startStream(me, room.id, "finished", 0);
    await s.stream.done;
    const full = terminal(s.stream.events)?.data.reply;
    for (const lastEventId of [undefined, "0", "2", "99"]) {
      const res = await follow(me, room.id, s.replyId, lastEventId);
      expect(res.status).toBe(200);
      const r = readEvents(res);
      await r.done;
      expect(r.events.map((e) => e.event)).toEqual(["done"]);
      expect(r.events[0]?.data.reply).toEqual(full);
    }
  });

  it("follows a queued reply and answers done once its text exists", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("queued-follow");
    await geminiFault({ match: content, kind: "slow", times: 1, ms: 1_500 });
    const sent = await sendPrompt(me, room.id, content);
    expect(sent.status).toBe(202);
    const replyId = sent.body.reply.id as string;
    const res = await follow(me, room.id, replyId);
    expect(res.status).toBe(200);
    const r = readEvents(res);
    await r.done;
    expect(r.events.map((e) => e.event)).toEqual(["done"]);
    expect(r.events[0]?.data.reply).toMatchObject({ id: replyId, status: "complete" });
    expect(r.events[0]?.data.reply.content).toContain(content);
  });

  it("an attached client sees a cancel: the cancelled event with the text streamed so far", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const s = await startStream(me, room.id, "cancel-attached", 1_000);
    await s.stream.until((e) => deltas(e).length >= 1);
    const res = await follow(me, room.id, s.replyId, "0");
    const other = readEvents(res);
    await other.until((e) => deltas(e).length >= 1);
    const cancelled = await call("POST", `/chatroom/${room.id}/messages/${s.replyId}/cancel`, {
      token: me.token,
    });
    expect(cancelled.status).toBe(200);
    await Promise.all([s.stream.done, other.done]);
    const end = terminal(other.events);
    expect(end?.event).toBe("cancelled");
    expect(end?.data.reply.status).toBe("cancelled");
    expect(end?.data.reply.content).toBe(
      deltas(other.events)
        .map((d) => d.data.text)
        .join(""),
    );
    expect(terminal(s.stream.events)?.event).toBe("cancelled");
  });

  it("returns 404 for an unknown, foreign, malformed or non-reply id", async () => {
    const me = await createSession();
    const them = await createSession();
    const room = await newChatroom(me);
    const s = await startStream(me, room.id, "404s", 0);
    await s.stream.done;
    const promptId = s.promptId;
    const unknown = "01936f4e-1c2d-7b3a-9f00-123456789abc";
    const cases: [TestSession, string, string][] = [
      [them, room.id, s.replyId],
      [me, room.id, unknown],
      [me, unknown, s.replyId],
      [me, room.id, "not-an-id"],
      [me, room.id, promptId],
    ];
    for (const [who, roomId, id] of cases) {
      const res = await follow(who, roomId, id);
      expect(res.status, `${roomId}/${id}`).toBe(404);
      const body = (await res.json()) as { error: { code: string } };
      expect(body.error.code).toBe("not_found");
    }
    const anonymous = await fetch(`${workerUrl}/chatroom/${room.id}/messages/${s.replyId}/stream`);
    expect(anonymous.status).toBe(401);
  });

  it("a Last-Event-ID that is not a non-negative integer is 400", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const s = await startStream(me, room.id, "bad-id", 0);
    await s.stream.done;
    for (const bad of ["abc", "-1", "1.5", "12345678901"]) {
      const res = await follow(me, room.id, s.replyId, bad);
      expect(res.status, bad).toBe(400);
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("invalid_request");
      expect(JSON.stringify(body.error).toLowerCase()).toContain("last-event-id");
    }
  });
});

describe("GET …/stream limits (attacker review, findings 2 and 5)", () => {
  /** A queued reply Gemini answers only after `ms`: it stays pending while the test runs. */
  async function slowReply(me: TestSession, label: string, ms: number) {
    const room = await newChatroom(me);
    const content = marker(label);
    await geminiFault({ match: content, kind: "slow", times: 1, ms });
    const sent = await sendPrompt(me, room.id, content);
    expect(sent.status).toBe(202);
    return { roomId: room.id, replyId: sent.body.reply.id as string };
  }

  it("a 5th concurrent attach of one user is 429 with Retry-After; closing one frees a place", async () => {
    const me = await createSession();
    const { roomId, replyId } = await slowReply(me, "follow-cap", 20_000);
    const aborts = [0, 1, 2, 3].map(() => new AbortController());
    const open = await Promise.all(
      aborts.map((a) => follow(me, roomId, replyId, undefined, a.signal)),
    );
    expect(open.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    const readers = open.map((r) => readEvents(r));
    const fifth = await follow(me, roomId, replyId);
    expect(fifth.status).toBe(429);
    expect(Number(fifth.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(((await fifth.json()) as { error: { code: string } }).error.code).toBe("rate_limited");
    // Another user is not affected by this one's follows.
    const other = await createSession();
    const theirs = await slowReply(other, "follow-cap-other", 2_000);
    const ok = await follow(other, theirs.roomId, theirs.replyId);
    expect(ok.status).toBe(200);
    await ok.body?.cancel();

    // A client that goes away releases its place (the loop ends on the cancelled body).
    aborts[0]?.abort();
    await readers[0]?.done;
    const again = await waitFor(
      async () => {
        const res = await follow(me, roomId, replyId);
        if (res.status === 200) return res;
        await res.body?.cancel();
        return null;
      },
      8_000,
      200,
    );
    expect(again.status).toBe(200);
    await again.body?.cancel();
    for (const a of aborts) a.abort();
  });

  it("a follow ends with an unauthorized error event within ~6 s of its session's logout", async () => {
    const me = await createSession();
    const { roomId, replyId } = await slowReply(me, "follow-logout", 20_000);
    const res = await follow(me, roomId, replyId);
    expect(res.status).toBe(200);
    const r = readEvents(res);
    const out = await call("POST", "/auth/logout", {
      token: me.token,
      body: { refresh_token: me.refresh_token },
    });
    expect(out.status).toBe(204);
    const loggedOutAt = Date.now();
    await r.done;
    expect(Date.now() - loggedOutAt).toBeLessThan(7_000);
    expect(r.events.map((e) => e.event)).toEqual(["error"]);
    expect(r.events[0]?.data.error.code).toBe("unauthorized");
  });
});
