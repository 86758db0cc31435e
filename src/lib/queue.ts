import { Client, QstashError, Receiver } from "@upstash/qstash";

/** One HTTP request QStash should make on our behalf, with callbacks for its outcome. */
export interface QueuedRequest {
  /** Absolute URL QStash calls (for replies: Gemini's generateContent). */
  url: string;
  body: unknown;
  /** Headers QStash forwards to `url`; values listed in `redactHeaders` are hidden in its logs. */
  forwardHeaders: Record<string, string>;
  redactHeaders: string[];
  /** Makes a republish of the same job a no-op inside QStash's deduplication window. */
  deduplicationId: string;
  retries: number;
  /** Upstash-Timeout: how long QStash waits for `url` to answer one delivery. */
  timeoutSeconds: number;
  callback: string;
  failureCallback: string;
}

/** Publishes jobs to QStash. */
export interface JobQueue {
  publish(request: QueuedRequest): Promise<{ messageId: string }>;
  /**
   * Cancels a published job (`DELETE /v2/messages/{id}`, the SDK's `messages.cancel`). False when
   * QStash no longer holds it (delivered, failed or unknown: 404). A delivery already in flight
   * may still report back, so callers keep their own conditional writes.
   */
  cancel(messageId: string): Promise<boolean>;
}

/** Verifies that a request really comes from QStash and was meant for `url`. */
export interface QueueSignatureVerifier {
  /** Resolves false (never throws) when the signature, body hash, URL or lifetime is wrong. */
  verify(input: { signature: string; body: string; url: string }): Promise<boolean>;
}

export function createJobQueue(baseUrl: string, token: string): JobQueue {
  const client = new Client({
    baseUrl,
    token,
    // One quick retry on network errors; a publish that still fails is left to the sweep.
    retry: { retries: 1, backoff: () => 50 },
    enableTelemetry: false,
    // Never switch to the SDK's downloaded dev server because of a stray QSTASH_DEV variable.
    devMode: false,
  });
  return {
    async publish(r) {
      const res = await client.publishJSON({
        url: r.url,
        body: r.body,
        headers: r.forwardHeaders,
        redact: { header: r.redactHeaders },
        deduplicationId: r.deduplicationId,
        retries: r.retries,
        timeout: r.timeoutSeconds,
        callback: r.callback,
        failureCallback: r.failureCallback,
      });
      return { messageId: res.messageId };
    },
    async cancel(messageId) {
      try {
        const res = await client.messages.cancel(messageId);
        return res.cancelled > 0;
      } catch (err) {
        if (err instanceof QstashError && err.status === 404) return false;
        throw err;
      }
    },
  };
}

export function createQueueSignatureVerifier(
  currentSigningKey: string,
  nextSigningKey: string,
): QueueSignatureVerifier {
  const receiver = new Receiver({ currentSigningKey, nextSigningKey, devMode: false });
  return {
    async verify({ signature, body, url }) {
      try {
        // Receiver.verify throws SignatureError on every failure; a bad signature must be a 401.
        return await receiver.verify({ signature, body, url, clockTolerance: 5 });
      } catch {
        return false;
      }
    },
  };
}

/** The body QStash posts to a callback or failure callback (the fields we use). */
export interface QueueCallback {
  /** HTTP status the destination answered with. */
  status: number;
  /** The destination's response body, still base64-encoded (may be absent or truncated). */
  body: string | null;
  retried: number | null;
  maxRetries: number | null;
  sourceMessageId: string | null;
  /** Present only on failure callbacks (the message went to the DLQ). */
  dlqId: string | null;
}

/** Parses a (verified) callback body; null when it is not a QStash callback at all. */
export function parseQueueCallback(raw: string): QueueCallback | null {
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) return null;
  const fields = json as Record<string, unknown>;
  const num = (v: unknown) => {
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : v;
    return typeof n === "number" && Number.isFinite(n) ? n : null;
  };
  const str = (v: unknown) => (typeof v === "string" ? v : null);
  const status = num(fields.status);
  if (status === null) return null;
  return {
    status,
    body: str(fields.body),
    retried: num(fields.retried),
    maxRetries: num(fields.maxRetries),
    sourceMessageId: str(fields.sourceMessageId),
    dlqId: str(fields.dlqId),
  };
}

/** Decodes QStash's base64 body into JSON; undefined when it is not base64 of UTF-8 JSON. */
export function decodeCallbackBody(body: string | null): unknown {
  if (body === null || body === "") return undefined;
  try {
    const bin = atob(body);
    const text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
      Uint8Array.from(bin, (ch) => ch.charCodeAt(0)),
    );
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
