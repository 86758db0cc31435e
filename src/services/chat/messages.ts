import { eq } from "drizzle-orm";
import { recordExchange, selectOwnedChatroom } from "../../db/queries/chatrooms";
import {
  deleteExpiredIdempotencyRecord,
  type IdempotencyRow,
  insertIdempotencyRecord,
  selectIdempotencyRecord,
} from "../../db/queries/idempotency";
import {
  handOffStreamedReply,
  insertMessages,
  type MessageRow,
  selectHistoryBeforeReply,
  selectHistoryWindow,
  selectMessage,
  selectPendingReplyIds,
  selectReplyStatus,
  setReplyJob,
  supersedeReplies,
} from "../../db/queries/messages";
import { users } from "../../db/schema/users";
import {
  ConflictError,
  NotFoundError,
  type QuotaState,
  sqlStateOf,
  UnauthorizedError,
} from "../../errors";
import {
  buildGenerateContentBody,
  type ChatSettings,
  catalogueModel,
  type GeminiRequest,
  type GeminiTurn,
  generationConfigFor,
  SEARCH_TIERS,
  storableText,
} from "../../lib/gemini";
import { newId } from "../../lib/ids";
import { describeError } from "../../log";
import {
  dailyLimitError,
  decideQuota,
  type QuotaDecision,
  type QuotaTicket,
  quotaState,
} from "../quota";
import { assertId, invalidateList } from "./chatrooms";
import { finishCancelledStream, STREAM_CANCEL_POLL_MS } from "./control";
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

/** The body of a 202 from POST …/messages/:message_id/regenerate. */
export interface RegenerateResponse {
  reply: MessageView;
}

export interface SendMessageInput {
  userId: string;
  chatroomId: string;
  content: string;
  /**
   * Regenerate this model reply instead of sending `content`: a new pending reply to the same
   * prompt, with the history before it; no prompt row is written.
   */
  regenerate?: { replyId: string };
  idempotencyKey: string | undefined;
  /** `stream`: the caller produces the reply itself (SSE) instead of queueing it. */
  mode: "queued" | "stream";
  /** The caller's session check (auth middleware), awaited in round 1, before any write. */
  sessionLive?: Promise<void>;
}

export type SendMessageResult =
  | {
      /** The stored answer of an earlier request with the same Idempotency-Key. */
      kind: "replay";
      status: number;
      body: PromptResponse & RegenerateResponse;
      /** Today's quota as it stands (no token was taken for the replay). */
      quota: QuotaState | undefined;
    }
  | {
      kind: "accepted";
      body: PromptResponse & RegenerateResponse;
      /** Today's quota after this prompt. */
      quota: QuotaState;
      /** What the streaming path needs to produce the reply. */
      job: { replyId: string; userId: string; request: GeminiRequest };
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

/**
 * The Gemini request for a prompt: the chatroom's settings over the deployment's defaults,
 * bounded by the tier's reply budget (docs/adr/0007). Settings are checked again here, against
 * the tier the user has now: a model or feature of a plan since left falls back to the default.
 */
export function promptRequest(
  config: ChatConfig,
  tier: "basic" | "pro",
  newestFirst: { role: "user" | "model"; content: string }[],
  settings: ChatSettings | null = null,
): GeminiRequest {
  const chosen = settings?.model ? catalogueModel(settings.model) : undefined;
  const model = chosen?.tiers.includes(tier) ? chosen.id : config.geminiModel;
  const budget = config.replyBudgets[tier];
  const maxOutputTokens = Math.min(
    settings?.max_output_tokens ?? budget.maxOutputTokens,
    budget.maxOutputTokens,
    chosen?.tiers.includes(tier) ? chosen.output_token_limit : Number.POSITIVE_INFINITY,
  );
  const generationConfig = generationConfigFor(model, {
    ...budget,
    maxOutputTokens,
    // Thinking counts against maxOutputTokens: a small chosen bound leaves room for the answer.
    thinkingBudget: Math.min(budget.thinkingBudget, Math.floor(maxOutputTokens / 2)),
  });
  if (settings?.temperature !== undefined) generationConfig.temperature = settings.temperature;
  const body = buildGenerateContentBody(
    historyTurns(newestFirst, config.historyMaxChars),
    settings?.system_instruction ?? config.systemPrompt,
    generationConfig,
  );
  if (settings?.google_search === true && SEARCH_TIERS.includes(tier)) {
    body.tools = [{ googleSearch: {} }];
  }
  return { model, body };
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function replayOf(
  row: IdempotencyRow,
  requestHash: string,
  quota: QuotaState | undefined,
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
    body: row.responseBody as PromptResponse & RegenerateResponse,
    quota,
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
 *      ‖ [list-cache version bump]; then, after the response, the QStash publish
 *      (only for a committed reply: exactly one Gemini call per prompt)
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
  const regen = input.regenerate;
  if (regen) assertId(regen.replyId, "message");
  const requestHash = await sha256Hex(
    regen
      ? `POST /chatroom/${input.chatroomId}/messages/${regen.replyId}/regenerate\n`
      : `POST /chatroom/${input.chatroomId}/message\n${JSON.stringify({ content: input.content })}`,
  );

  // Made before round 1 and in this order: messages sort by (created_at, id), prompt first.
  const promptId = newId();
  const replyId = newId();
  // This prompt's entry among the user's pending replies. Parallel repeats of one key share it.
  const gateMember = input.idempotencyKey ? `key:${input.idempotencyKey}` : replyId;
  const maxPending = Math.max(config.maxPendingReplies.basic, config.maxPendingReplies.pro);

  // Round 1 (the claim, the pending-replies entry and the session check run beside it).
  const [context, taken, ownsClaim, gate] = await Promise.allSettled([
    Promise.all([
      db.batch([
        db.select({ tier: users.tier }).from(users).where(eq(users.id, input.userId)).limit(1),
        selectOwnedChatroom(db, input.chatroomId, input.userId),
        regen
          ? selectHistoryBeforeReply(
              db,
              input.chatroomId,
              input.userId,
              regen.replyId,
              config.historyMaxMessages,
            )
          : selectHistoryWindow(db, input.chatroomId, input.userId, config.historyMaxMessages),
        selectIdempotencyRecord(db, input.userId, input.idempotencyKey ?? null, now),
        selectPendingReplyIds(db, input.userId, maxPending + 1),
        selectMessage(db, input.chatroomId, input.userId, regen?.replyId ?? promptId),
      ]),
      input.sessionLive,
    ]).then(([rows]) => rows),
    deps.quota.take(input.userId),
    claimed,
    deps.pendingGate.enter(input.userId, gateMember),
  ]);
  const ticket: QuotaTicket | null = taken.status === "fulfilled" ? taken.value : null;
  /**
   * A keyed entry is shared with parallel repeats of the key, so it is left to expire, unless
   * `release` says it must go: the key's prompt is committed (the database counts that reply
   * from then on), or the caller's session is revoked (a signed-out token must not be able to
   * hold the owner's pending slot for the entry's 15 s, again and again).
   */
  const leaveGate = async (release = false) => {
    if (gate.status === "fulfilled" && (release || !input.idempotencyKey)) {
      const released = deps.pendingGate.release(input.userId, gateMember);
      background(deps, "pending_gate_release", released);
      await released.catch(() => {});
    }
  };
  /** Gives the quota token and the pending slot back together (one round, both best effort). */
  const refund = async (release = false) => {
    const leaving = leaveGate(release);
    if (ticket) {
      try {
        await deps.quota.refund(input.userId, ticket.day, replyId);
      } catch (err) {
        deps.log.error("quota_refund_failed", { error: describeError(err) });
      }
    }
    await leaving;
  };

  if (context.status === "rejected") {
    await refund(context.reason instanceof UnauthorizedError);
    throw context.reason;
  }
  const [[user], [room], history, [record], pendingReplies, [target]] = context.value;
  if (record) {
    await refund(true);
    const tier = user?.tier ?? "basic";
    const quota = ticket
      ? quotaState(
          decideQuota({ ...ticket, count: ticket.count - 1 }, tier, deps.quota.limits),
          nowMs,
        )
      : undefined;
    return replayOf(record, requestHash, quota);
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
  if (regen && (target?.role !== "model" || !target.replyToId)) {
    await refund();
    throw new NotFoundError("No such reply.");
  }
  if (regen && target?.status === "pending") {
    await refund();
    throw new ConflictError(
      "This reply is still being written; cancel it or wait for it first.",
      "reply_in_progress",
    );
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
      if (first) return replayOf(first, requestHash, quotaState(decision, nowMs));
      throw new ConflictError(
        "A request with this Idempotency-Key is still being processed; retry shortly.",
        "idempotency_in_progress",
      );
    }
    throw dailyLimitError(decision, nowMs);
  }
  // MAX_PENDING_REPLIES: committed pending replies (database) and prompts not yet committed
  // (Redis), counted once each; this prompt is among the latter. Without Redis, the database.
  const pending = new Set(pendingReplies.map((r) => r.id));
  if (gate.status === "fulfilled") for (const m of gate.value) pending.add(m);
  else pending.add(gateMember);
  if (pending.size > config.maxPendingReplies[user.tier]) {
    await refund();
    const key = input.idempotencyKey;
    if (key && ownsClaim.status === "fulfilled" && ownsClaim.value === false) {
      // A parallel repeat of a prompt in flight: its answer is the first one's.
      const first = await awaitInFlightRecord(deps, input.userId, key);
      if (first) return replayOf(first, requestHash, quotaState(decision, nowMs));
    }
    throw new ConflictError(
      `You already have ${config.maxPendingReplies[user.tier]} ${config.maxPendingReplies[user.tier] === 1 ? "reply" : "replies"} pending; wait for one to finish.`,
      "reply_in_progress",
    );
  }

  const promptRow: MessageRow = {
    id: promptId,
    chatroomId: input.chatroomId,
    userId: input.userId,
    role: "user",
    content: input.content,
    status: "complete",
    error: null,
    finishReason: null,
    promptTokens: null,
    replyTokens: null,
    thoughtTokens: null,
    cachedTokens: null,
    totalTokens: null,
    model: null,
    replyToId: null,
    jobId: null,
    quotaDay: ticket.day,
    supersededBy: null,
    grounding: null,
    createdAt: now,
    completedAt: now,
  };
  const replyRow: MessageRow = {
    ...promptRow,
    id: replyId,
    role: "model",
    content: "",
    status: "pending",
    replyToId: regen && target?.replyToId ? target.replyToId : promptRow.id,
    jobId: input.mode === "stream" ? STREAM_JOB_ID : null,
    completedAt: null,
  };
  const body = (
    regen
      ? { reply: messageView(replyRow) }
      : { message: messageView(promptRow), reply: messageView(replyRow) }
  ) as PromptResponse & RegenerateResponse;
  const request = promptRequest(
    config,
    user.tier,
    regen ? history : [{ role: "user", content: input.content }, ...history],
    room.settings,
  );
  const key = input.idempotencyKey;

  // Round 2.
  const [written, invalidated] = await Promise.allSettled([
    db.batch([
      insertMessages(db, regen ? [replyRow] : [promptRow, replyRow]),
      ...(regen ? [supersedeReplies(db, replyRow.replyToId as string, replyRow.id)] : []),
      recordExchange(db, {
        id: input.chatroomId,
        userId: input.userId,
        added: regen ? 1 : 2,
        now,
      }),
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
    deps.listCache.invalidate(input.userId),
  ]);

  if (written.status === "rejected") {
    const state = sqlStateOf(written.reason);
    // 23505 on a key: a parallel repeat committed, and the database now counts its reply.
    await refund(state === "23505" && key !== undefined);
    if (state === "23505" && key) {
      // A parallel request with the same key won the insert; answer as its replay.
      const [winner] = await selectIdempotencyRecord(db, input.userId, key, now);
      if (winner) return replayOf(winner, requestHash, quotaState(decision, nowMs));
    }
    if (state === "23503") throw new NotFoundError("No such chatroom.");
    throw written.reason;
  }
  if (input.idempotencyKey && gate.status === "fulfilled") {
    // Committed: the entry now stands for this reply, released when the reply settles.
    background(deps, "pending_gate_swap", deps.pendingGate.swap(input.userId, gateMember, replyId));
  }
  if (input.mode === "queued") {
    // Published only once the reply is committed, after the response: a parallel repeat of the
    // same Idempotency-Key whose batch lost, or a prompt whose chatroom was deleted meanwhile,
    // never reaches Gemini. A publish that fails (or is cut) is left to the sweep, which
    // republishes unqueued replies (deduplication id = reply id).
    background(deps, "reply_publish", publishReply(deps, replyRow.id, request));
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
    quota: quotaState(decision, nowMs),
    job: { replyId: replyRow.id, userId: input.userId, request },
  };
}

async function publishReply(
  deps: ChatDeps,
  replyId: string,
  request: GeminiRequest,
): Promise<void> {
  const { messageId } = await deps.queue.publish(replyJob(deps.config, replyId, request));
  await setReplyJob(deps.db, replyId, messageId);
}

/** Where the SSE path writes; a write to a client that went away must not throw. */
export type StreamSink = (event: "delta" | "done" | "error" | "cancelled", data: unknown) => void;

/**
 * Produces a reply by streaming Gemini directly, then saves it exactly like a queued reply
 * (same conditional UPDATE, same settlement). When the client goes away (`clientGone` aborts)
 * before the answer is complete, the unfinished generation is handed to the queued path: the
 * stream is aborted and a QStash job for the same reply is published, so the reply is finished
 * and saved by the job's callback rather than by a Worker invocation Cloudflare may cut ~30 s
 * after the disconnect (ADR 5).
 */
export async function streamReply(
  deps: ChatDeps,
  job: { replyId: string; userId: string; chatroomId: string; request: GeminiRequest },
  emit: StreamSink,
  clientGone?: AbortSignal,
): Promise<void> {
  const upstream = new AbortController();
  const stop = () => upstream.abort();
  clientGone?.addEventListener("abort", stop);
  // The cancel flag: POST …/cancel marks the reply cancelled; this loop stops Gemini when it
  // sees that (checked every STREAM_CANCEL_POLL_MS, so within half a second).
  let cancelled = false;
  let checking = false;
  const poll = setInterval(() => {
    if (checking || cancelled) return;
    checking = true;
    selectReplyStatus(deps.db, job.replyId)
      .then(([row]) => {
        if (row?.status === "cancelled") {
          cancelled = true;
          upstream.abort();
        }
      })
      .catch(() => {})
      .finally(() => {
        checking = false;
      });
  }, STREAM_CANCEL_POLL_MS);
  let outcome: ReplyOutcome;
  // What the client has been sent: kept (and counted) even if the stream then fails.
  let delivered = "";
  try {
    let final: ReplyOutcome | null = null;
    for await (const event of deps.gemini.stream(
      job.request.body,
      upstream.signal,
      job.request.model,
    )) {
      if (cancelled) break;
      if (event.type === "delta") {
        if (event.text) {
          delivered += event.text;
          emit("delta", { text: event.text });
        }
      } else {
        final = outcomeOfAnswer(event.answer);
      }
      if (clientGone?.aborted && !final) break;
    }
    if (clientGone?.aborted && !final && !cancelled) {
      if (await handOffToQueue(deps, job)) return;
    }
    outcome = final ?? outcomeOfAnswer(null);
    if (outcome.kind === "failed" && delivered) {
      // A late stop (SAFETY, RECITATION…) after text: the text is out, so it stays and counts.
      outcome = { ...outcome, charged: true, partialText: storableText(delivered) };
    }
  } catch (err) {
    if (clientGone?.aborted && !cancelled && (await handOffToQueue(deps, job))) return;
    if (!cancelled) {
      deps.log.warn("gemini_stream_failed", { error: describeError(err) });
    }
    outcome = outcomeOfStreamError(err, storableText(delivered));
  } finally {
    clearInterval(poll);
    clientGone?.removeEventListener("abort", stop);
  }
  // A cancel that landed first makes this a no-op (the UPDATE is conditional on `pending`).
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
  if (reply.status === "cancelled") {
    reply = await finishCancelledStream(deps, reply, delivered);
    emit("cancelled", { reply: messageView(reply) });
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

/**
 * Publishes the QStash job that finishes a streamed reply whose client left (deduplicated by
 * the reply id, like every reply job). False when the publish failed: the stream's own outcome
 * is then saved instead.
 */
async function handOffToQueue(
  deps: ChatDeps,
  job: { replyId: string; request: GeminiRequest },
): Promise<boolean> {
  try {
    const { messageId } = await deps.queue.publish(replyJob(deps.config, job.replyId, job.request));
    await handOffStreamedReply(deps.db, job.replyId, STREAM_JOB_ID, messageId);
    deps.log.info("stream_handed_off", { reply_id: job.replyId });
    return true;
  } catch (err) {
    deps.log.warn("stream_hand_off_failed", { error: describeError(err) });
    return false;
  }
}
