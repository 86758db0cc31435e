import type { Database } from "../../db/client";
import type { Env } from "../../env";
import { describeError } from "../../errors";
import { createVersionedCache, type VersionedCache } from "../../lib/cache";
import { createInFlightClaims, type InFlightClaims } from "../../lib/claims";
import type { Clock } from "../../lib/clock";
import type { GeminiStreamer, ReplyBudget } from "../../lib/gemini";
import { createPendingGate, type PendingGate } from "../../lib/pending-gate";
import type { JobQueue } from "../../lib/queue";
import type { Services } from "../../middleware/services";
import { createDailyQuota, type DailyQuota } from "../quota";

/** Settings the chat services read (a subset of Env, so tests can build them directly). */
export interface ChatConfig {
  /** Public base URL of this Worker; QStash callbacks are built from it. */
  appUrl: string;
  geminiBaseUrl: string;
  geminiModel: string;
  geminiApiKey: string;
  systemPrompt: string;
  historyMaxMessages: number;
  historyMaxChars: number;
  replyDeadlineSeconds: number;
  qstashRetries: number;
  /** What one reply may spend, per tier (generationConfig of every Gemini request). */
  replyBudgets: { basic: ReplyBudget; pro: ReplyBudget };
  /** Longest a generation may run (the QStash job's Upstash-Timeout). */
  geminiTimeoutSeconds: number;
  /** MAX_PENDING_REPLIES per tier. */
  maxPendingReplies: { basic: number; pro: number };
}

/** Everything the chat services touch. */
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
  config: ChatConfig;
  /** Work that may finish after the response (ctx.waitUntil in the Worker). */
  waitUntil(p: Promise<unknown>): void;
}

/** Runs `p` after the response, logging instead of throwing. */
export function background(deps: Pick<ChatDeps, "waitUntil">, what: string, p: Promise<unknown>) {
  deps.waitUntil(
    p.catch((err: unknown) => {
      console.warn(
        JSON.stringify({ level: "warn", msg: `${what}_failed`, error: describeError(err) }),
      );
    }),
  );
}

/** Longer than a prompt can take to be written (10 s query deadline, plus the publish). */
export const PROMPT_CLAIM_TTL_MS = 15_000;

/** How long GET /chatroom waits for Redis before it reads the database instead. */
export const CACHE_READ_TIMEOUT_MS = 300;

export function chatConfig(env: Env): ChatConfig {
  return {
    appUrl: env.APP_URL,
    geminiBaseUrl: env.GEMINI_BASE_URL,
    geminiModel: env.GEMINI_MODEL,
    geminiApiKey: env.GEMINI_API_KEY,
    systemPrompt: env.GEMINI_SYSTEM_PROMPT,
    historyMaxMessages: env.HISTORY_MAX_MESSAGES,
    historyMaxChars: env.HISTORY_MAX_CHARS,
    replyDeadlineSeconds: env.REPLY_DEADLINE_SECONDS,
    qstashRetries: env.QSTASH_RETRIES,
    replyBudgets: {
      basic: {
        maxOutputTokens: env.GEMINI_MAX_OUTPUT_TOKENS_BASIC,
        thinkingBudget: env.GEMINI_THINKING_BUDGET_BASIC,
        thinkingLevel: env.GEMINI_THINKING_LEVEL_BASIC,
      },
      pro: {
        maxOutputTokens: env.GEMINI_MAX_OUTPUT_TOKENS_PRO,
        thinkingBudget: env.GEMINI_THINKING_BUDGET_PRO,
        thinkingLevel: env.GEMINI_THINKING_LEVEL_PRO,
      },
    },
    geminiTimeoutSeconds: env.GEMINI_TIMEOUT_SECONDS,
    maxPendingReplies: { basic: env.MAX_PENDING_REPLIES_BASIC, pro: env.MAX_PENDING_REPLIES_PRO },
  };
}

/** Chat dependencies from the request's adapters (also used by the scheduled sweep). */
export function buildChatDeps(
  services: Services,
  env: Env,
  waitUntil: (p: Promise<unknown>) => void,
): ChatDeps {
  return {
    db: services.db,
    clock: services.clock,
    listCache: createVersionedCache({
      redis: services.redis,
      namespace: "cache:chatrooms",
      ttlSeconds: env.CHATROOM_CACHE_TTL_SECONDS,
      readTimeoutMs: CACHE_READ_TIMEOUT_MS,
    }),
    quota: createDailyQuota({
      redis: services.redis,
      basicLimit: env.BASIC_DAILY_LIMIT,
      proLimit: env.PRO_DAILY_LIMIT,
    }),
    promptClaims: createInFlightClaims(services.redis, {
      namespace: "claim:prompt",
      ttlMs: PROMPT_CLAIM_TTL_MS,
    }),
    pendingGate: createPendingGate(services.redis, {
      namespace: "pending:replies",
      ttlMs: PROMPT_CLAIM_TTL_MS,
    }),
    queue: services.queue,
    gemini: services.gemini,
    config: chatConfig(env),
    waitUntil,
  };
}
