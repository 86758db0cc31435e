import { z } from "zod";
// With its extension: `npm run dev` (local/dev.ts) loads this module in plain Node, which resolves
// no extensionless relative import.
import {
  shutDownModelMessage,
  THINKING_LEVELS,
  thinkingFamily,
  thinkingLevelsOf,
} from "./lib/gemini-models.ts";

const secret = (name: string, minBytes = 32) =>
  z
    .string({ error: `${name} is required` })
    .refine((v) => new TextEncoder().encode(v).length >= minBytes, {
      message: `${name} must be at least ${minBytes} bytes of random data`,
    });

const int = (fallback: number, min = 1) => z.coerce.number().int().min(min).default(fallback);
const url = z.url();

/**
 * Every binding and secret the Worker reads, validated once per isolate. A missing or weak
 * value is a startup error naming the variable, never an `undefined` deep inside a handler.
 */
export const EnvSchema = z
  .object({
    ENVIRONMENT: z.enum(["development", "test", "production"]).default("production"),
    /** Public base URL of this Worker: QStash callbacks and Stripe redirects are built from it. */
    APP_URL: url,
    /** Origins a client may pass as Stripe Checkout success/cancel URLs (comma-separated). */
    ALLOWED_REDIRECT_ORIGINS: z.string().default(""),

    DATABASE_URL: z.string().startsWith("postgres", "DATABASE_URL must be a postgres:// URL"),
    /** Overrides the Neon HTTP endpoint (the local cloud); unset in production. */
    NEON_FETCH_ENDPOINT: url.optional(),

    UPSTASH_REDIS_REST_URL: url,
    UPSTASH_REDIS_REST_TOKEN: z.string().min(1, "UPSTASH_REDIS_REST_TOKEN is required"),

    QSTASH_URL: url.default("https://qstash.upstash.io"),
    QSTASH_TOKEN: z.string().min(1, "QSTASH_TOKEN is required"),
    QSTASH_CURRENT_SIGNING_KEY: z.string().min(1, "QSTASH_CURRENT_SIGNING_KEY is required"),
    QSTASH_NEXT_SIGNING_KEY: z.string().min(1, "QSTASH_NEXT_SIGNING_KEY is required"),

    GEMINI_API_KEY: z.string().min(1, "GEMINI_API_KEY is required"),
    GEMINI_BASE_URL: url.default("https://generativelanguage.googleapis.com"),
    /** A stable model Google serves (docs/adr/0007); shut-down ids are refused, naming the successor. */
    GEMINI_MODEL: z
      .string()
      .min(1)
      .default("gemini-3.8-flash")
      .superRefine((model, ctx) => {
        const refused = shutDownModelMessage(model);
        if (refused) ctx.addIssue({ code: "custom", message: refused });
      }),
    /** Per-reply output bound (thinking included), per tier. */
    GEMINI_MAX_OUTPUT_TOKENS_BASIC: int(2048),
    GEMINI_MAX_OUTPUT_TOKENS_PRO: int(8192),
    /** Thinking bound for 3.x-and-later models (a level), per tier. */
    GEMINI_THINKING_LEVEL_BASIC: z.enum(THINKING_LEVELS).default("LOW"),
    GEMINI_THINKING_LEVEL_PRO: z.enum(THINKING_LEVELS).default("MEDIUM"),
    /** Thinking bound for 2.5 models (a token budget; 0 turns thinking off on Flash), per tier. */
    GEMINI_THINKING_BUDGET_BASIC: int(512, 0),
    GEMINI_THINKING_BUDGET_PRO: int(2048, 0),
    /** Longest one generation may run: the QStash Upstash-Timeout and the stream's timeout. */
    GEMINI_TIMEOUT_SECONDS: int(300, 10),
    GEMINI_SYSTEM_PROMPT: z.string().default("You are a helpful, concise assistant."),

    STRIPE_SECRET_KEY: z.string().min(1, "STRIPE_SECRET_KEY is required"),
    STRIPE_WEBHOOK_SECRET: z.string().min(1, "STRIPE_WEBHOOK_SECRET is required"),
    STRIPE_PRO_PRICE_ID: z.string().min(1, "STRIPE_PRO_PRICE_ID is required"),
    /** Overrides the Stripe API origin (the local cloud); unset in production. */
    STRIPE_API_BASE: url.optional(),

    JWT_SECRET: secret("JWT_SECRET"),
    /** Key of the HMAC that OTP codes are stored under. */
    OTP_SECRET: secret("OTP_SECRET"),
    OTP_DELIVERY: z.enum(["response", "log"]).default("log"),
    /** At most an hour; a revoked session's token is refused at once anyway (ADR 0008). */
    ACCESS_TOKEN_TTL_SECONDS: int(900).pipe(z.number().max(3600)),
    REFRESH_TOKEN_TTL_SECONDS: int(30 * 24 * 3600),
    /** Absolute lifetime of a session (refresh family) from its login, however often rotated. */
    REFRESH_FAMILY_MAX_AGE_SECONDS: int(90 * 24 * 3600),

    BASIC_DAILY_LIMIT: int(5),
    /** Replies one user may have pending at once (so one user cannot fill the Gemini rate limit). */
    MAX_PENDING_REPLIES_BASIC: int(1),
    MAX_PENDING_REPLIES_PRO: int(3),
    PRO_DAILY_LIMIT: int(1000),
    CHATROOM_CACHE_TTL_SECONDS: int(600),
    HISTORY_MAX_MESSAGES: int(20),
    HISTORY_MAX_CHARS: int(16_000),
    REPLY_DEADLINE_SECONDS: int(3600),
    /**
     * How long a streamed generation keeps running after its client left, so the client can
     * resume it; then it is handed to the queue. Cloudflare allows 30 s of waitUntil after the
     * response ends, and the hand-off needs a moment of it.
     */
    STREAM_GRACE_SECONDS: int(20, 0).pipe(z.number().max(25)),
    QSTASH_RETRIES: int(3, 0),
  })
  .superRefine((env, ctx) => {
    // A reply must not be declared timed out while QStash may still deliver Gemini's answer.
    const chain = qstashRetryChainSeconds(env.QSTASH_RETRIES);
    if (env.REPLY_DEADLINE_SECONDS <= chain) {
      ctx.addIssue({
        code: "custom",
        path: ["REPLY_DEADLINE_SECONDS"],
        message: `REPLY_DEADLINE_SECONDS must exceed QStash's retry chain for QSTASH_RETRIES=${env.QSTASH_RETRIES} (${Math.ceil(chain)} s)`,
      });
    }
    for (const tier of ["BASIC", "PRO"] as const) {
      const level = env[`GEMINI_THINKING_LEVEL_${tier}`];
      const levels = thinkingLevelsOf(env.GEMINI_MODEL);
      if (thinkingFamily(env.GEMINI_MODEL) === "level" && !levels.includes(level)) {
        ctx.addIssue({
          code: "custom",
          path: [`GEMINI_THINKING_LEVEL_${tier}`],
          message: `${env.GEMINI_MODEL} takes thinking levels ${levels.join(", ")}, not ${level}`,
        });
      }
      // Thinking counts against maxOutputTokens: a budget that fills it leaves no room for text.
      if (env[`GEMINI_THINKING_BUDGET_${tier}`] >= env[`GEMINI_MAX_OUTPUT_TOKENS_${tier}`]) {
        ctx.addIssue({
          code: "custom",
          path: [`GEMINI_THINKING_BUDGET_${tier}`],
          message: `GEMINI_THINKING_BUDGET_${tier} must be below GEMINI_MAX_OUTPUT_TOKENS_${tier} (thinking counts against it)`,
        });
      }
    }
    // An allow-list, not "anything but production": a staging environment added later must not
    // echo codes either.
    if (
      env.OTP_DELIVERY === "response" &&
      !(env.ENVIRONMENT === "development" || env.ENVIRONMENT === "test")
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["OTP_DELIVERY"],
        message:
          "OTP_DELIVERY=response is allowed only when ENVIRONMENT is development or test (codes would leak)",
      });
    }
  });

export type Env = z.infer<typeof EnvSchema>;

/** Seconds from a message's first delivery to its last retry: QStash backs off min(1 d, e^(2.5·n)). */
export function qstashRetryChainSeconds(retries: number): number {
  let total = 0;
  for (let n = 1; n <= retries; n++) total += Math.min(86_400, Math.exp(2.5 * n));
  return total;
}

/** Raw Worker bindings: strings from wrangler vars and secrets. */
export type Bindings = Record<string, unknown>;

export class ConfigError extends Error {
  override name = "ConfigError";
}

/** Validates the bindings; throws one ConfigError listing every bad variable by name. */
export function parseEnv(bindings: Bindings): Env {
  const result = EnvSchema.safeParse(bindings);
  if (result.success) return result.data;
  const lines = result.error.issues.map((i) => `${i.path.join(".") || "env"}: ${i.message}`);
  throw new ConfigError(`Invalid configuration:\n  ${lines.join("\n  ")}`);
}
