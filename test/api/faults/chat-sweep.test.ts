import { describe, expect, it } from "vitest";
import { control } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import {
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
