import { createMiddleware } from "hono/factory";
import { type ServiceConfig, serviceConfig } from "../config";
import type { Adapters, AppEnv, ServiceContext } from "../context";
import { createDatabase } from "../db/client";
import { type Env, parseEnv } from "../env";
import { createBilling } from "../lib/billing";
import { createVersionedCache } from "../lib/cache";
import { createInFlightClaims } from "../lib/claims";
import { systemClock } from "../lib/clock";
import { createGeminiStreamer } from "../lib/gemini";
import { createOtpStore } from "../lib/otp";
import { createOtpDelivery } from "../lib/otp-delivery";
import { createPendingGate } from "../lib/pending-gate";
import { createJobQueue, createQueueSignatureVerifier } from "../lib/queue";
import { createRedis } from "../lib/redis";
import { createReplyLog, REPLY_LOG_TTL_SECONDS } from "../lib/reply-log";
import { createAccessTokens } from "../lib/tokens";
import type { Logger } from "../log";
import { createAuthLimiters } from "../services/auth/deps";
import { createBillingLimiters } from "../services/billing/admission";
import { CACHE_READ_TIMEOUT_MS, PROMPT_CLAIM_TTL_MS } from "../services/chat/deps";
import { FOLLOW_GATE_TTL_MS } from "../services/chat/resume";
import { createDailyQuota } from "../services/quota";

/**
 * The composition root: the only place that turns configuration into adapters and adapters into
 * the service context. Routes and services receive what is built here; none of them builds
 * dependencies or reads `Env` for a service.
 */

/**
 * Defines `key` on `target` as a getter that builds the value on first use and keeps it: a
 * request that never touches Stripe or Gemini never constructs their clients.
 */
function lazy<T extends object, K extends keyof T>(target: T, key: K, build: () => T[K]): void {
  Object.defineProperty(target, key, {
    configurable: true,
    enumerable: true,
    get() {
      const value = build();
      Object.defineProperty(target, key, { value, enumerable: true, writable: false });
      return value;
    },
  });
}

/** The vendor adapters for one request (each built on first use). */
export function buildAdapters(env: Env, log: Logger): Adapters {
  const adapters = { clock: systemClock } as Adapters;
  lazy(adapters, "db", () => createDatabase(env.DATABASE_URL, env.NEON_FETCH_ENDPOINT));
  lazy(adapters, "redis", () =>
    createRedis(env.UPSTASH_REDIS_REST_URL, env.UPSTASH_REDIS_REST_TOKEN),
  );
  lazy(adapters, "tokens", () => createAccessTokens(env.JWT_SECRET, env.ACCESS_TOKEN_TTL_SECONDS));
  lazy(adapters, "otpDelivery", () => createOtpDelivery(env.OTP_DELIVERY, log));
  lazy(adapters, "queue", () => createJobQueue(env.QSTASH_URL, env.QSTASH_TOKEN));
  lazy(adapters, "queueVerifier", () =>
    createQueueSignatureVerifier(env.QSTASH_CURRENT_SIGNING_KEY, env.QSTASH_NEXT_SIGNING_KEY),
  );
  lazy(adapters, "gemini", () =>
    createGeminiStreamer({
      apiKey: env.GEMINI_API_KEY,
      baseUrl: env.GEMINI_BASE_URL,
      model: env.GEMINI_MODEL,
      timeoutMs: env.GEMINI_TIMEOUT_SECONDS * 1000,
    }),
  );
  lazy(adapters, "billing", () =>
    createBilling({
      secretKey: env.STRIPE_SECRET_KEY,
      webhookSecret: env.STRIPE_WEBHOOK_SECRET,
      apiBase: env.STRIPE_API_BASE,
    }),
  );
  return adapters;
}

/** The service context over `adapters` (the domain stores are built on first use too). */
export function buildServiceContext(
  adapters: Adapters,
  config: ServiceConfig,
  log: Logger,
  waitUntil: (p: Promise<unknown>) => void,
): ServiceContext {
  const ctx = { config, log, waitUntil } as ServiceContext;
  for (const key of Object.keys(adapters) as (keyof Adapters)[]) {
    Object.defineProperty(ctx, key, { enumerable: true, get: () => adapters[key] });
  }
  lazy(ctx, "listCache", () =>
    createVersionedCache({
      redis: ctx.redis,
      namespace: "cache:chatrooms",
      ttlSeconds: config.chatroomCacheTtlSeconds,
      readTimeoutMs: CACHE_READ_TIMEOUT_MS,
      log,
    }),
  );
  lazy(ctx, "quota", () =>
    createDailyQuota({
      redis: ctx.redis,
      basicLimit: config.dailyLimits.basic,
      proLimit: config.dailyLimits.pro,
      waitUntil,
      log,
    }),
  );
  lazy(ctx, "promptClaims", () =>
    createInFlightClaims(ctx.redis, { namespace: "claim:prompt", ttlMs: PROMPT_CLAIM_TTL_MS }),
  );
  lazy(ctx, "pendingGate", () =>
    createPendingGate(ctx.redis, { namespace: "pending:replies", ttlMs: PROMPT_CLAIM_TTL_MS }),
  );
  lazy(ctx, "followGate", () =>
    createPendingGate(ctx.redis, { namespace: "follow:open", ttlMs: FOLLOW_GATE_TTL_MS }),
  );
  lazy(ctx, "replyLog", () =>
    createReplyLog(ctx.redis, { namespace: "reply:log", ttlSeconds: REPLY_LOG_TTL_SECONDS }),
  );
  lazy(ctx, "otpStore", () => createOtpStore(ctx.redis));
  lazy(ctx, "limiters", () => createAuthLimiters(ctx.redis));
  lazy(ctx, "billingLimiters", () => createBillingLimiters(ctx.redis));
  return ctx;
}

// Isolate-lifetime cache: bindings do not change within an isolate, so validate them once.
const parsed = new WeakMap<object, { env: Env; config: ServiceConfig }>();

function configFromBindings(bindings: Record<string, unknown>) {
  let entry = parsed.get(bindings);
  if (!entry) {
    const env = parseEnv(bindings);
    entry = { env, config: serviceConfig(env) };
    parsed.set(bindings, entry);
  }
  return entry;
}

/** The validated configuration of these bindings (parsed once per isolate). */
export function envFromBindings(bindings: Record<string, unknown>): Env {
  return configFromBindings(bindings).env;
}

/** A whole service context outside a request (the cron sweep). */
export function serviceContextFromBindings(
  bindings: Record<string, unknown>,
  log: Logger,
  waitUntil: (p: Promise<unknown>) => void,
): ServiceContext {
  const { env, config } = configFromBindings(bindings);
  return buildServiceContext(buildAdapters(env, log), config, log, waitUntil);
}

/** Builds this request's service context once; handlers read it as `c.get("ctx")`. */
export const context = createMiddleware<AppEnv>(async (c, next) => {
  const { env, config } = configFromBindings(c.env);
  const log = c.get("log");
  c.set(
    "ctx",
    buildServiceContext(buildAdapters(env, log), config, log, (p) => c.executionCtx.waitUntil(p)),
  );
  await next();
});
