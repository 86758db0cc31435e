import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";
import { createDatabase, type Database } from "../db/client";
import { type Env, parseEnv } from "../env";
import { type Billing, createBilling } from "../lib/billing";
import { type Clock, systemClock } from "../lib/clock";
import { createGeminiStreamer, type GeminiStreamer } from "../lib/gemini";
import { createOtpDelivery, type OtpDelivery } from "../lib/otp-delivery";
import {
  createJobQueue,
  createQueueSignatureVerifier,
  type JobQueue,
  type QueueSignatureVerifier,
} from "../lib/queue";
import { createRedis, type RedisClient } from "../lib/redis";
import { type AccessTokens, createAccessTokens } from "../lib/tokens";

/** Vendor adapters for one request. Routes and services see these interfaces, never SDKs. */
export interface Services {
  db: Database;
  redis: RedisClient;
  clock: Clock;
  tokens: AccessTokens;
  /** How OTP codes reach users (OTP_DELIVERY); an SMS gateway would implement it. */
  otpDelivery: OtpDelivery;
  billing: Billing;
  /** QStash publishing (queued Gemini replies) and callback signature checks. */
  queue: JobQueue;
  queueVerifier: QueueSignatureVerifier;
  /** Gemini streamGenerateContent, for the SSE path only. */
  gemini: GeminiStreamer;
}

export function buildServices(env: Env): Services {
  return {
    db: createDatabase(env.DATABASE_URL, env.NEON_FETCH_ENDPOINT),
    redis: createRedis(env.UPSTASH_REDIS_REST_URL, env.UPSTASH_REDIS_REST_TOKEN),
    clock: systemClock,
    tokens: createAccessTokens(env.JWT_SECRET, env.ACCESS_TOKEN_TTL_SECONDS),
    otpDelivery: createOtpDelivery(env.OTP_DELIVERY),
    queue: createJobQueue(env.QSTASH_URL, env.QSTASH_TOKEN),
    queueVerifier: createQueueSignatureVerifier(
      env.QSTASH_CURRENT_SIGNING_KEY,
      env.QSTASH_NEXT_SIGNING_KEY,
    ),
    gemini: createGeminiStreamer({
      apiKey: env.GEMINI_API_KEY,
      baseUrl: env.GEMINI_BASE_URL,
      model: env.GEMINI_MODEL,
      timeoutMs: env.GEMINI_TIMEOUT_SECONDS * 1000,
    }),
    billing: createBilling({
      secretKey: env.STRIPE_SECRET_KEY,
      webhookSecret: env.STRIPE_WEBHOOK_SECRET,
      apiBase: env.STRIPE_API_BASE,
    }),
  };
}

// Isolate-lifetime cache: bindings do not change within an isolate, so validate them once.
const parsedEnvs = new WeakMap<object, Env>();

export function envFromBindings(bindings: Record<string, unknown>): Env {
  let env = parsedEnvs.get(bindings);
  if (!env) {
    env = parseEnv(bindings);
    parsedEnvs.set(bindings, env);
  }
  return env;
}

export const services = createMiddleware<AppEnv>(async (c, next) => {
  const env = envFromBindings(c.env);
  c.set("env", env);
  c.set("services", buildServices(env));
  await next();
});
