// Attacker review, finding 4: a cancel that lands between the hand-off's publish and its UPDATE
// left handOffToQueue answering true although no row moved, so the QStash job ran on and the
// stream skipped its cancelled path (no refund decision). The race is a few milliseconds wide
// through the API; here the database answers the UPDATE as Postgres would after the cancel.
import { describe, expect, it } from "vitest";
import type { Database } from "../../src/db/client.ts";
import type { JobQueue } from "../../src/lib/queue.ts";
import { createLogger } from "../../src/log.ts";
import type { ChatConfig, ChatDeps } from "../../src/services/chat/deps.ts";
import { handOffToQueue } from "../../src/services/chat/stream.ts";

/** A database whose conditional UPDATE … RETURNING matches `rows` (0: the reply was cancelled). */
function fakeDb(rows: number, seen: { set?: unknown }) {
  const chain = {
    set(values: unknown) {
      seen.set = values;
      return chain;
    },
    where: () => chain,
    returning: () => Promise.resolve(Array.from({ length: rows }, (_, i) => ({ id: `r${i}` }))),
  };
  return { update: () => chain } as unknown as Database;
}

function deps(rows: number) {
  const cancelled: string[] = [];
  const seen: { set?: unknown } = {};
  const queue = {
    publish: async () => ({ messageId: "msg_handoff" }),
    cancel: async (id: string) => {
      cancelled.push(id);
    },
  } as unknown as JobQueue;
  const config = {
    appUrl: "https://app.example",
    geminiBaseUrl: "https://gemini.example",
    geminiApiKey: "k",
    qstashRetries: 3,
    geminiTimeoutSeconds: 60,
  } as ChatConfig;
  const d = { db: fakeDb(rows, seen), queue, config, log: createLogger() } as unknown as ChatDeps;
  return { d, cancelled, seen };
}

const job = { replyId: "reply-1", request: { model: "gemini-test", body: { contents: [] } } };

describe("handOffToQueue", () => {
  it("moves the reply to the job and stores the delivered text", async () => {
    const { d, cancelled, seen } = deps(1);
    expect(await handOffToQueue(d, job, "Echo: the start")).toBe(true);
    expect(seen.set).toEqual({ jobId: "msg_handoff", content: "Echo: the start" });
    expect(cancelled).toEqual([]);
  });

  it("is false and cancels its job when the reply was cancelled between publish and update", async () => {
    const { d, cancelled } = deps(0);
    expect(await handOffToQueue(d, job, "Echo: the start")).toBe(false);
    expect(cancelled).toEqual(["msg_handoff"]);
  });
});
