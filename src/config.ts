import type { Env } from "./env";
import type { ReplyBudget } from "./lib/gemini";

/**
 * What the services read from the configuration, under names that say what they are. Built once
 * per isolate from the validated `Env` (src/middleware/context.ts); services never see `Env`.
 */
export interface ServiceConfig {
  /** Public base URL of this Worker; QStash callbacks and billing redirects are built from it. */
  appUrl: string;
  /** Extra origins billing redirects may point to (comma-separated ALLOWED_REDIRECT_ORIGINS). */
  allowedRedirectOrigins: string;
  /** `STRIPE_PRO_PRICE_ID`: only a subscription to this price grants Pro. */
  proPriceId: string;
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
  /** How long a streamed generation outlives its client (resume) before the queue takes it. */
  streamGraceMs: number;
  /** Prompts per UTC day, per tier. */
  dailyLimits: { basic: number; pro: number };
  /** Seconds a cached GET /chatroom page lives. */
  chatroomCacheTtlSeconds: number;
  otpSecret: string;
  refreshTokenTtlSeconds: number;
  /** A family (session) older than this is refused at refresh, however often it rotated. */
  refreshFamilyMaxAgeSeconds: number;
  /** OTP_DELIVERY=response: codes come back in the response (development and tests only). */
  otpCodesInResponse: boolean;
}

export function serviceConfig(env: Env): ServiceConfig {
  return {
    appUrl: env.APP_URL,
    allowedRedirectOrigins: env.ALLOWED_REDIRECT_ORIGINS,
    proPriceId: env.STRIPE_PRO_PRICE_ID,
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
    streamGraceMs: env.STREAM_GRACE_SECONDS * 1000,
    dailyLimits: { basic: env.BASIC_DAILY_LIMIT, pro: env.PRO_DAILY_LIMIT },
    chatroomCacheTtlSeconds: env.CHATROOM_CACHE_TTL_SECONDS,
    otpSecret: env.OTP_SECRET,
    refreshTokenTtlSeconds: env.REFRESH_TOKEN_TTL_SECONDS,
    refreshFamilyMaxAgeSeconds: env.REFRESH_FAMILY_MAX_AGE_SECONDS,
    otpCodesInResponse: env.OTP_DELIVERY === "response",
  };
}
