import type { ServiceConfig } from "../../config";
import type { Database } from "../../db/client";
import type { VersionedCache } from "../../lib/cache";
import type { Clock } from "../../lib/clock";
import type { GeminiStreamer } from "../../lib/gemini";
import type { InFlightClaims } from "../../lib/in-flight-claims";
import type { PendingGate } from "../../lib/pending-gate";
import type { JobQueue } from "../../lib/queue";
import type { ReplyLog } from "../../lib/reply-log";
import { describeError, type Logger } from "../../log";
import type { DailyQuota } from "../quota";

/** Settings the chat services read (a slice of ServiceConfig, so tests can build them directly). */
export type ChatConfig = Pick<
  ServiceConfig,
  | "appUrl"
  | "geminiBaseUrl"
  | "geminiModel"
  | "geminiApiKey"
  | "systemPrompt"
  | "historyMaxMessages"
  | "historyMaxChars"
  | "replyDeadlineSeconds"
  | "qstashRetries"
  | "replyBudgets"
  | "geminiTimeoutSeconds"
  | "maxPendingReplies"
  | "streamGraceMs"
>;

/** The slice of the service context (src/context.ts) the chat services touch. */
export interface ChatDeps {
  db: Database;
  clock: Clock;
  /** The per-user cache of GET /chatroom pages. */
  listCache: VersionedCache;
  quota: DailyQuota;
  /** Idempotency keys of prompts being processed (see sendMessage). */
  promptClaims: InFlightClaims;
  /** Prompts accepted but not yet committed, per user (MAX_PENDING_REPLIES; see sendMessage). */
  pendingGate: PendingGate;
  queue: JobQueue;
  gemini: GeminiStreamer;
  /** The deltas of streamed replies, for clients that resume or attach (resume.ts). */
  replyLog: ReplyLog;
  /** Open follow streams per user (MAX_FOLLOWS_PER_USER; resume.ts). */
  followGate: PendingGate;
  config: ChatConfig;
  log: Logger;
  /** Work that may finish after the response (ctx.waitUntil in the Worker). */
  waitUntil(p: Promise<unknown>): void;
}

/** Runs `p` after the response, logging instead of throwing. */
export function background(
  deps: Pick<ChatDeps, "waitUntil" | "log">,
  what: string,
  p: Promise<unknown>,
) {
  deps.waitUntil(
    p.catch((err: unknown) => {
      deps.log.warn(`${what}_failed`, { error: describeError(err) });
    }),
  );
}

/** Longer than a prompt can take to be written (10 s query deadline, plus the publish). */
export const PROMPT_CLAIM_TTL_MS = 15_000;

/** How long GET /chatroom waits for Redis before it reads the database instead. */
export const CACHE_READ_TIMEOUT_MS = 300;
