import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "./context";

/** The closed set of error codes a client can see. */
export const ERROR_CODES = [
  "invalid_request",
  "unauthorized",
  "invalid_otp",
  "invalid_credentials",
  "invalid_signature",
  "forbidden",
  "reauthentication_required",
  "not_found",
  "user_not_found",
  "method_not_allowed",
  "conflict",
  "already_subscribed",
  "no_subscription",
  "idempotency_key_reused",
  "idempotency_in_progress",
  "reply_in_progress",
  "reply_finished",
  "model_not_allowed",
  "payload_too_large",
  "unsupported_media_type",
  "rate_limited",
  "daily_limit_reached",
  "internal_error",
  "dependency_unavailable",
  "billing_portal_unavailable",
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/**
 * A failure the client should see. Services throw the named subclasses below; HTTP statuses
 * appear only here and in the error handler.
 */
export class AppError extends Error {
  // Spelled out in each class: the deployed bundle does not keep class names (ADR 6).
  override name = "AppError";
  readonly status: ContentfulStatusCode;
  readonly code: ErrorCode;
  readonly details: unknown;
  readonly headers: Record<string, string>;

  constructor(
    status: ContentfulStatusCode,
    code: ErrorCode,
    message: string,
    details?: unknown,
    headers: Record<string, string> = {},
  ) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.headers = headers;
  }
}

export class ValidationError extends AppError {
  override name = "ValidationError";
  constructor(message: string, details?: unknown) {
    super(400, "invalid_request", message, details);
  }
}

export class UnauthorizedError extends AppError {
  override name = "UnauthorizedError";
  constructor(
    message = "Authentication is required.",
    code: ErrorCode = "unauthorized",
    details?: unknown,
  ) {
    super(
      401,
      code,
      message,
      details,
      code === "unauthorized" ? { "WWW-Authenticate": "Bearer" } : {},
    );
  }
}

export class ForbiddenError extends AppError {
  override name = "ForbiddenError";
  constructor(message = "You are not allowed to do this.", code: ErrorCode = "forbidden") {
    super(403, code, message);
  }
}

/** Well-formed but not allowed as asked (a model the caller's plan does not include). */
export class UnprocessableError extends AppError {
  override name = "UnprocessableError";
  constructor(message: string, code: ErrorCode, details?: unknown) {
    super(422, code, message, details);
  }
}

export class NotFoundError extends AppError {
  override name = "NotFoundError";
  constructor(message = "Not found.", code: ErrorCode = "not_found") {
    super(404, code, message);
  }
}

export class ConflictError extends AppError {
  override name = "ConflictError";
  constructor(message: string, code: ErrorCode = "conflict", details?: unknown) {
    super(409, code, message, details);
  }
}

export class LimitExceededError extends AppError {
  override name = "LimitExceededError";
  constructor(
    message: string,
    retryAfterSeconds: number,
    code: ErrorCode = "rate_limited",
    details?: unknown,
    headers: Record<string, string> = {},
  ) {
    super(429, code, message, details, {
      ...headers,
      "Retry-After": String(Math.max(1, Math.ceil(retryAfterSeconds))),
    });
  }
}

/**
 * Stripe refuses portal sessions until the portal settings are saved in its Dashboard: an
 * operator's task, so the message says what to do; Retry-After because a 503 carries one.
 */
export class BillingPortalUnavailableError extends AppError {
  override name = "BillingPortalUnavailableError";
  constructor() {
    super(
      503,
      "billing_portal_unavailable",
      "The billing portal is not set up yet: an operator must save the customer portal settings in the Stripe Dashboard (Settings → Billing → Customer portal). Try again later.",
      undefined,
      { "Retry-After": "300" },
    );
  }
}

export class DependencyUnavailableError extends AppError {
  override name = "DependencyUnavailableError";
  constructor(dependency: string, cause?: unknown) {
    super(
      503,
      "dependency_unavailable",
      `The ${dependency} is unavailable; try again shortly.`,
      undefined,
      {
        "Retry-After": "5",
      },
    );
    this.cause = cause;
  }
}

export type ErrorBody = {
  error: { code: ErrorCode; message: string; request_id: string; details?: unknown };
};

export function errorBody(
  c: Context<AppEnv>,
  code: ErrorCode,
  message: string,
  details?: unknown,
): ErrorBody {
  const requestId = c.get("requestId") ?? "unknown";
  return {
    error: { code, message, request_id: requestId, ...(details === undefined ? {} : { details }) },
  };
}

/** The generic code of each error status (routes may answer more specific ones). */
export const DEFAULT_ERROR_CODES = {
  400: "invalid_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  405: "method_not_allowed",
  409: "conflict",
  413: "payload_too_large",
  415: "unsupported_media_type",
  422: "invalid_request",
  429: "rate_limited",
  500: "internal_error",
  503: "dependency_unavailable",
} as const satisfies Record<number, ErrorCode>;

/** The one error handler: known errors keep their code; anything else is a logged, opaque 500. */
export function handleError(err: Error, c: Context<AppEnv>): Response {
  if (err instanceof AppError) {
    return c.json(errorBody(c, err.code, err.message, err.details), err.status, err.headers);
  }
  if (err instanceof HTTPException && err.status < 500) {
    const code: ErrorCode =
      DEFAULT_ERROR_CODES[err.status as keyof typeof DEFAULT_ERROR_CODES] ?? "invalid_request";
    return c.json(
      errorBody(c, code, err.message || "The request could not be processed."),
      err.status,
    );
  }
  if (isDependencyFailure(err)) {
    logError(c, "dependency_failure", err);
    const e = new DependencyUnavailableError("service");
    return c.json(errorBody(c, e.code, e.message), e.status, e.headers);
  }
  logError(c, "unhandled_error", err);
  return c.json(errorBody(c, "internal_error", "Something went wrong on our side."), 500);
}

/**
 * SQLSTATEs that mean "the database cannot serve this now" rather than "this request is wrong":
 * connection exceptions (08), insufficient resources (53), operator intervention such as a
 * restart (57P0x), serialization failures and deadlocks (40001, 40P01).
 */
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0|40001$|40P01$)/;

/** SQLSTATE of a database error anywhere in its cause chain. */
export function sqlStateOf(err: unknown): string | undefined {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && /^[0-9A-Z]{5}$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Failures of a vendor (database, Redis) surface as 503, never as 500. */
export function isDependencyFailure(err: Error): boolean {
  const name = err.name ?? "";
  const msg = err.message ?? "";
  const code = (err as { code?: unknown }).code;
  return (
    err instanceof DependencyUnavailableError ||
    (name === "NeonDbError" && /connecting to database|Server error/i.test(msg)) ||
    (name === "NeonDbError" && typeof code === "string" && UNAVAILABLE_SQLSTATE.test(code)) ||
    name === "UpstashError" ||
    // A vendor call that ran past its deadline (AbortSignal.timeout in src/db, src/lib/redis).
    name === "TimeoutError" ||
    /fetch failed|network connection lost|ECONNREFUSED/i.test(msg) ||
    (err.cause instanceof Error && isDependencyFailure(err.cause))
  );
}

/**
 * An error (and its causes) as one log-safe string. Drizzle's query errors carry the bound
 * parameters in their message ("params: …"), which can be password hashes, token hashes or
 * message text: they are cut out here, so no log line can carry them.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    parts.push(redactParams(e instanceof Error ? `${e.name}: ${e.message}` : String(e)));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" <- ");
}

/** An error's stack with any query parameters cut out (see describeError). */
export function logSafeStack(err: unknown): string | undefined {
  return err instanceof Error && err.stack ? redactParams(err.stack) : undefined;
}

function redactParams(text: string): string {
  return text.replace(/\bparams: [\s\S]*?(?=\n\s+at |$)/g, "params: [redacted]");
}

function logError(c: Context<AppEnv>, msg: string, err: Error): void {
  console.error(
    JSON.stringify({
      level: "error",
      msg,
      request_id: c.get("requestId"),
      error: describeError(err),
      stack: logSafeStack(err) ?? "",
    }),
  );
}
