import { createMiddleware } from "hono/factory";
import { type ServiceConfig, serviceConfig } from "../config";
import type { Adapters, AppEnv, ServiceContext } from "../context";
import { createDatabase } from "../db/client";
import { type Env, parseEnv } from "../env";
import { createBilling } from "../lib/billing";
import { createVersionedCache } from "../lib/cache";
import { systemClock } from "../lib/clock";
import { createGeminiStreamer } from "../lib/gemini";
import { createInFlightClaims } from "../lib/in-flight-claims";
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

/** The adapters that hold no request state, shared by every request of the isolate. */
interface SharedAdapters {
  readonly db: Adapters["db"];
  readonly redis: Adapters["redis"];
  readonly tokens: Adapters["tokens"];
}

/**
 * Each call of these makes its own fetch with its own deadline, so one instance serves every
 * request of the isolate: building drizzle (its relational schema), the Redis client and the
 * JWT key per request was a measurable share of each request's CPU (docs/performance.md).
 */
class IsolateAdapters implements SharedAdapters {
  #db?: Adapters["db"];
  #redis?: Adapters["redis"];
  #tokens?: Adapters["tokens"];
  readonly #env: Env;
  constructor(env: Env) {
    this.#env = env;
  }
  get db() {
    this.#db ??= createDatabase(this.#env.DATABASE_URL, this.#env.NEON_FETCH_ENDPOINT);
    return this.#db;
  }
  get redis() {
    this.#redis ??= createRedis(
      this.#env.UPSTASH_REDIS_REST_URL,
      this.#env.UPSTASH_REDIS_REST_TOKEN,
    );
    return this.#redis;
  }
  get tokens() {
    this.#tokens ??= createAccessTokens(this.#env.JWT_SECRET, this.#env.ACCESS_TOKEN_TTL_SECONDS);
    return this.#tokens;
  }
}

/**
 * One request's service context: the shared adapters, and the request's own (they hold its
 * logger) and domain stores, each built on first use, so a request that never touches Stripe or
 * Gemini never constructs their clients. A class with memoising getters: one allocation per
 * request, nothing defined per property (the former `Object.defineProperty` getters were a
 * visible share of a request's CPU).
 */
class RequestServices implements ServiceContext {
  readonly clock = systemClock;
  #memo = new Map<string, unknown>();
  readonly config: ServiceConfig;
  readonly log: Logger;
  readonly waitUntil: (p: Promise<unknown>) => void;
  readonly #env: Env;
  readonly #shared: SharedAdapters;
  constructor(
    env: Env,
    shared: SharedAdapters,
    config: ServiceConfig,
    log: Logger,
    waitUntil: (p: Promise<unknown>) => void,
  ) {
    this.#env = env;
    this.#shared = shared;
    this.config = config;
    this.log = log;
    this.waitUntil = waitUntil;
  }
  #once<T>(key: string, build: () => T): T {
    if (!this.#memo.has(key)) this.#memo.set(key, build());
    return this.#memo.get(key) as T;
  }
  get db() {
    return this.#shared.db;
  }
  get redis() {
    return this.#shared.redis;
  }
  get tokens() {
    return this.#shared.tokens;
  }
  get otpDelivery() {
    return this.#once("otpDelivery", () => createOtpDelivery(this.#env.OTP_DELIVERY, this.log));
  }
  get queue() {
    return this.#once("queue", () => createJobQueue(this.#env.QSTASH_URL, this.#env.QSTASH_TOKEN));
  }
  get queueVerifier() {
    return this.#once("queueVerifier", () =>
      createQueueSignatureVerifier(
        this.#env.QSTASH_CURRENT_SIGNING_KEY,
        this.#env.QSTASH_NEXT_SIGNING_KEY,
      ),
    );
  }
  get gemini() {
    return this.#once("gemini", () =>
      createGeminiStreamer({
        apiKey: this.#env.GEMINI_API_KEY,
        baseUrl: this.#env.GEMINI_BASE_URL,
        model: this.#env.GEMINI_MODEL,
        timeoutMs: this.#env.GEMINI_TIMEOUT_SECONDS * 1000,
      }),
    );
  }
  get billing() {
    return this.#once("billing", () =>
      createBilling({
        secretKey: this.#env.STRIPE_SECRET_KEY,
        webhookSecret: this.#env.STRIPE_WEBHOOK_SECRET,
        apiBase: this.#env.STRIPE_API_BASE,
      }),
    );
  }
  get listCache() {
    return this.#once("listCache", () =>
      createVersionedCache({
        redis: this.redis,
        namespace: "cache:chatrooms",
        ttlSeconds: this.config.chatroomCacheTtlSeconds,
        readTimeoutMs: CACHE_READ_TIMEOUT_MS,
        log: this.log,
      }),
    );
  }
  get quota() {
    return this.#once("quota", () =>
      createDailyQuota({
        redis: this.redis,
        basicLimit: this.config.dailyLimits.basic,
        proLimit: this.config.dailyLimits.pro,
        waitUntil: this.waitUntil,
        log: this.log,
      }),
    );
  }
  get promptClaims() {
    return this.#once("promptClaims", () =>
      createInFlightClaims(this.redis, { namespace: "claim:prompt", ttlMs: PROMPT_CLAIM_TTL_MS }),
    );
  }
  get pendingGate() {
    return this.#once("pendingGate", () =>
      createPendingGate(this.redis, { namespace: "pending:replies", ttlMs: PROMPT_CLAIM_TTL_MS }),
    );
  }
  get followGate() {
    return this.#once("followGate", () =>
      createPendingGate(this.redis, { namespace: "follow:open", ttlMs: FOLLOW_GATE_TTL_MS }),
    );
  }
  get replyLog() {
    return this.#once("replyLog", () =>
      createReplyLog(this.redis, { namespace: "reply:log", ttlSeconds: REPLY_LOG_TTL_SECONDS }),
    );
  }
  get otpStore() {
    return this.#once("otpStore", () => createOtpStore(this.redis));
  }
  get limiters() {
    return this.#once("limiters", () => createAuthLimiters(this.redis));
  }
  get billingLimiters() {
    return this.#once("billingLimiters", () => createBillingLimiters(this.redis));
  }
}

// Isolate-lifetime cache: bindings do not change within an isolate, so validate them once (and
// build the stateless adapters once).
const parsed = new WeakMap<object, { env: Env; config: ServiceConfig; shared: SharedAdapters }>();

function configFromBindings(bindings: Record<string, unknown>) {
  let entry = parsed.get(bindings);
  if (!entry) {
    const env = parseEnv(bindings);
    entry = { env, config: serviceConfig(env), shared: new IsolateAdapters(env) };
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
  return new RequestServices(env, shared, config, log, waitUntil);
}

/** Builds this request's service context once; handlers read it as `c.get("ctx")`. */
export const context = createMiddleware<AppEnv>(async (c, next) => {
  const { env, config, shared } = configFromBindings(c.env);
  const log = c.get("log");
  c.set("ctx", new RequestServices(env, shared, config, log, (p) => c.executionCtx.waitUntil(p)));
  await next();
});
