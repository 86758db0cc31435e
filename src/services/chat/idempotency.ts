import { type IdempotencyRow, selectIdempotencyRecord } from "../../db/queries/idempotency";
import { ConflictError, IdempotencyInProgressError, type QuotaState } from "../../errors";
import type { ChatDeps } from "./deps";
import type { MessageView } from "./views";

export const IDEMPOTENCY_TTL_MS = 24 * 3600 * 1000;

/** The body of a 202 from POST /chatroom/:id/message (also what an Idempotency-Key replays). */
export interface PromptResponse {
  message: MessageView;
  reply: MessageView;
}

/** The body of a 202 from POST …/messages/:message_id/regenerate. */
export interface RegenerateResponse {
  reply: MessageView;
}

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * What an Idempotency-Key's record compares a repeat against: the SHA-256 of the method and path
 * (`route`) and the body as JSON with each object's keys sorted, so one body hashes the same
 * whatever its key order (no body: nothing after the line break).
 */
export function requestHashOf(route: string, body?: unknown): Promise<string> {
  return sha256Hex(`${route}\n${body === undefined ? "" : canonicalJson(body)}`);
}

function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

/** The stored answer of an earlier request with the same Idempotency-Key. */
export interface PromptReplay {
  kind: "replay";
  status: number;
  body: PromptResponse & RegenerateResponse;
  /** Today's quota as it stands (no token was taken for the replay). */
  quota: QuotaState | undefined;
}

export function replayOf(
  row: IdempotencyRow,
  requestHash: string,
  quota: QuotaState | undefined,
): PromptReplay {
  return { kind: "replay", ...storedAnswerOf<PromptReplay["body"]>(row, requestHash), quota };
}

/**
 * What an earlier request with the same Idempotency-Key answered (its status and body as
 * stored), for any route; 409 idempotency_key_reused when that request was a different one.
 */
export function storedAnswerOf<Body>(
  row: IdempotencyRow,
  requestHash: string,
): { status: number; body: Body } {
  if (row.requestHash !== requestHash) {
    throw new ConflictError(
      "This Idempotency-Key was already used for a different request.",
      "idempotency_key_reused",
    );
  }
  return { status: row.statusCode, body: row.responseBody as Body };
}

/** Waits between looks for the record of a same-key prompt in flight (6.3 s in all). */
export const IN_FLIGHT_WAITS_MS = [100, 200, 400, 800, 1600, 3200];

/**
 * The record of a prompt with the same Idempotency-Key that another request is still writing,
 * once it commits; null if it does not within the waits (it failed, or is very slow).
 */
export async function awaitInFlightRecord(
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
 * The longest wait a 409 idempotency_in_progress asks for. The claim it met may last much longer
 * (a hold on an unknown write, ~30 s), yet the answer is often ready well before it ends: the
 * first request's write commits and is replayed, or a late write commits within its 15 s window
 * (ADR 3). A few seconds keeps a client from waiting long past that, for a handful of resends.
 */
export const IN_PROGRESS_RETRY_AFTER_MAX_SECONDS = 5;

/**
 * The 409 for a request whose Idempotency-Key another request holds: retry once that claim ends
 * (its holder releases it sooner if it can, and the key is free for this request once it does),
 * capped at IN_PROGRESS_RETRY_AFTER_MAX_SECONDS; the cap when the claim's end is not known.
 */
export function inProgressError(
  claimEndsAtMs: number | null,
  nowMs: number,
): IdempotencyInProgressError {
  const leftSeconds =
    claimEndsAtMs === null ? IN_PROGRESS_RETRY_AFTER_MAX_SECONDS : (claimEndsAtMs - nowMs) / 1000;
  return new IdempotencyInProgressError(
    Math.min(IN_PROGRESS_RETRY_AFTER_MAX_SECONDS, Math.max(1, Math.ceil(leftSeconds))),
  );
}
