import type { RedisClient } from "./redis";

/** How long a reply log lives after its last append; a settled reply is answered from Postgres. */
export const REPLY_LOG_TTL_SECONDS = 600;

/** One entry of a reply's log: delta `seq` (1, 2, …), or the end of the stream. */
export type ReplyLogEntry = { seq: number; text: string } | { end: true };

/**
 * The deltas of a streamed reply, in Redis, so another request can replay them (resume, a
 * second device). One list per reply; entries carry their sequence number, so a reader skips
 * anything it has seen even if an ambiguous (timed-out but applied) append was retried.
 * Upstash's REST API has no blocking read: readers poll `read` (docs/adr/0005-chat-replies.md).
 */
export interface ReplyLog {
  /** Appends entries in order (one REST request: RPUSH and the expiry, pipelined). */
  append(replyId: string, entries: ReplyLogEntry[]): Promise<void>;
  /** Entries that may follow delta `afterSeq` (a superset: callers filter by seq). */
  read(replyId: string, afterSeq: number): Promise<ReplyLogEntry[]>;
}

export function createReplyLog(
  redis: RedisClient,
  options: { namespace: string; ttlSeconds: number },
): ReplyLog {
  const key = (replyId: string) => `${options.namespace}:${replyId}`;
  return {
    async append(replyId, entries) {
      if (entries.length === 0) return;
      const p = redis.pipeline();
      p.rpush(key(replyId), ...entries.map((e) => JSON.stringify(e)));
      p.expire(key(replyId), options.ttlSeconds);
      await p.exec();
    },
    async read(replyId, afterSeq) {
      // Delta n sits at index n - 1 or later (a repeated append only shifts entries right).
      const raw = await redis.lrange<string>(key(replyId), Math.max(0, afterSeq), -1);
      const entries: ReplyLogEntry[] = [];
      for (const item of raw) {
        const entry = parseEntry(item);
        if (entry) entries.push(entry);
      }
      return entries;
    },
  };
}

function parseEntry(item: unknown): ReplyLogEntry | null {
  try {
    const v = typeof item === "string" ? JSON.parse(item) : item;
    if (v && typeof v === "object") {
      if ((v as { end?: unknown }).end === true) return { end: true };
      const { seq, text } = v as { seq?: unknown; text?: unknown };
      if (typeof seq === "number" && typeof text === "string") return { seq, text };
    }
  } catch {
    // A corrupt entry is skipped; the reply row stays the source of truth.
  }
  return null;
}
