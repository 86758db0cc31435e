// A repeat of a cancel redoes the steps after the batch (the QStash cancel, the refund) only
// within CANCEL_RETRY_WINDOW_MS of the cancel: that is when a client retries an answer it lost
// (test/api/faults/chat-cancel-lost-answer.test.ts). Later, a loop of cancels on an old reply
// must not buy a QStash call and a Redis script per request (review of that fix).
import { describe, expect, it } from "vitest";
import { createDatabase } from "../../src/db/client.ts";
import type { MessageRow } from "../../src/db/schema/messages.ts";
import { createLogger } from "../../src/log.ts";
import { CANCEL_RETRY_WINDOW_MS, cancelReply } from "../../src/services/chat/control.ts";
import type { ChatDeps } from "../../src/services/chat/deps.ts";

const CANCELLED_AT = new Date("2026-12-07T08:00:00Z");
const ROOM = "01a24f4f-ac7a-75ef-8c39-09cf22cbf4f5";
const REPLY = "01a24f4f-ac7a-75ef-8c39-09cf22cbf4f6";

const reply: MessageRow = {
  id: REPLY,
  chatroomId: ROOM,
  userId: "user-1",
  role: "model",
  content: "",
  status: "cancelled",
  error: null,
  finishReason: null,
  promptTokens: null,
  replyTokens: null,
  thoughtTokens: null,
  cachedTokens: null,
  totalTokens: null,
  model: null,
  replyToId: "01a24f4f-ac7a-75ef-8c39-09cf22cbf4f5",
  jobId: "msg_job",
  quotaDay: "2026-12-07",
  // What the cancel's UPDATE wrote: a reply without text owes its refund.
  refundOwedAt: CANCELLED_AT,
  supersededBy: null,
  grounding: null,
  createdAt: CANCELLED_AT,
  completedAt: CANCELLED_AT,
};

/** The service over a database whose batch answers "already cancelled", at `now`. */
function repeatAt(now: Date) {
  const calls = { jobCancels: 0, refunds: 0 };
  // A real drizzle instance builds the statements; its batch is answered here, as Postgres
  // would for a reply cancelled before: no row moved, the reply read back.
  const db = createDatabase("postgres://u:p@db.invalid/app");
  Object.assign(db, { batch: async () => [[], [], [reply]] });
  const deps = {
    db,
    clock: { now: () => now },
    queue: {
      cancel: async () => {
        calls.jobCancels++;
      },
    },
    quota: {
      refund: async () => {
        calls.refunds++;
      },
    },
    pendingGate: { release: async () => {} },
    waitUntil: () => {},
    log: createLogger(),
  } as unknown as ChatDeps;
  const run = () => cancelReply(deps, { userId: "user-1", chatroomId: ROOM, messageId: REPLY });
  return { run, calls };
}

describe("a repeated cancel", () => {
  it("within the retry window redoes the QStash cancel and the refund", async () => {
    const { run, calls } = repeatAt(new Date(CANCELLED_AT.getTime() + 30_000));
    expect((await run()).status).toBe("cancelled");
    expect(calls).toEqual({ jobCancels: 1, refunds: 1 });
  });

  it("after the window only reads the reply", async () => {
    const { run, calls } = repeatAt(new Date(CANCELLED_AT.getTime() + CANCEL_RETRY_WINDOW_MS + 1));
    expect((await run()).status).toBe("cancelled");
    expect(calls).toEqual({ jobCancels: 0, refunds: 0 });
  });
});
