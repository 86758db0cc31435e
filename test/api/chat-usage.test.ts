import { describe, expect, it } from "vitest";
import { call } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import {
  createProSession,
  geminiFault,
  marker,
  newChatroom,
  sendPrompt,
  settledReply,
} from "./chat-support.ts";

const today = () => new Date().toISOString().slice(0, 10);

describe("GET /usage", () => {
  it("reports settled replies from the ledger: prompts, input, output and thought tokens", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const replies: Awaited<ReturnType<typeof settledReply>>[] = [];
    for (const content of [marker("usage-a"), marker("usage-b")]) {
      const res = await sendPrompt(me, room.id, content);
      expect(res.status).toBe(202);
      replies.push(await settledReply(me, room.id, res.body.reply.id));
    }
    // A failure that produced nothing is refunded and is not in the ledger.
    const blocked = marker("usage-blocked");
    await geminiFault({ match: blocked, kind: "safety", times: 1 });
    const failed = await sendPrompt(me, room.id, blocked);
    expect((await settledReply(me, room.id, failed.body.reply.id)).status).toBe("failed");

    const res = await call("GET", "/usage", { token: me.token });
    expect(res.status).toBe(200);
    expect(res.body.days).toHaveLength(30);
    expect(res.body.days.at(-1).date).toBe(today());
    const sum = (f: "prompt_tokens" | "reply_tokens" | "thought_tokens") =>
      replies.reduce((n, r) => n + (r.usage?.[f] ?? 0), 0);
    const expected = {
      prompts: 2,
      input_tokens: sum("prompt_tokens"),
      output_tokens: sum("reply_tokens"),
      thought_tokens: sum("thought_tokens"),
    };
    expect(expected.thought_tokens).toBe(8);
    expect(res.body.days.at(-1)).toEqual({ date: today(), ...expected });
    expect(res.body.totals).toEqual(expected);
    expect(res.body.limits).toEqual({ prompts_per_day: 5 });
  });

  it("takes from/to, refuses more than 92 days or a reversed range with 400", async () => {
    const me = await createProSession();
    const ok = await call("GET", "/usage?from=2026-01-01&to=2026-04-02", { token: me.token });
    expect(ok.status).toBe(200);
    expect(ok.body.days).toHaveLength(92);
    expect(ok.body.limits).toEqual({ prompts_per_day: 1000 });
    const tooLong = await call("GET", "/usage?from=2026-01-01&to=2026-04-03", { token: me.token });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.error.code).toBe("invalid_request");
    const reversed = await call("GET", "/usage?from=2026-02-02&to=2026-02-01", { token: me.token });
    expect(reversed.status).toBe(400);
    const bad = await call("GET", "/usage?from=2026-02-30", { token: me.token });
    expect(bad.status).toBe(400);
  });

  it("requires a session", async () => {
    expect((await call("GET", "/usage")).status).toBe(401);
  });
});
