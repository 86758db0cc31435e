import { afterEach, describe, expect, it } from "vitest";
import { QUERY_TIMEOUT_MS } from "../../../src/db/client.ts";
import { call, control, waitFor } from "../../support/api.ts";
import { createSession } from "../../support/session.ts";
import {
  geminiFault,
  marker,
  newChatroom,
  qstashMessages,
  quotaCounter,
  sendPrompt,
  sql,
} from "../chat-support.ts";

const ROUND_ONE_DELAY_MS = 1_000;
/** The cancel's batch runs this long after it was sent: past the Worker's deadline, then commits. */
const LATE_COMMIT_MS = QUERY_TIMEOUT_MS + 2_000;

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function replyRow(replyId: string) {
  const rows = await sql().query("select status, job_id from messages where id = $1", [replyId]);
  return rows[0] as { status: string; job_id: string | null } | undefined;
}

describe("a cancel whose batch commits after the Worker's database deadline", () => {
  it(
    "is finished by the client's retry: the prompt is refunded and the QStash job cancelled",
    async () => {
      // Soak review: the retry found the reply already cancelled and answered 200, but the
      // refund and the job's cancel belonged to the first attempt, whose answer was lost; the
      // prompt stayed counted and Gemini was still called.
      const me = await createSession();
      const room = await newChatroom(me);
      const content = marker("cancel-lost");
      await geminiFault({ match: content, kind: "slow", times: 1, ms: 60_000 });
      const before = await quotaCounter(me.user.id);
      const sent = await sendPrompt(me, room.id, content);
      expect(sent.status).toBe(202);
      const replyId = sent.body.reply.id as string;
      // The job is published (and recorded on the row) after the response.
      await waitFor(async () => Boolean((await replyRow(replyId))?.job_id));
      expect(await quotaCounter(me.user.id)).toBe(before + 1);

      // The session check waits ROUND_ONE_DELAY_MS; the cancel's batch, sent after it, meets
      // LATE_COMMIT_MS: the Worker gives up on it and answers 503, and the database runs it later.
      await control("neon/fault", { mode: "slow", ms: ROUND_ONE_DELAY_MS });
      const cancel = () =>
        call("POST", `/chatroom/${room.id}/messages/${replyId}/cancel`, { token: me.token });
      const first = cancel();
      await sleep(ROUND_ONE_DELAY_MS / 2);
      await control("neon/fault", { mode: "slow", ms: LATE_COMMIT_MS });
      const lost = await first;
      await control("neon/fault", { mode: "none" });
      expect(lost.status).toBe(503);
      await waitFor(async () => (await replyRow(replyId))?.status === "cancelled", 15_000, 200);
      // Committed, but nothing after it ran: still counted, the job still live.
      expect(await quotaCounter(me.user.id)).toBe(before + 1);
      const [job] = await qstashMessages(content, "publish");
      expect(job?.state).not.toBe("CANCELLED");

      const retry = await cancel();
      expect(retry.status).toBe(200);
      expect(retry.body.message).toMatchObject({ id: replyId, status: "cancelled", content: "" });
      expect(await quotaCounter(me.user.id)).toBe(before);
      const [cancelled] = await qstashMessages(content, "publish");
      expect(cancelled?.state).toBe("CANCELLED");

      // Once per reply: a further retry gives nothing more back.
      expect((await cancel()).status).toBe(200);
      expect(await quotaCounter(me.user.id)).toBe(before);
    },
    QUERY_TIMEOUT_MS + LATE_COMMIT_MS + 30_000,
  );
});
