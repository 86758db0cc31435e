import type { ServiceConfig } from "./config";
import type { Database } from "./db/client";
import type { Billing } from "./lib/billing";
import type { VersionedCache } from "./lib/cache";
import type { Clock } from "./lib/clock";
import type { GeminiStreamer } from "./lib/gemini";
import type { InFlightClaims } from "./lib/in-flight-claims";
import type { OtpStore } from "./lib/otp";
import type { OtpDelivery } from "./lib/otp-delivery";
import type { PendingGate } from "./lib/pending-gate";
import type { JobQueue, QueueSignatureVerifier } from "./lib/queue";
import type { RedisClient } from "./lib/redis";
import type { ReplyLog } from "./lib/reply-log";
import type { AccessTokens } from "./lib/tokens";
import type { Logger } from "./log";
import type { AuthLimiters } from "./services/auth/deps";
import type { BillingLimiters } from "./services/billing/admission";
import type { DailyQuota } from "./services/quota";

/**
 * The vendor adapters of one request (src/lib, src/db), built from `Env` by
 * src/middleware/context.ts. Routes and services see these interfaces, never SDKs.
 */
export interface Adapters {
  db: Database;
  redis: RedisClient;
  /** The one source of "now". */
  clock: Clock;
  tokens: AccessTokens;
  /** How OTP codes reach users (OTP_DELIVERY); an SMS gateway would implement it. */
  otpDelivery: OtpDelivery;
  billing: Billing;
  /** QStash publishing (queued Gemini replies). */
  queue: JobQueue;
  /** QStash callback signature checks. */
  queueVerifier: QueueSignatureVerifier;
  /** Gemini streamGenerateContent, for the SSE path only. */
  gemini: GeminiStreamer;
}

/**
 * The one context every service takes as its first argument: `(ctx, input) => result`. The
 * adapters, the domain stores built on them, the configuration, the request's logger and a way
 * to finish work after the response. Services declare the slice they use (`Pick<...>`), so a test
 * builds only that. Built once per request (lazily for the costly parts) by the context middleware,
 * and by the cron entry in src/index.ts.
 */
export interface ServiceContext extends Adapters {
  config: ServiceConfig;
  log: Logger;
  /** The per-user cache of GET /chatroom pages. */
  listCache: VersionedCache;
  /** The daily prompt quota (ADR 0003). */
  quota: DailyQuota;
  /** Idempotency keys of prompts being processed (see sendMessage). */
  promptClaims: InFlightClaims;
  /** Prompts accepted but not yet committed, per user (MAX_PENDING_REPLIES; see sendMessage). */
  pendingGate: PendingGate;
  /** Streamed replies' deltas, for clients that resume or attach (services/chat/resume.ts). */
  replyLog: ReplyLog;
  /** Open follow streams (GET …/stream) per user, capped at MAX_FOLLOWS_PER_USER (resume.ts). */
  followGate: PendingGate;
  /** One-time codes in Redis (login, password reset). */
  otpStore: OtpStore;
  /** Send, signup and login limits (AUTH_LIMITS). */
  limiters: AuthLimiters;
  /** Per-user limits of the billing endpoints that call Stripe. */
  billingLimiters: BillingLimiters;
  /** Work that may finish after the response (ctx.waitUntil in the Worker). */
  waitUntil(p: Promise<unknown>): void;
}

/** The typed context every Hono instance and middleware in this app shares. */
export type AppEnv = {
  /** Raw Worker bindings (vars and secrets); never read directly: the context middleware parses them. */
  Bindings: Record<string, unknown>;
  Variables: {
    /** Set by request-id middleware: echoed as X-Request-Id and in every error body. */
    requestId: string;
    /** Set by request-id middleware: the request's logger (request_id, and user_id once known). */
    log: Logger;
    /** Set by context middleware: the service context of this request (see ServiceContext). */
    ctx: ServiceContext;
    /** Set by auth middleware on protected routes: the authenticated user's id. */
    userId: string;
    /** Set by auth middleware: the access token's `iat` (unix seconds, with milliseconds). */
    tokenIssuedAt: number;
    /** Set by auth middleware: the refresh-token family the access token was issued with. */
    sessionId?: string;
    /** Set by auth middleware: the access token's number tag (`ntg`), when it carries one. */
    numberTag?: string;
    /**
     * Set by auth middleware (or the first `liveSession(c)` under `requireAuthCarried`): the
     * session check in flight (true while the session stands); await it through `liveSession(c)`.
     */
    sessionCheck?: Promise<boolean>;
    /** Set by handlers that consult a rate limiter, for the request log line. */
    rateLimitOutcome?: "allowed" | "limited" | "unavailable";
  };
};
