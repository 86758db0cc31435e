import { v7 } from "uuid";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { control, testEnv } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import {
  callbackBody,
  createProSession,
  geminiAnswer,
  getMessage,
  marker,
  newChatroom,
  postCallback,
  remainingAfterOnePrompt,
  sendPrompt,
  signQStash,
  sql,
} from "./chat-support.ts";

// Replies in this file are never handed to QStash (a publish fault scoped to this file's tag),
// so every callback they receive is one this test forged.
const tag = marker("forged");
let me: TestSession;
let roomId: string;

beforeAll(async () => {
  await control("qstash/publish-fault", { match: tag, mode: "error" });
  // Pro, so the many prompts of this file never meet the daily limit.
  me = await createProSession();
  roomId = (await newChatroom(me)).id;
});

afterAll(async () => {
  await control("qstash/publish-fault", { match: tag, mode: "none" });
});

async function pendingReply(): Promise<string> {
  const res = await sendPrompt(me, roomId, `${tag} ${marker("q")}`);
  expect(res.status).toBe(202);
  return res.body.reply.id as string;
}

const paths = (replyId: string) => ({
  reply: `/webhook/qstash/reply?reply_id=${replyId}`,
  failed: `/webhook/qstash/reply-failed?reply_id=${replyId}`,
});
const publicUrl = (path: string) => `${testEnv.APP_URL}${path}`;

describe("QStash callback signatures", () => {
  it("refuses forged callbacks with 401 and leaves the reply pending", async () => {
    const replyId = await pendingReply();
    const { reply, failed } = paths(replyId);
    const body = callbackBody(geminiAnswer("forged text"));
    const now = Math.floor(Date.now() / 1000);
    const forgeries: [string, string, string | undefined][] = [
      ["no signature", body, undefined],
      ["garbage", body, "not.a.jwt"],
      [
        "a wrong key",
        body,
        await signQStash(publicUrl(reply), body, { key: "sig_wrong_key_00000000" }),
      ],
      ["another endpoint's URL", body, await signQStash(publicUrl(failed), body)],
      [
        "another reply's URL",
        body,
        await signQStash(publicUrl(paths(await pendingReply()).reply), body),
      ],
      [
        "the body changed after signing",
        body.replace('"retried":0', '"retried":1'),
        await signQStash(publicUrl(reply), body),
      ],
      [
        "an expired token",
        body,
        await signQStash(publicUrl(reply), body, {
          claims: { iat: now - 900, nbf: now - 900, exp: now - 600 },
        }),
      ],
      [
        "a token not valid yet",
        body,
        await signQStash(publicUrl(reply), body, { claims: { nbf: now + 120 } }),
      ],
      [
        "a wrong issuer",
        body,
        await signQStash(publicUrl(reply), body, { claims: { iss: "NotUpstash" } }),
      ],
      ["a user's access token", body, me.token],
    ];
    for (const [what, sent, signature] of forgeries) {
      const res = await postCallback(reply, sent, signature);
      expect(res.status, what).toBe(401);
      expect(res.body.error.code, what).toBe("invalid_signature");
    }
    expect((await getMessage(me, roomId, replyId)).status).toBe("pending");
  });

  it("accepts a valid callback once; replaying it answers 200 and changes nothing", async () => {
    const replyId = await pendingReply();
    const { reply } = paths(replyId);
    const body = callbackBody(geminiAnswer("The genuine answer."));
    const signature = await signQStash(publicUrl(reply), body);

    const first = await postCallback(reply, body, signature);
    expect(first).toEqual({ status: 200, body: { status: "complete" } });
    const saved = await getMessage(me, roomId, replyId);
    expect(saved).toMatchObject({
      status: "complete",
      content: "The genuine answer.",
      usage: { prompt_tokens: 3, reply_tokens: 2 },
    });

    const replay = await postCallback(reply, body, signature);
    expect(replay).toEqual({ status: 200, body: { status: "unchanged" } });
    const other = callbackBody(geminiAnswer("A different answer."));
    const late = await postCallback(reply, other, await signQStash(publicUrl(reply), other));
    expect(late.body).toEqual({ status: "unchanged" });
    expect(await getMessage(me, roomId, replyId)).toEqual(saved);
  });

  it("stores an answer carrying NUL and lone surrogates, which Postgres text refuses as they are", async () => {
    const replyId = await pendingReply();
    const { reply } = paths(replyId);
    const body = callbackBody(geminiAnswer("nul\u0000 here, half \uD83D pair"));
    const res = await postCallback(reply, body, await signQStash(publicUrl(reply), body));
    expect(res).toEqual({ status: 200, body: { status: "complete" } });
    expect(await getMessage(me, roomId, replyId)).toMatchObject({
      status: "complete",
      content: "nul here, half \uFFFD pair",
    });
  });

  it("accepts a callback signed with the next signing key (key rotation)", async () => {
    const replyId = await pendingReply();
    const { reply } = paths(replyId);
    const body = callbackBody(geminiAnswer("rotated"));
    const signature = await signQStash(publicUrl(reply), body, {
      key: testEnv.QSTASH_NEXT_SIGNING_KEY as string,
    });
    expect((await postCallback(reply, body, signature)).status).toBe(200);
    expect((await getMessage(me, roomId, replyId)).content).toBe("rotated");
  });

  it("keeps a reply pending on a retryable failure, then fails it once on the failure callback", async () => {
    const session = await createSession();
    const room = await newChatroom(session);
    const res = await sendPrompt(session, room.id, `${tag} ${marker("retry")}`);
    const replyId = res.body.reply.id as string;
    const { reply, failed } = paths(replyId);
    const error = { error: { code: 503, message: "overloaded", status: "UNAVAILABLE" } };

    const retrying = callbackBody(error, { status: 503, retried: 1, maxRetries: 3 });
    const r1 = await postCallback(reply, retrying, await signQStash(publicUrl(reply), retrying));
    expect(r1.body).toEqual({ status: "pending" });
    expect((await getMessage(session, room.id, replyId)).status).toBe("pending");

    const final = callbackBody(error, { status: 503, retried: 3, maxRetries: 3, dlqId: "dlq-1" });
    const signature = await signQStash(publicUrl(failed), final);
    expect((await postCallback(failed, final, signature)).body).toEqual({ status: "failed" });
    expect((await postCallback(failed, final, signature)).body).toEqual({ status: "unchanged" });
    expect(await getMessage(session, room.id, replyId)).toMatchObject({
      status: "failed",
      error: "upstream_error",
    });
    // Refunded exactly once despite the replayed failure callback: 1 used (the probe) of 5.
    expect(await remainingAfterOnePrompt(session, room.id)).toBe(4);
  });

  it("answers 404 to a callback that outruns its reply's insert, and completes the reply on the retry", async () => {
    // The publish runs beside the batch that inserts the reply, so under load the callback can
    // arrive first. A 200 would end QStash's retries and leave the reply pending for good.
    const replyId = v7(); // an id made now, as the Worker makes them
    const path = paths(replyId).reply;
    const body = callbackBody(geminiAnswer("worth the wait"));
    const early = await postCallback(path, body, await signQStash(publicUrl(path), body));
    expect(early.status).toBe(404);
    expect(early.body.error.code).toBe("not_found");

    await sql().query(
      "insert into messages (id, chatroom_id, user_id, role, content, status) values ($1, $2, $3, 'model', '', 'pending')",
      [replyId, roomId, me.user.id],
    );
    const retried = await postCallback(path, body, await signQStash(publicUrl(path), body));
    expect(retried).toEqual({ status: 200, body: { status: "complete" } });
    expect(await getMessage(me, roomId, replyId)).toMatchObject({
      status: "complete",
      content: "worth the wait",
    });
  });

  it("answers 200 gone for a reply id past a minute whose row never appeared, ending the retries", async () => {
    const replyId = v7({ msecs: Date.now() - 120_000 });
    const path = paths(replyId).reply;
    const body = callbackBody(geminiAnswer("nobody is waiting"));
    const res = await postCallback(path, body, await signQStash(publicUrl(path), body));
    expect(res).toEqual({ status: 200, body: { status: "gone" } });
    const rows = await sql().query("select id from messages where id = $1", [replyId]);
    expect(rows).toEqual([]);
    // Within the minute the same answer is 404, so a reply still being written is waited for.
    const young = v7({ msecs: Date.now() - 30_000 });
    const youngPath = paths(young).reply;
    const early = await postCallback(youngPath, body, await signQStash(publicUrl(youngPath), body));
    expect(early.status).toBe(404);
  });

  it("answers 400 (not 500) to a signed body that is not a QStash callback", async () => {
    const replyId = await pendingReply();
    const { reply } = paths(replyId);
    const body = "[1,2,3]";
    const res = await postCallback(reply, body, await signQStash(publicUrl(reply), body));
    expect(res.status).toBe(400);
    expect((await getMessage(me, roomId, replyId)).status).toBe("pending");
  });
});
