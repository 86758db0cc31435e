// Resending a 409 idempotency_in_progress ("a request with this Idempotency-Key is still being
// processed": the same prompt is being written, or its write's outcome is not known yet) the way
// the API asks a client to: after its Retry-After, for as long as the write can take to settle.
// One policy for the load run (scripts/load.ts) and the soak's clients (scripts/soak/client.ts).

/**
 * How long one request keeps resending a 409 idempotency_in_progress: the same key's write
 * settles within ~20 s (the 15 s commit window plus the settle read, ADR 3), so 45 s outlasts it
 * on a loaded box. An answer still 409 after that is the harness's violation to report.
 */
export const IN_PROGRESS_RESEND_MS = 45_000;

/** The longest Retry-After honoured (the API names at most 5 s; a bad value must not stall a run). */
const MAX_RETRY_AFTER_MS = 10_000;
/** Without a usable Retry-After: 500 ms, doubling with each resend, to at most 4 s. */
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 4_000;

/** A 409 idempotency_in_progress, from its status and its parsed JSON body. */
export function isIdempotencyInProgress(status: number, body: unknown): boolean {
  if (status !== 409 || typeof body !== "object" || body === null) return false;
  const error = (body as { error?: { code?: unknown } }).error;
  return error?.code === "idempotency_in_progress";
}

/**
 * The wait before resend number `resends` (0 first): the Retry-After seconds when they are a
 * positive number (capped at 10 s), else the backoff.
 */
export function inProgressDelayMs(retryAfter: string | null, resends: number): number {
  const seconds = Number(retryAfter ?? Number.NaN);
  if (Number.isFinite(seconds) && seconds > 0) return Math.min(seconds * 1000, MAX_RETRY_AFTER_MS);
  return Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** resends);
}

/**
 * One request's patience with 409 idempotency_in_progress, across all its attempts (its 503
 * resends included): bounded by time from the first 409, not by a count of resends.
 */
export class InProgressResends {
  /** Resends granted so far. */
  count = 0;
  #until = 0;
  readonly #now: () => number;
  readonly #patienceMs: number;

  constructor(options: { now?: () => number; patienceMs?: number } = {}) {
    this.#now = options.now ?? Date.now;
    this.#patienceMs = options.patienceMs ?? IN_PROGRESS_RESEND_MS;
  }

  /**
   * The wait before resending a 409 idempotency_in_progress that came with `retryAfter`, or null
   * once the patience, counted from the request's first such 409, has run out.
   */
  next(retryAfter: string | null): number | null {
    const now = this.#now();
    this.#until ||= now + this.#patienceMs;
    if (now >= this.#until) return null;
    return inProgressDelayMs(retryAfter, this.count++);
  }
}
