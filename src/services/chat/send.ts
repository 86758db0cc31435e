import { eq } from "drizzle-orm";
import { QUERY_TIMEOUT_MS, sqlStateOf } from "../../db/client";
import {
  isWriteDeadlinePassed,
  recordExchange,
  selectOwnedChatroom,
} from "../../db/queries/chatrooms";
import {
  deleteExpiredIdempotencyRecord,
  insertIdempotencyRecord,
  selectIdempotencyRecord,
} from "../../db/queries/idempotency";
import {
  insertMessages,
  lockPrompt,
  type MessageRow,
  selectHistoryBeforeReply,
  selectHistoryWindow,
  selectMessage,
  selectPendingReplyIds,
  setReplyJob,
  supersedeReplies,
} from "../../db/queries/messages";
import { type Tier, users } from "../../db/schema/users";
import {
  ConflictError,
  DependencyUnavailableError,
  NotFoundError,
  type QuotaState,
  UnauthorizedError,
} from "../../errors";
import type { GeminiRequest } from "../../lib/gemini";
import { newId } from "../../lib/ids";
import type { Claim, ClaimState } from "../../lib/in-flight-claims";
import { describeError } from "../../log";
import {
  dailyLimitError,
  decideQuota,
  type QuotaDecision,
  type QuotaTicket,
  quotaState,
} from "../quota";
import { assertId } from "./chatrooms";
import { background, type ChatDeps } from "./deps";
import { promptRequest } from "./history";
import {
  awaitInFlightRecord,
  IDEMPOTENCY_TTL_MS,
  inProgressError,
  type PromptReplay,
  type PromptResponse,
  type RegenerateResponse,
  replayOf,
  requestHashOf,
} from "./idempotency";
import { replyJob, STREAM_JOB_ID } from "./replies";
import { messageView } from "./views";

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
  | PromptReplay
  | {
      kind: "accepted";
      body: PromptResponse & RegenerateResponse;
      /** Today's quota after this prompt. */
      quota: QuotaState;
      /** What the streaming path needs to produce the reply. */
      job: { replyId: string; userId: string; request: GeminiRequest };
    };

/**
 * POST /chatroom/:id/message up to the reply being handed off. Two sequential I/O rounds:
 *   1. [one db.batch: tier + ownership + history window + idempotency record]
 *      ‖ [one Redis script: quota token + pending-replies entry + list-cache version bump]
 *      ‖ [in-flight claim of the Idempotency-Key]
 *   2. [one db.batch: idempotency record + prompt + pending reply + chatroom counters]; then,
 *      after the response, the list-cache version bump again and the QStash publish
 *      (only for a committed reply: exactly one Gemini call per prompt)
 * Anything rejected after round 1 refunds its token, so refused prompts cost no quota; a round-2
 * write whose outcome is unknown (no SQL state) only once its reply is known not to exist.
 */
export async function sendMessage(
  deps: ChatDeps,
  input: SendMessageInput,
): Promise<SendMessageResult> {
  const scope = input.idempotencyKey ? `${input.userId}:${input.idempotencyKey}` : null;
  // Taken in round 1 beside the quota token. Null: unknown (Redis failed), which is neither
  // waited on as another's claim nor released as ours.
  const owner = crypto.randomUUID();
  const claim: KeyClaim = {
    scope,
    owner,
    state: scope
      ? deps.promptClaims
          .claim(scope, owner)
          .then((found) => foundClaim(found, deps.clock.now().getTime()))
          .catch(() => null)
      : Promise.resolve(null),
    held: false,
  };
  try {
    return await sendClaimedMessage(deps, input, claim);
  } catch (err) {
    // A failed prompt gives its key back at once, so the client's retry is not kept waiting;
    // unless its write's outcome is unknown, and the key stays held until it is known.
    if (scope && !claim.held && (await claim.state)?.state === "ours") {
      await deps.promptClaims.release(scope, owner).catch(() => {});
    }
    throw err;
  }
}

/** A keyed prompt's claim on its Idempotency-Key (src/lib/in-flight-claims.ts). */
interface KeyClaim {
  scope: string | null;
  /** This request's name on the claim: only it can release the claim or its hold. */
  owner: string;
  /** What the claim found, in round 1; null without a key or when Redis failed. */
  state: Promise<FoundClaim | null>;
  /** Set once the key is held for a write of unknown outcome: not released on the way out. */
  held: boolean;
}

/** What a claim found, and when another request's claim or hold expires (null: ours, or unknown). */
interface FoundClaim {
  state: ClaimState;
  endsAtMs: number | null;
}

function foundClaim(found: Claim, nowMs: number): FoundClaim {
  return {
    state: found.state,
    endsAtMs:
      found.state !== "ours" && found.expiresInMs !== null ? nowMs + found.expiresInMs : null,
  };
}

async function sendClaimedMessage(
  deps: ChatDeps,
  input: SendMessageInput,
  claim: KeyClaim,
): Promise<SendMessageResult> {
  assertId(input.chatroomId);
  const { db, config } = deps;
  const now = deps.clock.now();
  const nowMs = now.getTime();
  const regen = input.regenerate;
  if (regen) assertId(regen.replyId, "message");
  const requestHash = await (regen
    ? requestHashOf(`POST /chatroom/${input.chatroomId}/messages/${regen.replyId}/regenerate`)
    : requestHashOf(`POST /chatroom/${input.chatroomId}/message`, { content: input.content }));

  // Made before round 1 and in this order: messages sort by (created_at, id), prompt first.
  const promptId = newId();
  const replyId = newId();
  // This prompt's entry among the user's pending replies. Parallel repeats of one key share it.
  const gateMember = input.idempotencyKey ? `key:${input.idempotencyKey}` : replyId;
  const maxPending = Math.max(config.maxPendingReplies.basic, config.maxPendingReplies.pro);

  // Round 1 (the claim and the session check run beside it). The quota take, the pending-replies
  // entry and the list-cache version bump are one Redis command (issue 18 item 3): the bump may
  // come before the write, since the version is bumped again once the batch commits.
  const admitted = deps.quota.takeForPrompt(input.userId, replyId, {
    gate: deps.pendingGate.entry(input.userId, gateMember),
    invalidate: deps.listCache.invalidation(input.userId),
  });
  // The idempotency record and the regenerated reply are read only when there is one to read: a
  // plain prompt's batch holds 4 statements, not 6 (issue 18 item 3).
  const reads = [
    selectTier(db, input.userId),
    selectOwnedChatroom(db, input.chatroomId, input.userId),
    regen
      ? // The prompt and the window before it, as the prompt's own send read them (+ 1).
        selectHistoryBeforeReply(
          db,
          input.chatroomId,
          input.userId,
          regen.replyId,
          config.historyMaxMessages + 1,
        )
      : selectHistoryWindow(db, input.chatroomId, input.userId, config.historyMaxMessages),
    selectPendingReplyIds(db, input.userId, maxPending + 1),
    ...(input.idempotencyKey !== undefined
      ? [selectIdempotencyRecord(db, input.userId, input.idempotencyKey, now)]
      : []),
    ...(regen ? [selectMessage(db, input.chatroomId, input.userId, regen.replyId)] : []),
  ];
  const [context, taken, claimState, gate] = await Promise.allSettled([
    Promise.all([db.batch(reads as unknown as Parameters<typeof db.batch>[0]), input.sessionLive])
      .then(([rows]) => [...(rows as readonly unknown[])])
      .then(([userRows, roomRows, historyRows, pendingRows, ...optional]) => ({
        user: (userRows as Rows<typeof selectTier>)[0],
        room: (roomRows as Rows<typeof selectOwnedChatroom>)[0],
        history: historyRows as Rows<typeof selectHistoryWindow>,
        pendingReplies: pendingRows as Rows<typeof selectPendingReplyIds>,
        record:
          input.idempotencyKey !== undefined
            ? (optional.shift() as Rows<typeof selectIdempotencyRecord>)[0]
            : undefined,
        target: regen ? (optional.shift() as Rows<typeof selectMessage>)[0] : undefined,
      })),
    admitted.then((a) => a.ticket),
    claim.state,
    admitted.then((a) => a.members),
  ]);
  const ticket: QuotaTicket | null = taken.status === "fulfilled" ? taken.value : null;
  if (!ticket) {
    // The take's answer was lost, yet it may have run (or may still run): given back if so,
    // after the response, so a failing Redis still answers 503 at once (soak finding 4).
    background(deps, "quota_cancel_take", deps.quota.cancelTake(input.userId, replyId));
  }
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
  const { user, room, history, record, pendingReplies, target } = context.value;
  /** A replay's quota: today's count without this request's own token, which it gives back. */
  const replayQuota = (tier: Tier) =>
    ticket ? quotaState(quotaWithoutOwnToken(ticket, tier, deps.quota.limits), nowMs) : undefined;
  if (record) {
    await refund(true);
    return replayOf(record, requestHash, replayQuota(user?.tier ?? "basic"));
  }
  if (!ticket) throw (taken as PromiseRejectedResult).reason;
  const claimed = claimState.status === "fulfilled" ? claimState.value : null;
  if (claimed?.state === "held") {
    // An earlier attempt with this key failed without knowing whether its write committed, and
    // holds its token until it knows (settleUnknownWrite). Going ahead would count this prompt
    // twice meanwhile (its RateLimit-Remaining one short, or a 429 for the day's last prompt);
    // the replay, or a clean retry, is seconds away.
    await refund();
    throw inProgressError(claimed.endsAtMs, deps.clock.now().getTime());
  }
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
  /**
   * When another request holds this prompt's Idempotency-Key claim, the first request's replay
   * once it is written ("still_in_flight" if it is not within a few seconds); otherwise undefined.
   */
  const repeatOfPromptInFlight = async () => {
    const key = input.idempotencyKey;
    if (!key || claimed?.state !== "in_flight") return undefined;
    const first = await awaitInFlightRecord(deps, input.userId, key);
    return first ? replayOf(first, requestHash, replayQuota(user.tier)) : "still_in_flight";
  };
  if (!decision.accepted) {
    await refund();
    // Another request with this key is in flight: most likely this very prompt, sent again
    // (a client timeout) while the first, which took the day's last prompt, is being written.
    // Its response is the answer, not a 429.
    const repeat = await repeatOfPromptInFlight();
    if (repeat === "still_in_flight") {
      throw inProgressError(claimed?.endsAtMs ?? null, deps.clock.now().getTime());
    }
    if (repeat) return repeat;
    throw dailyLimitError(decision, nowMs);
  }
  // MAX_PENDING_REPLIES: committed pending replies (database) and prompts not yet committed
  // (Redis), counted once each; this prompt is among the latter. Without Redis, the database.
  const pending = new Set(pendingReplies.map((r) => r.id));
  if (gate.status === "fulfilled") for (const m of gate.value) pending.add(m);
  else pending.add(gateMember);
  if (pending.size > config.maxPendingReplies[user.tier]) {
    await refund();
    // A parallel repeat of a prompt in flight: its answer is the first one's.
    const repeat = await repeatOfPromptInFlight();
    if (repeat && repeat !== "still_in_flight") return repeat;
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
    refundOwedAt: null,
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

  // Round 2 (the list-cache version was bumped in round 1, so a page cached before this prompt
  // is not served after its 202). The batch can commit only until `commitBy` (ADR 3): its last
  // statement fails past it, so a batch held by the database rolls back instead of committing
  // after settleUnknownWrite has looked for it.
  const sentAtMs = deps.clock.now().getTime();
  const commitBy = new Date(sentAtMs + WRITE_COMMIT_WINDOW_MS);
  const [written] = await Promise.allSettled([
    db.batch([
      insertMessages(db, regen ? [replyRow] : [promptRow, replyRow]),
      // A regenerate locks its prompt before superseding: a parallel regenerate waits there
      // until this batch ends, so its supersede, on a later snapshot, sees this reply (ADR 5).
      ...(regen
        ? [
            lockPrompt(db, replyRow.replyToId as string),
            supersedeReplies(db, replyRow.replyToId as string, replyRow.id),
          ]
        : []),
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
      // Last, so the guard in its WHERE is the batch's last check before the commit.
      recordExchange(db, {
        id: input.chatroomId,
        userId: input.userId,
        added: regen ? 1 : 2,
        now,
        commitBy,
      }),
    ]),
  ]);

  if (written.status === "rejected") {
    const state = sqlStateOf(written.reason);
    if (state === undefined) {
      // No SQL state (the deadline, a lost connection): the batch may have committed, or may
      // still commit, unseen. Its token is given back only once the reply is known not to exist
      // (load run: an immediate refund let a retry replay the 202 for free, 6 prompts of 5).
      // The key is held until then: a resend in between is told to retry (409), not counted.
      const settleAtMs = sentAtMs + UNKNOWN_WRITE_SETTLE_MS;
      await leaveGate();
      if (claim.scope) {
        claim.held = true;
        const holdMs = settleAtMs + UNKNOWN_WRITE_HOLD_EXTRA_MS - deps.clock.now().getTime();
        await deps.promptClaims.hold(claim.scope, claim.owner, holdMs).catch(() => {});
      }
      background(
        deps,
        "quota_settle_unknown_write",
        settleUnknownWrite(deps, input, {
          day: ticket.day,
          replyId,
          settleAtMs,
          scope: claim.scope,
          owner: claim.owner,
        }),
      );
      throw written.reason;
    }
    if (isWriteDeadlinePassed(written.reason)) {
      // Refused by the guard: rolled back as a whole (a database clock ahead of ours can make it
      // fire before our own deadline).
      await refund();
      throw new DependencyUnavailableError("database", written.reason);
    }
    // 23505 on a key: a parallel repeat committed, and the database now counts its reply.
    await refund(state === "23505" && key !== undefined);
    if (state === "23505" && key) {
      // A parallel request with the same key won the insert; answer as its replay.
      const [winner] = await selectIdempotencyRecord(db, input.userId, key, now);
      if (winner) return replayOf(winner, requestHash, replayQuota(user.tier));
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
  // (Round 1's bump succeeded: it is part of the take, without which no prompt gets this far.)
  background(deps, "cache_invalidate", deps.listCache.invalidate(input.userId));
  return {
    kind: "accepted",
    body,
    quota: quotaState(decision, nowMs),
    job: { replyId: replyRow.id, userId: input.userId, request },
  };
}

/** The rows a query builder resolves to. */
type Rows<F extends (...args: never[]) => PromiseLike<unknown>> = Awaited<ReturnType<F>>;

function selectTier(db: ChatDeps["db"], userId: string) {
  return db.select({ tier: users.tier }).from(users).where(eq(users.id, userId)).limit(1);
}

/** The decision of a prompt whose own token is not counted (a replay gives it back). */
function quotaWithoutOwnToken(
  ticket: QuotaTicket,
  tier: Tier,
  limits: { basic: number; pro: number },
): QuotaDecision {
  return decideQuota({ ...ticket, count: ticket.count - 1 }, tier, limits);
}

/**
 * Round 2's batch may commit only this long after it was sent, by the database's clock
 * (`writeDeadlineGuard`, ADR 3). Longer than the Worker's 10 s query deadline, so a batch that
 * is merely slow, or a database clock up to 5 s ahead of ours, is not refused for nothing.
 */
export const WRITE_COMMIT_WINDOW_MS = QUERY_TIMEOUT_MS + 5_000;
/**
 * Between the guard's deadline and the read that settles an unknown write: covers a database
 * clock behind ours (by up to this much, less the commit's own time) and the commit itself.
 */
export const WRITE_SETTLE_MARGIN_MS = 5_000;
/**
 * How long after round 2 was sent a write whose outcome was unknown is settled: past its
 * deadline by the margin, the batch has committed or can no longer commit, so the read is final.
 * Within the ~30 s `waitUntil` grants after the response (sent at most 10 s after round 2).
 */
export const UNKNOWN_WRITE_SETTLE_MS = WRITE_COMMIT_WINDOW_MS + WRITE_SETTLE_MARGIN_MS;
/**
 * `waitUntil` keeps work ~30 s past the response; the settle starts at the response and stops
 * checking this long after it, leaving room for its hand-over to the sweep (one Redis command,
 * at most REDIS_TIMEOUT_MS plus a retry).
 */
const UNKNOWN_WRITE_BUDGET_MS = 25_000;
/**
 * Waits before each further existence check while the database still fails, spread over the
 * rest of the budget (the soak: one recheck 3 s after the first read left a Neon down window
 * of a few seconds to decide the token); a wait that would pass the budget is not taken.
 */
const UNKNOWN_WRITE_RECHECK_MS = [2_000, 3_000, 4_000, 5_000];
/** The key's hold outlasts the settle's checks by this much, should the settle be cut short. */
const UNKNOWN_WRITE_HOLD_EXTRA_MS = UNKNOWN_WRITE_RECHECK_MS.reduce((a, b) => a + b, 5_000);

/**
 * Gives a prompt's token back once its batch, whose outcome was unknown, is settled and its
 * reply row does not exist. A reply that exists is counted: its retry replays the stored 202,
 * and the sweep publishes it. If the database cannot say within the budget, the take is handed
 * to the sweep (`quota:unsettled`), which settles it once the database answers: the row's
 * absence is final then as now (the clock guard, ADR 3). Only if Redis refuses that too is the
 * token kept (logged). Then releases the prompt's Idempotency-Key, held meanwhile.
 */
async function settleUnknownWrite(
  deps: ChatDeps,
  { userId, chatroomId }: { userId: string; chatroomId: string },
  write: {
    day: string;
    replyId: string;
    settleAtMs: number;
    scope: string | null;
    owner: string;
  },
): Promise<void> {
  const { day, replyId } = write;
  const budgetEndMs = deps.clock.now().getTime() + UNKNOWN_WRITE_BUDGET_MS;
  try {
    let failure: unknown;
    const firstWait = Math.max(0, write.settleAtMs - deps.clock.now().getTime());
    for (const wait of [firstWait, ...UNKNOWN_WRITE_RECHECK_MS]) {
      if (wait !== firstWait && deps.clock.now().getTime() + wait > budgetEndMs) break;
      await new Promise((resolve) => setTimeout(resolve, wait));
      let exists: boolean;
      try {
        exists = (await selectMessage(deps.db, chatroomId, userId, replyId)).length > 0;
      } catch (err) {
        failure = err;
        continue;
      }
      if (!exists) await deps.quota.refund(userId, day, replyId);
      return;
    }
    try {
      await deps.quota.deferSettle({ replyId, userId, day, atMs: deps.clock.now().getTime() });
      deps.log.warn("quota_settle_deferred", { reply_id: replyId, error: describeError(failure) });
    } catch (err) {
      deps.log.error("quota_refund_failed", {
        reason: "unknown_write",
        reply_id: replyId,
        error: describeError(failure),
        defer_error: describeError(err),
      });
    }
  } finally {
    // Settled (or past its deadline for good): a resend now replays or goes ahead on its own.
    if (write.scope) await deps.promptClaims.release(write.scope, write.owner).catch(() => {});
  }
}

async function publishReply(
  deps: ChatDeps,
  replyId: string,
  request: GeminiRequest,
): Promise<void> {
  const { messageId } = await deps.queue.publish(replyJob(deps.config, replyId, request));
  await setReplyJob(deps.db, replyId, messageId);
}
