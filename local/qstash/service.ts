import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { type Context, Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import { createChaos, createControlApp, type QStashSwitches } from "./control.ts";
import { type CallbackTarget, createEngine } from "./engine.ts";
import { evalRetryDelayMs, parseDurationSeconds } from "./timing.ts";
import { QStashUsage } from "./usage.ts";
import { view } from "./view.ts";

const DEFAULT_RETRIES = 3;
const DEDUP_WINDOW_MS = 10 * 60 * 1000;
/** Free plan's maximum HTTP response duration. */
const DEFAULT_TIMEOUT_MS = 15 * 60 * 1000;
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"];

const FORWARD = "upstash-forward-";
const CALLBACK_FORWARD = "upstash-callback-forward-";
const FAILURE_CALLBACK_FORWARD = "upstash-failure-callback-forward-";

class PublishError extends Error {}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "http:" || url.protocol === "https:";
  } catch {
    return false;
  }
}

/** The destination as @upstash/qstash puts it in the path: raw (query included) or URL-encoded. */
function destinationOf(rawUrl: string): string {
  const marker = "/v2/publish/";
  const raw = rawUrl.slice(rawUrl.indexOf(marker) + marker.length);
  return /^https?%3a/i.test(raw) ? decodeURIComponent(raw) : raw;
}

function intHeader(h: Headers, name: string, fallback: number): number {
  const raw = h.get(name);
  if (raw === null) return fallback;
  if (!/^\d+$/.test(raw.trim())) throw new PublishError(`invalid ${name} header: ${raw}`);
  return Number(raw);
}

function durationMs(h: Headers, name: string, fallback: number): number {
  const raw = h.get(name);
  if (raw === null) return fallback;
  const seconds = parseDurationSeconds(raw);
  if (seconds === null) throw new PublishError(`invalid ${name} header: ${raw}`);
  return seconds * 1000;
}

function methodHeader(h: Headers, name: string): string {
  const method = (h.get(name) ?? "POST").toUpperCase();
  if (!METHODS.includes(method)) throw new PublishError(`invalid ${name} header: ${method}`);
  return method;
}

function retryDelayHeader(h: Headers, name: string): string | null {
  const expr = h.get(name);
  if (expr === null) return null;
  try {
    evalRetryDelayMs(expr, 0);
  } catch (err) {
    throw new PublishError((err as Error).message);
  }
  return expr;
}

/**
 * Local QStash: publish (as @upstash/qstash's Client sends it), signed deliveries with retries
 * and backoff, callbacks and failure callbacks, deduplication, messages and DLQ reads; plus
 * control switches for duplicate delivery, publish failures, the signing key and (for soak runs)
 * seeded random duplication and holding back of messages and callbacks (`/chaos`).
 */
export async function createQStashService(config: LocalCloudConfig): Promise<LocalService> {
  const switches: QStashSwitches = {
    signWith: "current",
    duplicates: [],
    publishFaults: [],
    baseUrl: null,
  };
  const dedup = new Map<string, { messageId: string; at: number }>();

  const matches = (match: string | null, message: { url: string; body: Uint8Array }) =>
    match === null ||
    message.url.includes(match) ||
    new TextDecoder().decode(message.body).includes(match);

  const chaos = createChaos();
  const usage = new QStashUsage();
  const engine = createEngine({
    onAttempt: (message, retried) => usage.attempted(message.kind, retried),
    timeScale: config.qstashTimeScale,
    signingKey: () =>
      switches.signWith === "current"
        ? config.qstashCurrentSigningKey
        : config.qstashNextSigningKey,
    holdBackMs: (message) => chaos.holdBackMs(message),
    takeDuplicate: (message) => {
      if (chaos.duplicate(message)) return true;
      const hit = switches.duplicates.find((s) => matches(s.match, message));
      if (!hit) return false;
      switches.duplicates = switches.duplicates.filter((s) => s !== hit);
      return true;
    },
  });

  function authorized(c: Context): boolean {
    const auth = c.req.header("authorization");
    const token = auth?.startsWith("Bearer ") ? auth.slice(7) : c.req.query("qstash_token");
    return token === config.qstashToken;
  }

  function callbackTarget(
    h: Headers,
    prefix: "upstash-callback" | "upstash-failure-callback",
    forwardPrefix: string,
    fallback: { retries: number; retryDelay: string | null; timeoutMs: number },
  ): CallbackTarget | null {
    const url = h.get(prefix);
    if (url === null) return null;
    if (!isHttpUrl(url)) throw new PublishError(`invalid ${prefix} header: ${url}`);
    const headers: Record<string, string> = {};
    for (const [name, value] of h.entries()) {
      if (name.startsWith(forwardPrefix)) headers[name.slice(forwardPrefix.length)] = value;
    }
    return {
      url,
      method: methodHeader(h, `${prefix}-method`),
      retries: intHeader(h, `${prefix}-retries`, fallback.retries),
      retryDelay: retryDelayHeader(h, `${prefix}-retry-delay`) ?? fallback.retryDelay,
      timeoutMs: durationMs(h, `${prefix}-timeout`, fallback.timeoutMs),
      delayMs: durationMs(h, `${prefix}-delay`, 0) * config.qstashTimeScale,
      headers,
    };
  }

  async function publish(c: Context): Promise<Response> {
    if (!authorized(c)) return c.json({ error: "Unauthorized" }, 401);
    const url = destinationOf(c.req.url);
    const body = new Uint8Array(await c.req.arrayBuffer());
    if (switches.publishFaults.some((f) => matches(f.match, { url, body }))) {
      return c.json({ error: "local qstash: publish fault switched on" }, 500);
    }
    if (!isHttpUrl(url)) {
      return c.json(
        { error: `invalid destination url: ${url}, url groups are not supported` },
        400,
      );
    }
    const h = c.req.raw.headers;
    try {
      const headers: Record<string, string> = {};
      const contentType = h.get("content-type");
      if (contentType !== null) headers["content-type"] = contentType;
      for (const [name, value] of h.entries()) {
        if (name.startsWith(FORWARD)) headers[name.slice(FORWARD.length)] = value;
      }
      const maxRetries = intHeader(h, "upstash-retries", DEFAULT_RETRIES);
      const retryDelay = retryDelayHeader(h, "upstash-retry-delay");
      const timeoutMs = durationMs(h, "upstash-timeout", DEFAULT_TIMEOUT_MS);
      const notBeforeHeader = h.get("upstash-not-before");
      let delayMs = durationMs(h, "upstash-delay", 0);
      if (notBeforeHeader !== null) {
        if (!/^\d+$/.test(notBeforeHeader)) {
          throw new PublishError(`invalid upstash-not-before header: ${notBeforeHeader}`);
        }
        delayMs = Math.max(0, Number(notBeforeHeader) * 1000 - Date.now());
      }
      const inherited = { retries: maxRetries, retryDelay, timeoutMs };
      const callback = callbackTarget(h, "upstash-callback", CALLBACK_FORWARD, inherited);
      const failureCallback = callbackTarget(
        h,
        "upstash-failure-callback",
        FAILURE_CALLBACK_FORWARD,
        inherited,
      );
      const method = methodHeader(h, "upstash-method");

      const deduplicationId = h.get("upstash-deduplication-id");
      let dedupKey: string | null = deduplicationId === null ? null : `id:${deduplicationId}`;
      if (dedupKey === null && h.get("upstash-content-based-deduplication") === "true") {
        const hash = createHash("sha256").update(url).update("\n").update(body);
        for (const [k, v] of Object.entries(headers).sort()) hash.update(`\n${k}:${v}`);
        dedupKey = `content:${hash.digest("hex")}`;
      }
      const now = Date.now();
      for (const [key, entry] of dedup) if (now - entry.at > DEDUP_WINDOW_MS) dedup.delete(key);
      const seen = dedupKey === null ? undefined : dedup.get(dedupKey);
      if (seen) {
        usage.deduplicated++;
        return c.json({ messageId: seen.messageId, url, deduplicated: true }, 202);
      }

      const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
      const message = engine.add({
        kind: "publish",
        parentId: null,
        url,
        method,
        headers,
        body,
        maxRetries,
        retryDelay,
        timeoutMs,
        callback,
        failureCallback,
        // Delays run on the scaled clock like retries, so a test can publish "in 10 s" quickly.
        notBefore: now + delayMs * config.qstashTimeScale,
        callerIp: incoming?.socket.remoteAddress?.replace(/^::ffff:/, "") ?? "127.0.0.1",
        deduplicationId,
        redact: h.get("upstash-redact-fields"),
      });
      usage.publishes++;
      if (dedupKey !== null) dedup.set(dedupKey, { messageId: message.id, at: now });
      return c.json({ messageId: message.id, url }, 201);
    } catch (err) {
      if (err instanceof PublishError) return c.json({ error: err.message }, 400);
      throw err;
    }
  }

  const app = new Hono();
  app.post("/v2/publish/*", publish);
  app.get("/v2/messages/:id", (c) => {
    if (!authorized(c)) return c.json({ error: "Unauthorized" }, 401);
    const m = engine.messages.get(c.req.param("id"));
    if (!m) return c.json({ error: "message not found" }, 404);
    const v = view(m, engine.messages);
    return c.json({
      messageId: m.id,
      url: m.url,
      method: m.method,
      header: v.header,
      body: v.body,
      maxRetries: m.maxRetries,
      notBefore: m.notBefore,
      createdAt: m.createdAt,
      ...(m.callback ? { callback: m.callback.url } : {}),
      ...(m.failureCallback ? { failureCallback: m.failureCallback.url } : {}),
      callerIP: m.callerIp,
    });
  });
  app.delete("/v2/messages/:id", (c) => {
    if (!authorized(c)) return c.json({ error: "Unauthorized" }, 401);
    const id = c.req.param("id");
    if (!engine.messages.has(id)) return c.json({ error: "message not found" }, 404);
    const cancelled = engine.cancel(id);
    if (cancelled) usage.cancels++;
    return c.json({ cancelled: cancelled ? 1 : 0 });
  });
  app.get("/v2/dlq", (c) => {
    if (!authorized(c)) return c.json({ error: "Unauthorized" }, 401);
    const failed = [...engine.messages.values()].filter((m) => m.state === "FAILED" && m.dlqId);
    return c.json({
      messages: failed.map((m) => {
        const last = m.attempts[m.attempts.length - 1];
        return {
          messageId: m.id,
          dlqId: m.dlqId,
          url: m.url,
          method: m.method,
          header: view(m, engine.messages).header,
          body: new TextDecoder().decode(m.body),
          maxRetries: m.maxRetries,
          createdAt: m.createdAt,
          callerIP: m.callerIp,
          ...(last?.status != null ? { responseStatus: last.status } : {}),
        };
      }),
    });
  });
  app.delete("/v2/dlq/:dlqId", (c) => {
    if (!authorized(c)) return c.json({ error: "Unauthorized" }, 401);
    const m = [...engine.messages.values()].find((x) => x.dlqId === c.req.param("dlqId"));
    if (!m) return c.json({ error: "dlq message not found" }, 404);
    m.dlqId = null;
    return c.body(null, 200);
  });

  const control = createControlApp({ switches, chaos, engine, matches });

  return {
    name: "qstash",
    prefix: "/qstash",
    app,
    control,
    usage,
    onListen(url) {
      switches.baseUrl = url;
    },
    close: () => engine.close(),
  };
}
