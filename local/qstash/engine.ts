import { randomBytes } from "node:crypto";
import { signDelivery } from "./signature.ts";
import { backoffSeconds, evalRetryDelayMs, retryAfterSeconds } from "./timing.ts";

export type MessageKind = "publish" | "callback" | "failure_callback";
export type MessageState = "CREATED" | "ACTIVE" | "RETRY" | "DELIVERED" | "FAILED" | "CANCELLED";

/** Where and how a callback (or failure callback) of a message is delivered. */
export interface CallbackTarget {
  url: string;
  method: string;
  retries: number;
  retryDelay: string | null;
  timeoutMs: number;
  delayMs: number;
  /** Headers sent to the callback (from Upstash-[Failure-]Callback-Forward-*), lower-case names. */
  headers: Record<string, string>;
}

export interface Attempt {
  retried: number;
  /** HTTP status, or null when the request failed before a response (network error, timeout). */
  status: number | null;
  error: string | null;
  /** A redelivery of an already delivered message (the at-least-once duplicate switch). */
  duplicate: boolean;
  started_at: string;
  duration_ms: number;
  /** Wait before the next attempt, already multiplied by the time scale; null when none follows. */
  next_delay_ms: number | null;
}

export interface QStashMessage {
  id: string;
  kind: MessageKind;
  parentId: string | null;
  url: string;
  method: string;
  /** Headers delivered to the destination (forwarded ones and Content-Type), lower-case names. */
  headers: Record<string, string>;
  body: Uint8Array<ArrayBuffer>;
  maxRetries: number;
  retryDelay: string | null;
  timeoutMs: number;
  callback: CallbackTarget | null;
  failureCallback: CallbackTarget | null;
  createdAt: number;
  notBefore: number;
  callerIp: string;
  deduplicationId: string | null;
  redact: string | null;
  state: MessageState;
  retried: number;
  attempts: Attempt[];
  callbackIds: string[];
  dlqId: string | null;
  /** Deliver once more after the first success (set by the duplicate switch). */
  duplicate: boolean;
}

export type NewMessage = Omit<
  QStashMessage,
  "id" | "state" | "retried" | "attempts" | "callbackIds" | "dlqId" | "duplicate" | "createdAt"
>;

interface DeliveryResult {
  status: number | null;
  headers: Headers;
  body: Uint8Array;
  error: string | null;
}

export interface EngineOptions {
  timeScale: number;
  signingKey: () => string;
  /** Called for every new message; true marks it to be delivered twice. */
  takeDuplicate: (message: QStashMessage) => boolean;
  /**
   * Called for every new message (publishes and callbacks alike): extra milliseconds to hold it
   * back before its first delivery, so later messages overtake it (the chaos switch; 0 = none).
   */
  holdBackMs?: (message: QStashMessage) => number;
  /** Called as each delivery attempt starts (first tries, retries and duplicates alike). */
  onAttempt?: (message: QStashMessage, retried: number) => void;
}

const TERMINAL: MessageState[] = ["DELIVERED", "FAILED", "CANCELLED"];

export function isSettled(message: QStashMessage): boolean {
  return TERMINAL.includes(message.state);
}

/** Go's http.CanonicalHeaderKey: "x-goog-api-key" -> "X-Goog-Api-Key". */
export function canonicalHeaderKey(name: string): string {
  return name
    .split("-")
    .map((p) => (p.length > 0 ? p[0]?.toUpperCase() + p.slice(1).toLowerCase() : p))
    .join("-");
}

/** A header set as QStash shows it in JSON: canonical names, each with an array of values. */
export function headerMap(headers: Headers | Record<string, string>): Record<string, string[]> {
  const entries = headers instanceof Headers ? [...headers.entries()] : Object.entries(headers);
  const out: Record<string, string[]> = {};
  for (const [name, value] of entries) {
    const key = canonicalHeaderKey(name);
    out[key] = [...(out[key] ?? []), value];
  }
  return out;
}

function randomId(prefix: string): string {
  return `${prefix}${randomBytes(18).toString("base64url").replace(/[-_]/g, "x")}`;
}

/**
 * The message store and delivery loop: each message is attempted, retried with QStash's backoff,
 * and reported to its callback after every attempt and to its failure callback once it fails for
 * good. Callbacks are messages of their own, signed for the callback URL and retried the same way.
 */
export function createEngine(options: EngineOptions) {
  const messages = new Map<string, QStashMessage>();
  const timers = new Map<string, NodeJS.Timeout>();
  const running = new Set<Promise<void>>();
  const aborts = new Set<AbortController>();
  let dlqCounter = 0;
  let closed = false;

  function schedule(message: QStashMessage, delayMs: number): void {
    if (closed) return;
    const timer = setTimeout(() => {
      timers.delete(message.id);
      const run = attemptAndContinue(message)
        .catch((err: unknown) => {
          console.error("[local-qstash] delivery loop failed", err);
          if (!isSettled(message)) message.state = "FAILED";
        })
        .finally(() => running.delete(run));
      running.add(run);
    }, delayMs);
    timer.unref();
    timers.set(message.id, timer);
  }

  function add(input: NewMessage): QStashMessage {
    const createdAt = Date.now();
    const message: QStashMessage = {
      ...input,
      // The publisher computed notBefore from its own clock reading, which can be a millisecond
      // older than createdAt; a message is never due before it exists.
      notBefore: Math.max(input.notBefore, createdAt),
      id: randomId("msg_"),
      createdAt,
      state: "CREATED",
      retried: 0,
      attempts: [],
      callbackIds: [],
      dlqId: null,
      duplicate: false,
    };
    message.duplicate = options.takeDuplicate(message);
    message.notBefore += Math.max(0, options.holdBackMs?.(message) ?? 0);
    messages.set(message.id, message);
    schedule(message, Math.max(0, message.notBefore - message.createdAt));
    return message;
  }

  async function deliver(message: QStashMessage, retried: number): Promise<DeliveryResult> {
    const headers = new Headers(message.headers);
    headers.set("Upstash-Message-Id", message.id);
    headers.set("Upstash-Retried", String(retried));
    headers.set(
      "Upstash-Signature",
      await signDelivery(options.signingKey(), message.url, message.body),
    );
    if (!headers.has("user-agent")) headers.set("User-Agent", "Upstash-QStash");
    const abort = new AbortController();
    aborts.add(abort);
    const timeout = setTimeout(() => abort.abort(new Error("timeout")), message.timeoutMs);
    timeout.unref();
    try {
      const res = await fetch(message.url, {
        method: message.method,
        headers,
        body: ["GET", "HEAD"].includes(message.method) ? undefined : message.body,
        signal: abort.signal,
        redirect: "manual",
      });
      const body = new Uint8Array(await res.arrayBuffer());
      return { status: res.status, headers: res.headers, body, error: null };
    } catch (err) {
      const reason = abort.signal.aborted ? abort.signal.reason : err;
      const error = reason instanceof Error ? reason.message : String(reason);
      return { status: null, headers: new Headers(), body: new Uint8Array(), error };
    } finally {
      clearTimeout(timeout);
      aborts.delete(abort);
    }
  }

  async function attempt(message: QStashMessage, retried: number, duplicate: boolean) {
    const started = Date.now();
    options.onAttempt?.(message, retried);
    const result = await deliver(message, retried);
    const record: Attempt = {
      retried,
      status: result.status,
      error: result.error,
      duplicate,
      started_at: new Date(started).toISOString(),
      duration_ms: Date.now() - started,
      next_delay_ms: null,
    };
    message.attempts.push(record);
    return { result, record };
  }

  function spawnCallback(
    parent: QStashMessage,
    kind: "callback" | "failure_callback",
    result: DeliveryResult,
    retried: number,
  ): void {
    const target = kind === "callback" ? parent.callback : parent.failureCallback;
    if (!target || closed) return;
    const payload: Record<string, unknown> = {
      status: result.status ?? 0,
      header: headerMap(result.headers),
      body: Buffer.from(result.body).toString("base64"),
      retried,
      maxRetries: parent.maxRetries,
      ...(kind === "failure_callback" ? { dlqId: parent.dlqId } : {}),
      sourceMessageId: parent.id,
      url: parent.url,
      method: parent.method,
      sourceHeader: headerMap(parent.headers),
      sourceBody: Buffer.from(parent.body).toString("base64"),
      notBefore: String(parent.notBefore),
      createdAt: String(parent.createdAt),
      callerIP: parent.callerIp,
    };
    const child = add({
      kind,
      parentId: parent.id,
      url: target.url,
      method: target.method,
      headers: { "content-type": "application/json", ...target.headers },
      body: new TextEncoder().encode(JSON.stringify(payload)),
      maxRetries: target.retries,
      retryDelay: target.retryDelay,
      timeoutMs: target.timeoutMs,
      callback: null,
      failureCallback: null,
      notBefore: Date.now() + target.delayMs,
      callerIp: parent.callerIp,
      deduplicationId: null,
      redact: parent.redact,
    });
    parent.callbackIds.push(child.id);
  }

  function nextDelayMs(message: QStashMessage, retried: number, response: Headers): number {
    const asked = retryAfterSeconds(response, Date.now());
    let ms: number;
    if (asked !== null) ms = asked * 1000;
    else if (message.retryDelay !== null) ms = evalRetryDelayMs(message.retryDelay, retried);
    else ms = backoffSeconds(retried + 1) * 1000;
    return ms * options.timeScale;
  }

  async function attemptAndContinue(message: QStashMessage): Promise<void> {
    if (closed || isSettled(message)) return;
    message.state = "ACTIVE";
    const retried = message.retried;
    const { result, record } = await attempt(message, retried, false);
    if (closed || isSettled(message)) return;

    const status = result.status;
    const ok = status !== null && status >= 200 && status < 300;
    // Without an HTTP response there is nothing to report to the per-attempt callback.
    if (status !== null) spawnCallback(message, "callback", result, retried);

    if (ok) {
      if (message.duplicate) {
        message.duplicate = false;
        const again = await attempt(message, retried, true);
        if (again.result.status !== null) spawnCallback(message, "callback", again.result, retried);
      }
      message.state = "DELIVERED";
      return;
    }
    const nonRetryable =
      status === 489 && result.headers.get("upstash-nonretryable-error")?.toLowerCase() === "true";
    if (nonRetryable || retried >= message.maxRetries) {
      message.state = "FAILED";
      dlqCounter += 1;
      message.dlqId = `${Date.now()}-${dlqCounter}`;
      spawnCallback(message, "failure_callback", result, retried);
      return;
    }
    record.next_delay_ms = nextDelayMs(message, retried, result.headers);
    message.retried = retried + 1;
    message.state = "RETRY";
    schedule(message, record.next_delay_ms);
  }

  function cancel(id: string): boolean {
    const message = messages.get(id);
    if (!message || isSettled(message)) return false;
    clearTimeout(timers.get(id));
    timers.delete(id);
    message.state = "CANCELLED";
    return true;
  }

  /** Whether a message, or the message it is a callback of, satisfies `predicate`. */
  function lineage(message: QStashMessage, predicate: (m: QStashMessage) => boolean): boolean {
    for (let m: QStashMessage | undefined = message; m; ) {
      if (predicate(m)) return true;
      m = m.parentId ? messages.get(m.parentId) : undefined;
    }
    return false;
  }

  return {
    messages,
    add,
    cancel,
    lineage,
    /** Resolves true once every message selected by `predicate` is settled, false on timeout. */
    async flush(predicate: (m: QStashMessage) => boolean, timeoutMs: number): Promise<boolean> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const pending = [...messages.values()].some((m) => !isSettled(m) && predicate(m));
        if (!pending) return true;
        if (Date.now() >= deadline || closed) return false;
        await new Promise((r) => setTimeout(r, 5).unref());
      }
    },
    async close(): Promise<void> {
      closed = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
      for (const abort of aborts) abort.abort(new Error("local cloud closing"));
      await Promise.allSettled([...running]);
    },
  };
}

export type Engine = ReturnType<typeof createEngine>;
