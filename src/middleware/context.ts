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
import { createAccessTokens } from "../lib/tokens";
import type { Logger } from "../log";
import { createAuthLimiters } from "../services/auth/deps";
import { createBillingLimiters } from "../services/billing/admission";
import { CACHE_READ_TIMEOUT_MS, PROMPT_CLAIM_TTL_MS } from "../services/chat/deps";
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

/**
 * The adapters that hold no request state (each call makes its own fetch, with its own
 * deadline), shared by every request of the isolate: building drizzle (its relational schema),
 * the Redis client and the JWT key per request was a measurable share of each request's CPU
 * (docs/performance.md, "CPU per request").
 */
type SharedAdapters = Pick<Adapters, "db" | "redis" | "tokens">;

function buildSharedAdapters(env: Env): SharedAdapters {
  const shared = {} as SharedAdapters;
  lazy(shared, "db", () => createDatabase(env.DATABASE_URL, env.NEON_FETCH_ENDPOINT));
  lazy(shared, "redis", () =>
    createRedis(env.UPSTASH_REDIS_REST_URL, env.UPSTASH_REDIS_REST_TOKEN),
  );
  lazy(shared, "tokens", () => createAccessTokens(env.JWT_SECRET, env.ACCESS_TOKEN_TTL_SECONDS));
  return shared;
}

/** The vendor adapters for one request (each built on first use). */
export function buildAdapters(
  env: Env,
  log: Logger,
  shared: SharedAdapters = buildSharedAdapters(env),
): Adapters {
  const adapters = { clock: systemClock } as Adapters;
  lazy(adapters, "db", () => shared.db);
  lazy(adapters, "redis", () => shared.redis);
  lazy(adapters, "tokens", () => shared.tokens);
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
    }),
  );
  lazy(ctx, "promptClaims", () =>
    createInFlightClaims(ctx.redis, { namespace: "claim:prompt", ttlMs: PROMPT_CLAIM_TTL_MS }),
  );
  lazy(ctx, "pendingGate", () =>
    createPendingGate(ctx.redis, { namespace: "pending:replies", ttlMs: PROMPT_CLAIM_TTL_MS }),
  );
  lazy(ctx, "otpStore", () => createOtpStore(ctx.redis));
  lazy(ctx, "limiters", () => createAuthLimiters(ctx.redis));
  lazy(ctx, "billingLimiters", () => createBillingLimiters(ctx.redis));
  return ctx;
}

// Isolate-lifetime cache: bindings do not change within an isolate, so validate them once (and
// build the stateless adapters once).
const parsed = new WeakMap<object, { env: Env; config: ServiceConfig; shared: SharedAdapters }>();

function configFromBindings(bindings: Record<string, unknown>) {
  let entry = parsed.get(bindings);
  if (!entry) {
    const env = parseEnv(bindings);
    entry = { env, config: serviceConfig(env), shared: buildSharedAdapters(env) };
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
  const { env, config, shared } = configFromBindings(bindings);
  return buildServiceContext(buildAdapters(env, log, shared), config, log, waitUntil);
}

/** Builds this request's service context once; handlers read it as `c.get("ctx")`. */
export const context = createMiddleware<AppEnv>(async (c, next) => {
  const { env, config, shared } = configFromBindings(c.env);
  const log = c.get("log");
  c.set(
    "ctx",
    buildServiceContext(buildAdapters(env, log, shared), config, log, (p) =>
      c.executionCtx.waitUntil(p),
    ),
  );
  await next();
});
