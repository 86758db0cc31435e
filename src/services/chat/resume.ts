import { type MessageRow, selectMessage } from "../../db/queries/messages";
import { LimitExceededError, NotFoundError } from "../../errors";
import type { ReplyLogEntry } from "../../lib/reply-log";
import { describeError } from "../../log";
import { assertId } from "./chatrooms";
import type { ChatDeps } from "./deps";
import { STREAM_JOB_ID } from "./replies";
import { messageView } from "./views";

/** How often a streaming reply writes its buffered deltas to the reply log (one Redis request). */
export const REPLY_LOG_FLUSH_MS = 150;
/** How often an attached client's request polls the reply log (Upstash has no blocking read). */
export const RESUME_POLL_MS = 200;
/** Every this many log polls, the reply row is read too (queued replies never write the log). */
const ROW_EVERY_POLLS = 5;
/** A settled streamed reply writes its end marker right after; waited for before answering. */
const END_MARKER_WAIT_MS = 2_000;
/** One attach lasts at most this long; the client reconnects with Last-Event-ID (EventSource does). */
export const RESUME_MAX_ATTACH_MS = 5 * 60_000;
/**
 * Follow streams one user may have open at once. Each costs ~7 vendor requests a second (an
 * LRANGE per 200 ms, a row read per second) for up to 5 minutes; a user's own devices need a few.
 */
export const MAX_FOLLOWS_PER_USER = 4;
/** An entry outlives the longest attach, so a Worker that died without releasing frees it. */
export const FOLLOW_GATE_TTL_MS = RESUME_MAX_ATTACH_MS + 30_000;
/** What a refused attach is told to wait (a follow ends when its reply settles or it closes). */
const FOLLOW_RETRY_AFTER_SECONDS = 5;
/** How often a follow stream writes an SSE comment, to notice a client that left. */
export const FOLLOW_HEARTBEAT_MS = 3_000;
/** How often an attached client's session is checked again (a logout ends its follows). */
export const SESSION_RECHECK_MS = 5_000;

/**
 * Where a reply's events go (the SSE response of the prompt or of a follower); a write to a
 * client that went away must not throw. `id` is a delta's sequence number, sent as the SSE
 * `id:` (the client's Last-Event-ID to resume).
 */
export type ReplyEventSink = (
  event: "delta" | "done" | "error" | "cancelled",
  data: unknown,
  id?: number,
) => void;

/**
 * The writing side of a reply's log: numbers each delta (1, 2, …), buffers, and appends the
 * buffer every REPLY_LOG_FLUSH_MS, one append at a time so entries stay in order. A failed
 * append is retried with the next one (the reply row, not the log, is the source of truth).
 */
export interface ReplyRecorder {
  /** Buffers a delta and returns its sequence number. */
  record(text: string): number;
  /** Appends whatever is buffered (awaits an append in progress first). */
  flush(): Promise<void>;
  /** Flushes and appends the end marker (after the reply row is settled), then stops. */
  end(): Promise<void>;
  /** Stops the flush timer (the stream is over); `flush` and `end` still append. */
  close(): void;
}

export function recordReply(
  deps: Pick<ChatDeps, "replyLog" | "log">,
  replyId: string,
): ReplyRecorder {
  let seq = 0;
  let buffer: ReplyLogEntry[] = [];
  let inFlight: Promise<void> | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;

  const flush = async (): Promise<void> => {
    while (inFlight) await inFlight;
    if (buffer.length === 0) return;
    const batch = buffer;
    buffer = [];
    inFlight = deps.replyLog
      .append(replyId, batch)
      .catch((err: unknown) => {
        buffer = [...batch, ...buffer];
        deps.log.warn("reply_log_append_failed", { reply_id: replyId, error: describeError(err) });
      })
      .finally(() => {
        inFlight = null;
      });
    await inFlight;
  };
  const close = () => {
    if (timer) clearInterval(timer);
    timer = null;
  };
  return {
    record(text) {
      seq += 1;
      buffer.push({ seq, text });
      timer ??= setInterval(() => void flush(), REPLY_LOG_FLUSH_MS);
      return seq;
    },
    flush,
    async end() {
      close();
      buffer.push({ end: true });
      await flush();
    },
    close,
  };
}

/**
 * GET /chatroom/:id/messages/:message_id/stream, before the stream opens: the reply, or 404 for
 * anything that is not a model reply of the caller's chatroom (malformed, unknown, foreign).
 */
export async function findReplyToFollow(
  deps: Pick<ChatDeps, "db">,
  input: { userId: string; chatroomId: string; messageId: string },
): Promise<MessageRow> {
  assertId(input.chatroomId);
  assertId(input.messageId, "message");
  const [row] = await selectMessage(deps.db, input.chatroomId, input.userId, input.messageId);
  if (row?.role !== "model") throw new NotFoundError("No such reply.");
  return row;
}

/**
 * Counts one more open follow stream of `userId` (`member`: the request id) and returns its
 * release; above MAX_FOLLOWS_PER_USER it is refused with 429 (Retry-After). A Redis sorted set
 * like the pending gate: atomic enter, entries expire after FOLLOW_GATE_TTL_MS. Redis failing
 * refuses the attach (a 503): the cap is what keeps one user from fanning out polls.
 */
export async function enterFollow(
  deps: Pick<ChatDeps, "followGate">,
  userId: string,
  member: string,
): Promise<() => Promise<void>> {
  const members = await deps.followGate.enter(userId, member);
  const release = () => deps.followGate.release(userId, member).catch(() => {});
  if (members.length > MAX_FOLLOWS_PER_USER) {
    await release();
    throw new LimitExceededError(
      `At most ${MAX_FOLLOWS_PER_USER} reply streams can be followed at once; close one first.`,
      FOLLOW_RETRY_AFTER_SECONDS,
    );
  }
  return release;
}

/** The terminal event of a settled reply, exactly as the live stream ends. */
export function emitSettled(emit: ReplyEventSink, reply: MessageRow): void {
  const view = messageView(reply);
  if (reply.status === "complete") emit("done", { reply: view });
  else if (reply.status === "cancelled") emit("cancelled", { reply: view });
  else {
    emit("error", {
      error: { code: reply.error ?? "upstream_error", message: "The reply failed." },
      reply: view,
    });
  }
}

/**
 * Follows a reply for an attached client: the deltas after `afterSeq` from the reply log, then
 * the live ones as they are appended, then the terminal event (`done` with the whole message,
 * `error` or `cancelled`). A reply already settled answers its terminal event alone. Polls the
 * log every RESUME_POLL_MS and the row every ROW_EVERY_POLLS polls (a queued reply, or a
 * streamed one handed to the queue, settles without an end marker). Returns when the reply
 * settles, the client leaves, after RESUME_MAX_ATTACH_MS (the client then reconnects), or with
 * an `unauthorized` error event once `sessionLive` (asked every SESSION_RECHECK_MS, beside a row
 * read) says the caller's session was revoked.
 */
export async function followReply(
  deps: Pick<ChatDeps, "db" | "replyLog">,
  input: { reply: MessageRow; afterSeq: number; sessionLive?: () => Promise<boolean> },
  emit: ReplyEventSink,
  gone: AbortSignal,
): Promise<void> {
  const { reply } = input;
  if (reply.status !== "pending") {
    emitSettled(emit, reply);
    return;
  }
  let last = input.afterSeq;
  const started = Date.now();
  let sessionCheckedAt = started;
  let settledAt: number | null = null;
  const drain = async (): Promise<boolean> => {
    let entries: ReplyLogEntry[] = [];
    try {
      entries = await deps.replyLog.read(reply.id, last);
    } catch {
      // Redis unavailable: the row still tells when the reply settles.
    }
    for (const entry of entries) {
      if ("end" in entry) return true;
      if (entry.seq <= last) continue;
      emit("delta", { text: entry.text }, entry.seq);
      last = entry.seq;
    }
    return false;
  };
  for (let poll = 1; !gone.aborted; poll++) {
    const ended = await drain();
    const waitedForEnd = settledAt !== null && Date.now() - settledAt > END_MARKER_WAIT_MS;
    if (ended || waitedForEnd || poll % ROW_EVERY_POLLS === 0) {
      const recheck = input.sessionLive && Date.now() - sessionCheckedAt >= SESSION_RECHECK_MS;
      const [[row], live] = await Promise.all([
        selectMessage(deps.db, reply.chatroomId, reply.userId, reply.id),
        // A failed check is not a revocation: the next one decides.
        recheck ? input.sessionLive?.().catch(() => true) : true,
      ]);
      if (recheck) sessionCheckedAt = Date.now();
      if (live === false) {
        emit("error", {
          error: { code: "unauthorized", message: "The bearer token is invalid or expired." },
        });
        return;
      }
      if (!row) {
        emit("error", { error: { code: "not_found", message: "The chatroom was deleted." } });
        return;
      }
      if (row.status !== "pending") {
        // A streamed reply still writing its last deltas and end marker is given a moment.
        if (ended || waitedForEnd || row.jobId !== STREAM_JOB_ID) {
          if (!ended) await drain();
          emitSettled(emit, row);
          return;
        }
        settledAt ??= Date.now();
      }
    }
    if (Date.now() - started > RESUME_MAX_ATTACH_MS) return;
    await new Promise((r) => setTimeout(r, RESUME_POLL_MS));
  }
}
