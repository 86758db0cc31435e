import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { AppEnv } from "../context";
import { rootLogger } from "../log";
import { isDependencyFailure } from "./dependency";
import {
  BillingPortalUnavailableError,
  ConflictError,
  DependencyUnavailableError,
  DomainError,
  type ErrorCode,
  ForbiddenError,
  IdempotencyInProgressError,
  LimitExceededError,
  MethodNotAllowedError,
  NotFoundError,
  PayloadTooLargeError,
  type QuotaState,
  UnauthorizedError,
  UnavailableError,
  UnprocessableError,
  UnsupportedMediaTypeError,
  ValidationError,
} from "./index";

/**
 * The one mapping from domain errors to HTTP: status, headers and the JSON body. Nothing else in
 * `src/` chooses an error status or writes `Retry-After` / `WWW-Authenticate`.
 */

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

/** The status of each kind of domain error, most specific first. */
const STATUS_OF: ReadonlyArray<
  readonly [abstract new (...args: never[]) => DomainError, ContentfulStatusCode]
> = [
  [ValidationError, 400],
  [UnauthorizedError, 401],
  [ForbiddenError, 403],
  [NotFoundError, 404],
  [MethodNotAllowedError, 405],
  [ConflictError, 409],
  [PayloadTooLargeError, 413],
  [UnsupportedMediaTypeError, 415],
  [UnprocessableError, 422],
  [LimitExceededError, 429],
  [BillingPortalUnavailableError, 503],
  [DependencyUnavailableError, 503],
  [UnavailableError, 503],
];

/** RateLimit-* fields (draft-ietf-httpapi-ratelimit-headers, the widely used pre-07 fields). */
export function rateLimitHeaders(q: QuotaState): Record<string, string> {
  return {
    "RateLimit-Limit": String(q.limit),
    "RateLimit-Remaining": String(q.remaining),
    "RateLimit-Reset": String(q.resetSeconds),
  };
}

/** The status and headers a domain error is answered with. */
export function httpOf(err: DomainError): {
  status: ContentfulStatusCode;
  headers: Record<string, string>;
} {
  const status = STATUS_OF.find(([kind]) => err instanceof kind)?.[1] ?? 500;
  const headers: Record<string, string> = {};
  if (err instanceof UnauthorizedError && err.code === "unauthorized") {
    headers["WWW-Authenticate"] = "Bearer";
  }
  if (err instanceof MethodNotAllowedError) headers.Allow = err.allowed.join(", ");
  if (err instanceof LimitExceededError) {
    Object.assign(headers, err.quota ? rateLimitHeaders(err.quota) : {});
    headers["Retry-After"] = String(err.retryAfterSeconds);
  }
  if (err instanceof UnavailableError || err instanceof IdempotencyInProgressError) {
    headers["Retry-After"] = String(err.retryAfterSeconds);
  }
  return { status, headers };
}

/** A domain error as its HTTP response. */
export function errorResponse(c: Context<AppEnv>, err: DomainError): Response {
  const { status, headers } = httpOf(err);
  return c.json(errorBody(c, err.code, err.message, err.details), status, headers);
}

/** The one error handler: known errors keep their code; anything else is a logged, opaque 500. */
export function handleError(err: Error, c: Context<AppEnv>): Response {
  if (err instanceof DomainError) return errorResponse(c, err);
  if (err instanceof HTTPException && err.status < 500) {
    const code: ErrorCode =
      DEFAULT_ERROR_CODES[err.status as keyof typeof DEFAULT_ERROR_CODES] ?? "invalid_request";
    return c.json(
      errorBody(c, code, err.message || "The request could not be processed."),
      err.status,
    );
  }
  // The request's logger; a bare app (a unit test) without the request-id middleware still logs.
  const log = c.get("log") ?? rootLogger.with(() => ({ request_id: c.get("requestId") }));
  if (isDependencyFailure(err)) {
    log.failure("dependency_failure", err);
    return errorResponse(c, new DependencyUnavailableError("service"));
  }
  log.failure("unhandled_error", err);
  return c.json(errorBody(c, "internal_error", "Something went wrong on our side."), 500);
}
