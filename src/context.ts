import type { Env } from "./env";
import type { Services } from "./middleware/services";

/** The typed context every Hono instance and middleware in this app shares. */
export type AppEnv = {
  /** Raw Worker bindings (vars and secrets); read them through `env`, never directly. */
  Bindings: Record<string, unknown>;
  Variables: {
    /** Set by request-id middleware: echoed as X-Request-Id and in every error body. */
    requestId: string;
    /** Set by services middleware: the validated configuration. */
    env: Env;
    /** Set by services middleware: vendor adapters built for this request. */
    services: Services;
    /** Set by auth middleware on protected routes: the authenticated user's id. */
    userId: string;
    /** Set by auth middleware: the access token's `iat` (unix seconds, with milliseconds). */
    tokenIssuedAt: number;
    /** Set by auth middleware: the refresh-token family the access token was issued with. */
    sessionId?: string;
    /**
     * Set by auth middleware: the session check in flight (true while the session stands);
     * await it through `liveSession(c)`.
     */
    sessionCheck: Promise<boolean>;
    /** Set by handlers that consult a rate limiter, for the request log line. */
    rateLimitOutcome?: "allowed" | "limited" | "unavailable";
  };
};
