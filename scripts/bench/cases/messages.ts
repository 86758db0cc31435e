// Messages: history, one message, prompts (queued and streamed), regenerate, cancel.
import { randomUUID } from "node:crypto";
import { type Harness, must } from "../harness.ts";
import { type Case, expect, repeat, same } from "./case.ts";

export function messagesCases({
  call,
  pendingReplies,
  setLatency,
  currentLatency,
  session,
  chatroom,
  settle,
  exchange,
}: Harness): Case[] {
  return [
    {
      label: "GET /chatroom/:id/messages",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        await exchange(s, room);
        return same(n, () =>
          expect(200, "messages")(call("GET", `/chatroom/${room}/messages`, { token: s.token })),
        );
      },
    },
    {
      label: "GET /chatroom/:id/messages/:message_id",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        const reply = await exchange(s, room);
        return same(n, () =>
          expect(
            200,
            "message",
          )(call("GET", `/chatroom/${room}/messages/${reply}`, { token: s.token })),
        );
      },
    },
    {
      label: "POST /chatroom/:id/message",
      target: 2,
      note: "queued (202); each reply is settled, untimed, before the next prompt",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        await exchange(s, room);
        return repeat(n, () => async () => {
          const content = `bench ${randomUUID()}`;
          const r = await expect(
            202,
            "prompt",
          )(call("POST", `/chatroom/${room}/message`, { token: s.token, body: { content } }));
          // Settled outside the measured time, so QStash callbacks never overlap a measurement.
          const latency = currentLatency();
          await setLatency(0);
          await settle(content);
          await setLatency(latency);
          return r;
        });
      },
    },
    {
      label: "POST /chatroom/:id/messages/:message_id/regenerate",
      target: 2,
      note: "queued (202); each new reply is settled, untimed, before the next",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        const content = `bench ${randomUUID()}`;
        must(
          await call("POST", `/chatroom/${room}/message`, { token: s.token, body: { content } }),
          202,
          "prompt",
        );
        await settle(content);
        let last = (await call("GET", `/chatroom/${room}`, { token: s.token })).body.messages.at(-1)
          .id as string;
        return repeat(n, () => async () => {
          const r = await expect(
            202,
            "regenerate",
          )(call("POST", `/chatroom/${room}/messages/${last}/regenerate`, { token: s.token }));
          last = r.body.reply.id;
          const latency = currentLatency();
          await setLatency(0);
          // Published after the response: wait for the reply itself, not only QStash's queue
          // (a pending reply cannot be regenerated).
          for (let i = 0; i < 300; i++) {
            const m = await call("GET", `/chatroom/${room}/messages/${last}`, { token: s.token });
            if (m.body.message?.status !== "pending") break;
            await settle(content);
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          await setLatency(latency);
          return r;
        });
      },
    },
    {
      label: "POST /chatroom/:id/messages/:message_id/cancel",
      target: 3,
      note: "a pending queued reply: session check, one batch, then the quota refund",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        // Publishing fails for these prompts, so their replies stay pending until cancelled.
        const replies = await pendingReplies(s, room, n);
        return replies.map(
          (id) => () =>
            expect(
              200,
              "cancel",
            )(call("POST", `/chatroom/${room}/messages/${id}/cancel`, { token: s.token })),
        );
      },
    },
    {
      label: "POST /chatroom/:id/message (SSE, until the stream ends)",
      note: "includes Gemini's streamGenerateContent and saving the reply",
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        return repeat(
          n,
          () => () =>
            expect(200, "sse", (r) => (r.text.includes("event: done") ? null : "no done event"))(
              call("POST", `/chatroom/${room}/message`, {
                token: s.token,
                body: { content: `bench ${randomUUID()}` },
                headers: { accept: "text/event-stream" },
              }),
            ),
        );
      },
    },
  ];
}
