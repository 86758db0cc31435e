import { v7 } from "uuid";
import { describe, expect, it } from "vitest";
import { call, control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import {
  geminiCalls,
  getMessage,
  marker,
  newChatroom,
  qstashMessages,
  remainingAfterOnePrompt,
  runSweep,
  sendPrompt,
  settledReply,
  sql,
} from "../chat-support.ts";

// The sweep acts on every pending reply in the database (it runs here, after the other files,
// one file at a time), and these tests move the cron's clock forward.
describe("the scheduled reply sweep", () => {
  it("republishes a reply whose QStash publish failed, and the reply completes", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("sweep-publish");
    await control("qstash/publish-fault", { match: content, mode: "error" });
    let replyId: string;
    try {
      const res = await sendPrompt(me, room.id, content);
      // The prompt is safe in the database, so the client still gets its 202.
      expect(res.status).toBe(202);
      replyId = res.body.reply.id;
    } finally {
      await control("qstash/publish-fault", { match: content, mode: "none" });
    }
    expect(await qstashMessages(content, "publish")).toEqual([]);
    const before = await sql().query("select job_id from messages where id = $1", [replyId]);
    expect(before[0]?.job_id).toBeNull();
    expect((await getMessage(me, room.id, replyId)).status).toBe("pending");

    await runSweep(Date.now() + 15_000);
    const reply = await settledReply(me, room.id, replyId);
    expect(reply.status).toBe("complete");
    expect(reply.content).toContain(content);
    const [published] = await qstashMessages(content, "publish");
    expect(published?.deduplication_id).toBe(replyId);
    const after = await sql().query("select job_id from messages where id = $1", [replyId]);
    expect(after[0]?.job_id).toBe(published?.message_id);
  });

  it("republishes a regenerated reply with the history its first publish had, not the later exchanges", async () => {
    // Soak review: the republish read everything before the reply row, and a regenerated reply
    // is created after the exchanges that followed its prompt, so Gemini was asked to answer
    // the newest exchange instead of the prompt being regenerated.
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("sweep-regen");
    const sent = await sendPrompt(me, room.id, content);
    await settledReply(me, room.id, sent.body.reply.id);
    const later = marker("sweep-later");
    const next = await sendPrompt(me, room.id, later);
    await settledReply(me, room.id, next.body.reply.id);

    // Faults on the prompt only now: the later exchange's history carries it too.
    await control("qstash/publish-fault", { match: content, mode: "error" });
    let replyId: string;
    try {
      const res = await call(
        "POST",
        `/chatroom/${room.id}/messages/${sent.body.reply.id}/regenerate`,
        { token: me.token },
      );
      expect(res.status).toBe(202);
      replyId = res.body.reply.id;
    } finally {
      await control("qstash/publish-fault", { match: content, mode: "none" });
    }
    const before = await sql().query("select job_id from messages where id = $1", [replyId]);
    expect(before[0]?.job_id).toBeNull();

    await runSweep(Date.now() + 15_000);
    expect((await settledReply(me, room.id, replyId)).status).toBe("complete");
    const seen = await geminiCalls(content);
    // The prompt's own call, the later exchange's (its history), then the republished one.
    expect(seen).toHaveLength(3);
    const [original, , republished] = seen.map((c) => c.prompt);
    expect(republished).toBe(original);
    expect(republished).not.toContain(later);
  });

  it("fails a reply still pending after REPLY_DEADLINE_SECONDS with timeout and refunds the prompt", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("sweep-deadline");
    await control("qstash/publish-fault", { match: content, mode: "error" });
    try {
      const res = await sendPrompt(me, room.id, content);
      expect(res.status).toBe(202);
      expect(res.headers.get("ratelimit-remaining")).toBe("4");
      await runSweep(Date.now() + 3601_000);
      const reply = await getMessage(me, room.id, res.body.reply.id);
      expect(reply).toMatchObject({ status: "failed", error: "timeout" });
    } finally {
      await control("qstash/publish-fault", { match: content, mode: "none" });
    }
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(4);
  });

  it("fails an overdue reply that holds delivered text without refunding it (a stream handed to the queue)", async () => {
    // Attacker review, finding 1: the hand-off stores the text the client was sent; the sweep
    // used to refund such a reply like any other, so the streamed answer cost nothing.
    const me = await createSession();
    const room = await newChatroom(me);
    const content = marker("sweep-delivered");
    await control("qstash/publish-fault", { match: content, mode: "error" });
    try {
      const res = await sendPrompt(me, room.id, content);
      expect(res.status).toBe(202);
      expect(res.headers.get("ratelimit-remaining")).toBe("4");
      const replyId = res.body.reply.id as string;
      // What handOffStreamedReply writes: a QStash job and the delivered text.
      await sql().query("update messages set job_id = $2, content = $3 where id = $1", [
        replyId,
        `msg_${v7()}`,
        "Echo: the beginning the client read",
      ]);
      await runSweep(Date.now() + 3601_000);
      const reply = await getMessage(me, room.id, replyId);
      expect(reply).toMatchObject({
        status: "failed",
        error: "timeout",
        content: "Echo: the beginning the client read",
      });
    } finally {
      await control("qstash/publish-fault", { match: content, mode: "none" });
    }
    // Not refunded: the probe prompt leaves 3 of 5.
    expect(await remainingAfterOnePrompt(me, room.id)).toBe(3);
  });

  it("deletes expired Idempotency-Key records and keeps live ones", async () => {
    const me = await createSession();
    const insert = (key: string, expiresAt: string) =>
      sql().query(
        `insert into idempotency_keys (user_id, key, request_hash, status_code, response_body, expires_at)
         values ($1, $2, 'h', 202, '{}'::jsonb, $3::timestamptz)`,
        [me.user.id, key, expiresAt],
      );
    await insert("expired-key", new Date(Date.now() - 60_000).toISOString());
    await insert("live-key", new Date(Date.now() + 3_600_000).toISOString());

    await runSweep();
    const rows = await sql().query(
      "select key from idempotency_keys where user_id = $1 order by key",
      [me.user.id],
    );
    expect(rows.map((r) => r.key)).toEqual(["live-key"]);
  });

  it("fails a streamed reply left pending past 5 minutes; a queued one waits for its deadline", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    const insert = (jobId: string, ageMs: number) =>
      sql().query(
        `insert into messages (id, chatroom_id, user_id, role, content, status, job_id, created_at)
         values ($1, $2, $3, 'model', '', 'pending', $4, $5::timestamptz) returning id`,
        [v7(), room.id, me.user.id, jobId, new Date(Date.now() - ageMs).toISOString()],
      );
    const [lost] = await insert("stream", 6 * 60_000);
    const [streaming] = await insert("stream", 60_000);
    const [queued] = await insert("msg_queued", 6 * 60_000);

    await runSweep();
    const rows = await sql().query(
      "select id, status, error from messages where id = any($1) order by created_at",
      [[lost?.id, streaming?.id, queued?.id]],
    );
    const byId = Object.fromEntries(rows.map((r) => [r.id, [r.status, r.error]]));
    expect(byId[lost?.id]).toEqual(["failed", "timeout"]);
    expect(byId[streaming?.id]).toEqual(["pending", null]);
    expect(byId[queued?.id]).toEqual(["pending", null]);
    // Leave nothing pending for the other tests' sweeps.
    await sql().query("update messages set status = 'failed' where id = any($1)", [
      [streaming?.id, queued?.id],
    ]);
  });

  it("fails at most 100 overdue replies per run, oldest first, and the rest on the next", async () => {
    const me = await createSession();
    const room = await newChatroom(me);
    // Older than anything else in the database, so this run's batch is exactly these.
    await sql().query(
      `insert into messages (id, chatroom_id, user_id, role, content, status, created_at)
       select gen_random_uuid()::text, $1, $2, 'model', '', 'pending',
              timestamptz '2000-01-01' + i * interval '1 second'
         from generate_series(1, 150) as i`,
      [room.id, me.user.id],
    );
    const pending = async () =>
      (
        await sql().query(
          "select count(*)::int as n from messages where chatroom_id = $1 and status = 'pending'",
          [room.id],
        )
      )[0]?.n;
    await runSweep();
    expect(await pending()).toBe(50);
    await runSweep();
    expect(await pending()).toBe(0);
  });

  it("purges Stripe event records past their 30 days, keeping younger ones", async () => {
    const tag = marker("evt");
    const day = 24 * 3600 * 1000;
    const insert = (id: string, ageMs: number) =>
      sql().query(
        "insert into processed_webhook_events (id, source, type, processed_at) values ($1, 'stripe', 'invoice.paid', $2::timestamptz)",
        [id, new Date(Date.now() - ageMs).toISOString()],
      );
    await insert(`${tag}-old`, 31 * day);
    await insert(`${tag}-recent`, 29 * day);

    await runSweep();
    const rows = await sql().query(
      "select id from processed_webhook_events where id like $1 order by id",
      [`${tag}-%`],
    );
    expect(rows.map((r) => r.id)).toEqual([`${tag}-recent`]);
  });
});
