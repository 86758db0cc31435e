import { eq } from "drizzle-orm";
import { recordExchange, selectOwnedChatroom } from "../../db/queries/chatrooms";
import {
  deleteExpiredIdempotencyRecord,
  type IdempotencyRow,
  insertIdempotencyRecord,
  selectIdempotencyRecord,
} from "../../db/queries/idempotency";
import {
  insertMessages,
  type MessageRow,
  selectHistoryWindow,
  selectMessage,
  setReplyJob,
} from "../../db/queries/messages";
import { users } from "../../db/schema/users";
import {
  ConflictError,
  describeError,
  NotFoundError,
  sqlStateOf,
  UnauthorizedError,
} from "../../errors";
import {
  buildGenerateContentBody,
  type GeminiTurn,
  type GenerateContentBody,
} from "../../lib/gemini";
import { newId } from "../../lib/ids";
import {
  dailyLimitError,
  decideQuota,
  type QuotaDecision,
  type QuotaTicket,
  quotaHeaders,
} from "../quota";
import { assertId, invalidateList } from "./chatrooms";
import { background, type ChatConfig, type ChatDeps } from "./deps";
import {
  outcomeOfAnswer,
  outcomeOfStreamError,
  type ReplyOutcome,
  replyJob,
  STREAM_JOB_ID,
  settleReply,
} from "./replies";
import { type MessageView, messageView } from "./views";

const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

/** The body of a 202 from POST /chatroom/:id/message (also what an Idempotency-Key replays). */
export interface PromptResponse {
  message: MessageView;
  reply: MessageView;
}

export interface SendMessageInput {
  userId: string;
  chatroomId: string;
  content: string;
  idempotencyKey: string | undefined;
  /** `stream`: the caller produces the reply itself (SSE) instead of queueing it. */
  mode: "queued" | "stream";
  /** The caller's session check (auth middleware), awaited in round 1, before any write. */
  sessionLive?: Promise<void>;
}

export type SendMessageResult =
  | { kind: "replay"; status: number; body: PromptResponse; headers: Record<string, string> }
  | {
      kind: "accepted";
      body: PromptResponse;
      headers: Record<string, string>;
      /** What the streaming path needs to produce the reply. */
      job: { replyId: string; userId: string; request: GenerateContentBody };
    };

/** Newest-first messages → Gemini turns within the character budget; the newest is always kept. */
export function historyTurns(
  newestFirst: { role: "user" | "model"; content: string }[],
  maxChars: number,
): GeminiTurn[] {
  const picked: GeminiTurn[] = [];
  let budget = maxChars;
  for (const m of newestFirst) {
    if (picked.length > 0 && m.content.length > budget) break;
    budget -= m.content.length;
    picked.push({ role: m.role, text: m.content });
  }
  picked.reverse();
  // A conversation sent to Gemini starts with the user.
  while (picked.length > 0 && picked[0]?.role !== "user") picked.shift();
  return picked;
}

export function promptRequest(
  config: ChatConfig,
  newestFirst: { role: "user" | "model"; content: string }[],
): GenerateContentBody {
  return buildGenerateContentBody(
    historyTurns(newestFirst, config.historyMaxChars),
    config.systemPrompt,
  );
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function replayOf(
  row: IdempotencyRow,
  requestHash: string,
  headers: Record<string, string>,
): SendMessageResult {
  if (row.requestHash !== requestHash) {
    throw new ConflictError(
      "This Idempotency-Key was already used for a different request.",
      "idempotency_key_reused",
    );
  }
  return {
    kind: "replay",
    status: row.statusCode,
    body: row.responseBody as PromptResponse,
    headers: { ...headers, "Idempotent-Replayed": "true" },
  };
}

/** Waits between looks for the record of a same-key prompt in flight (6.3 s in all). */
const IN_FLIGHT_WAITS_MS = [100, 200, 400, 800, 1600, 3200];

/**
 * The record of a prompt with the same Idempotency-Key that another request is still writing,
 * once it commits; null if it does not within the waits (it failed, or is very slow).
 */
async function awaitInFlightRecord(
  deps: Pick<ChatDeps, "db" | "clock">,
  userId: string,
  key: string,
): Promise<IdempotencyRow | null> {
  for (const ms of IN_FLIGHT_WAITS_MS) {
    await new Promise((r) => setTimeout(r, ms));
    const [row] = await selectIdempotencyRecord(deps.db, userId, key, deps.clock.now());
    if (row) return row;
  }
  return null;
}

/**
 * POST /chatroom/:id/message up to the reply being handed off. Two sequential I/O rounds:
 *   1. [one db.batch: tier + ownership + history window + idempotency record] ‖ [quota token]
 *      ‖ [in-flight claim of the Idempotency-Key]
 *   2. [one db.batch: idempotency record + prompt + pending reply + chatroom counters]
 *      ‖ [QStash publish] ‖ [list-cache version bump]
 * Anything rejected after round 1 refunds its token, so refused prompts cost no quota.
 */
export async function sendMessage(
  deps: ChatDeps,
  input: SendMessageInput,
): Promise<SendMessageResult> {
  const scope = input.idempotencyKey ? `${input.userId}:${input.idempotencyKey}` : null;
  // Taken in round 1 beside the quota token. Null: unknown (Redis failed), which is neither
  // waited on as another's claim nor released as ours.
  const claimed: Promise<boolean | null> = scope
    ? deps.promptClaims.claim(scope).catch(() => null)
    : Promise.resolve(null);
  try {
    return await sendClaimedMessage(deps, input, claimed);
  } catch (err) {
    // A failed prompt gives its key back at once, so the client's retry is not kept waiting.
    if (scope && (await claimed) === true) {
      await deps.promptClaims.release(scope).catch(() => {});
    }
    throw err;
  }
}

async function sendClaimedMessage(
  deps: ChatDeps,
  input: SendMessageInput,
  claimed: Promise<boolean | null>,
): Promise<SendMessageResult> {
  assertId(input.chatroomId);
  const { db, config } = deps;
  const now = deps.clock.now();
  const nowMs = now.getTime();
  const requestHash = await sha256Hex(
    `POST /chatroom/${input.chatroomId}/message\n${JSON.stringify({ content: input.content })}`,
  );

  // Round 1 (the claim runs beside it).
  const [context, taken, ownsClaim] = await Promise.allSettled([
    Promise.all([
      db.batch([
        db.select({ tier: users.tier }).from(users).where(eq(users.id, input.userId)).limit(1),
        selectOwnedChatroom(db, input.chatroomId, input.userId),
        selectHistoryWindow(db, input.chatroomId, input.userId, config.historyMaxMessages),
        selectIdempotencyRecord(db, input.userId, input.idempotencyKey ?? null, now),
      ]),
      input.sessionLive,
    ]).then(([rows]) => rows),
    deps.quota.take(input.userId),
    claimed,
  ]);
  const ticket: QuotaTicket | null = taken.status === "fulfilled" ? taken.value : null;
  const refund = async () => {
    if (!ticket) return;
    try {
      await deps.quota.refund(input.userId, ticket.day);
    } catch (err) {
      console.error(
        JSON.stringify({ level: "error", msg: "quota_refund_failed", error: describeError(err) }),
      );
    }
  };

  if (context.status === "rejected") {
    await refund();
    throw context.reason;
  }
  const [[user], [room], history, [record]] = context.value;
  if (record) {
    await refund();
    const tier = user?.tier ?? "basic";
    const headers = ticket
      ? quotaHeaders(
          decideQuota({ ...ticket, count: ticket.count - 1 }, tier, deps.quota.limits),
          nowMs,
        )
      : {};
    return replayOf(record, requestHash, headers);
  }
  if (!ticket) throw (taken as PromiseRejectedResult).reason;
  if (!user) {
    await refund();
    throw new UnauthorizedError("The account no longer exists.");
  }
  if (!room) {
    await refund();
    throw new NotFoundError("No such chatroom.");
  }
  const decision: QuotaDecision = decideQuota(ticket, user.tier, deps.quota.limits);
  if (!decision.accepted) {
    await refund();
    const key = input.idempotencyKey;
    if (key && ownsClaim.status === "fulfilled" && ownsClaim.value === false) {
      // Another request with this key is in flight: most likely this very prompt, sent again
      // (a client timeout) while the first, which took the day's last prompt, is being written.
      // Its response is the answer, not a 429.
      const first = await awaitInFlightRecord(deps, input.userId, key);
      if (first) return replayOf(first, requestHash, quotaHeaders(decision, nowMs));
      throw new ConflictError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        "idempotency_in_progress",
      );
    }
    throw dailyLimitError(decision, nowMs);
  }

  const promptRow: MessageRow = {
    id: newId(),
    chatroomId: input.chatroomId,
    userId: input.userId,
    role: "user",
    content: input.content,
    status: "complete",
    error: null,
    finishReason: null,
    promptTokens: null,
    replyTokens: null,
    replyToId: null,
    jobId: null,
    quotaDay: ticket.day,
    createdAt: now,
    completedAt: now,
  };
  const replyRow: MessageRow = {
    ...promptRow,
    id: newId(),
    role: "model",
    content: "",
    status: "pending",
    replyToId: promptRow.id,
    jobId: input.mode === "stream" ? STREAM_JOB_ID : null,
    completedAt: null,
  };
  const body: PromptResponse = { message: messageView(promptRow), reply: messageView(replyRow) };
  const request = promptRequest(config, [{ role: "user", content: input.content }, ...history]);
  const key = input.idempotencyKey;

  // Round 2.
  const [written, published, invalidated] = await Promise.allSettled([
    db.batch([
      insertMessages(db, [promptRow, replyRow]),
      recordExchange(db, { id: input.chatroomId, userId: input.userId, added: 2, now }),
      // A live record with the same key fails the insert and rolls the whole batch back.
      ...(key
        ? [
            deleteExpiredIdempotencyRecord(db, input.userId, key, now),
            insertIdempotencyRecord(db, {
              userId: input.userId,
              key,
              requestHash,
              statusCode: 202,
              responseBody: body,
              createdAt: now,
              expiresAt: new Date(nowMs + IDEMPOTENCY_TTL_MS),
            }),
          ]
        : []),
    ]),
    input.mode === "queued"
      ? deps.queue.publish(replyJob(config, replyRow.id, request))
      : Promise.resolve(null),
    deps.listCache.invalidate(input.userId),
  ]);

  if (written.status === "rejected") {
    await refund();
    const state = sqlStateOf(written.reason);
    if (state === "23505" && key) {
      // A parallel request with the same key won the insert; answer as its replay.
      const [winner] = await selectIdempotencyRecord(db, input.userId, key, now);
      if (winner) return replayOf(winner, requestHash, quotaHeaders(decision, nowMs));
    }
    if (state === "23503") throw new NotFoundError("No such chatroom.");
    throw written.reason;
  }
  if (published.status === "fulfilled" && published.value) {
    background(deps, "reply_job_record", setReplyJob(db, replyRow.id, published.value.messageId));
  } else if (published.status === "rejected") {
    // The prompt and the pending reply are committed; the sweep republishes (dedup id = reply id).
    console.warn(
      JSON.stringify({
        level: "warn",
        msg: "reply_publish_failed",
        reply_id: replyRow.id,
        error: String(published.reason),
      }),
    );
  }
  // Bumped again after the commit: a list read racing the batch may have cached the old counts.
  background(
    deps,
    "cache_invalidate",
    invalidated.status === "fulfilled"
      ? deps.listCache.invalidate(input.userId)
      : invalidateList(deps, input.userId),
  );
  return {
    kind: "accepted",
    body,
    headers: quotaHeaders(decision, nowMs),
    job: { replyId: replyRow.id, userId: input.userId, request },
  };
}

/** Where the SSE path writes; a write to a client that went away must not throw. */
export type StreamSink = (event: "delta" | "done" | "error", data: unknown) => void;

/**
 * Produces a reply by streaming Gemini directly, then saves it exactly like a queued reply
 * (same conditional UPDATE, same refund on failure). Keeps going when the client disconnects:
 * the caller runs this under waitUntil.
 */
export async function streamReply(
  deps: ChatDeps,
  job: { replyId: string; userId: string; chatroomId: string; request: GenerateContentBody },
  emit: StreamSink,
): Promise<void> {
  let outcome: ReplyOutcome;
  try {
    let final: ReplyOutcome | null = null;
    for await (const event of deps.gemini.stream(job.request)) {
      if (event.type === "delta") {
        if (event.text) emit("delta", { text: event.text });
      } else {
        final = outcomeOfAnswer(event.answer);
      }
    }
    outcome = final ?? outcomeOfAnswer(null);
  } catch (err) {
    console.warn(
      JSON.stringify({ level: "warn", msg: "gemini_stream_failed", error: describeError(err) }),
    );
    outcome = outcomeOfStreamError(err);
  }
  const settled = await settleReply(deps, job.replyId, outcome);
  let reply: MessageRow | undefined =
    settled.status === "complete" || settled.status === "failed" ? settled.reply : undefined;
  if (!reply) {
    [reply] = await selectMessage(deps.db, job.chatroomId, job.userId, job.replyId);
  }
  if (!reply) {
    emit("error", { error: { code: "not_found", message: "The chatroom was deleted." } });
    return;
  }
  const view = messageView(reply);
  if (reply.status === "complete") emit("done", { reply: view });
  else {
    emit("error", {
      error: { code: reply.error ?? "upstream_error", message: "The reply failed." },
      reply: view,
    });
  }
}
