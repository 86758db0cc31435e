/**
 * Domain errors: what went wrong, as a code, a message and details. No HTTP status or header
 * lives here; `src/errors/http.ts` is the one mapping from these to status, headers and body.
 * Services and adapters throw these; only the edge knows what they look like on the wire.
 */

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

/** A failure the client should see: a code from ERROR_CODES, a sentence, optional details. */
export abstract class DomainError extends Error {
  // Spelled out in each class: the deployed bundle does not keep class names (ADR 6).
  override name = "DomainError";
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.code = code;
    this.details = details;
  }
}

/** The request is malformed or fails validation (also a bad signature on a webhook). */
export class ValidationError extends DomainError {
  override name = "ValidationError";
  constructor(message: string, details?: unknown, code: ErrorCode = "invalid_request") {
    super(code, message, details);
  }
}

/** The caller is not authenticated, or their credentials or code are wrong. */
export class UnauthorizedError extends DomainError {
  override name = "UnauthorizedError";
  constructor(
    message = "Authentication is required.",
    code: ErrorCode = "unauthorized",
    details?: unknown,
  ) {
    super(code, message, details);
  }
}

export class ForbiddenError extends DomainError {
  override name = "ForbiddenError";
  constructor(message = "You are not allowed to do this.", code: ErrorCode = "forbidden") {
    super(code, message);
  }
}

/** Well-formed but not allowed as asked (a model the caller's plan does not include). */
export class UnprocessableError extends DomainError {
  override name = "UnprocessableError";
  constructor(message: string, code: ErrorCode, details?: unknown) {
    super(code, message, details);
  }
}

export class NotFoundError extends DomainError {
  override name = "NotFoundError";
  constructor(message = "Not found.", code: ErrorCode = "not_found") {
    super(code, message);
  }
}

export class ConflictError extends DomainError {
  override name = "ConflictError";
  constructor(message: string, code: ErrorCode = "conflict", details?: unknown) {
    super(code, message, details);
  }
}

/**
 * Another request with the same Idempotency-Key is still being processed (or its outcome is not
 * known yet): the same request sent again after `retryAfterSeconds` may find its answer.
 */
export class IdempotencyInProgressError extends ConflictError {
  override name = "IdempotencyInProgressError";
  /** Whole seconds (at least 1) the caller should wait before sending the request again. */
  readonly retryAfterSeconds: number;
  constructor(retryAfterSeconds: number) {
    super(
      "A request with this Idempotency-Key is still being processed; retry shortly.",
      "idempotency_in_progress",
    );
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
  }
}

/** A method the path does not serve; `allowed` are the ones it does. */
export class MethodNotAllowedError extends DomainError {
  override name = "MethodNotAllowedError";
  readonly allowed: readonly string[];
  constructor(message: string, allowed: readonly string[]) {
    super("method_not_allowed", message);
    this.allowed = allowed;
  }
}

/** A body larger than the limit of its route group. */
export class PayloadTooLargeError extends DomainError {
  override name = "PayloadTooLargeError";
  constructor(limitBytes: number) {
    super("payload_too_large", `The body exceeds ${limitBytes} bytes.`);
  }
}

/** A body that is not JSON in UTF-8 (or is content-encoded). */
export class UnsupportedMediaTypeError extends DomainError {
  override name = "UnsupportedMediaTypeError";
  constructor(message: string) {
    super("unsupported_media_type", message);
  }
}

/** The state of a counted quota when it refused: the edge reports it as RateLimit-* fields. */
export interface QuotaState {
  limit: number;
  remaining: number;
  /** Seconds until the counter resets. */
  resetSeconds: number;
}

export class LimitExceededError extends DomainError {
  override name = "LimitExceededError";
  /** Whole seconds (at least 1) the caller should wait. */
  readonly retryAfterSeconds: number;
  readonly quota: QuotaState | undefined;

  constructor(
    message: string,
    retryAfterSeconds: number,
    code: ErrorCode = "rate_limited",
    details?: unknown,
    quota?: QuotaState,
  ) {
    super(code, message, details);
    this.retryAfterSeconds = Math.max(1, Math.ceil(retryAfterSeconds));
    this.quota = quota;
  }
}

/** Something this service relies on cannot serve now; the caller should retry later. */
export abstract class UnavailableError extends DomainError {
  override name = "UnavailableError";
  readonly retryAfterSeconds: number;
  constructor(code: ErrorCode, message: string, retryAfterSeconds: number) {
    super(code, message);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * Stripe refuses portal sessions until the portal settings are saved in its Dashboard: an
 * operator's task, so the message says what to do.
 */
export class BillingPortalUnavailableError extends UnavailableError {
  override name = "BillingPortalUnavailableError";
  constructor() {
    super(
      "billing_portal_unavailable",
      "The billing portal is not set up yet: an operator must save the customer portal settings in the Stripe Dashboard (Settings → Billing → Customer portal). Try again later.",
      300,
    );
  }
}

/**
 * A vendor (database, Redis, QStash, Stripe, Gemini) failed or timed out. The adapters in
 * `src/lib` and `src/db` classify their own failures into this (see `isDependencyFailure`).
 */
export class DependencyUnavailableError extends UnavailableError {
  override name = "DependencyUnavailableError";
  /**
   * The vendor answered, and refused us for sending too much (Stripe's 429 rate_limit or
   * lock_timeout): not an outage, so nothing spent on the request is given back (ADR 8).
   */
  readonly throttled: boolean;
  constructor(dependency: string, cause?: unknown, o: { throttled?: boolean } = {}) {
    super("dependency_unavailable", `The ${dependency} is unavailable; try again shortly.`, 5);
    this.cause = cause;
    this.throttled = o.throttled === true;
  }
}
