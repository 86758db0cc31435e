import { createHash } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { type Context, Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import {
  type CallbackTarget,
  createEngine,
  headerMap,
  isSettled,
  type QStashMessage,
} from "./engine.ts";
import { evalRetryDelayMs, parseDurationSeconds } from "./timing.ts";
import { QStashUsage } from "./usage.ts";

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

function redactValue(value: string): string {
  return `REDACTED:${createHash("sha256").update(value).digest("hex")}`;
}

/** A message as tests see it: snake_case, with Upstash-Redact-Fields applied like the console. */
function view(message: QStashMessage, all: Map<string, QStashMessage>) {
  const fields = (message.redact ?? "").split(",").map((f) => f.trim().toLowerCase());
  const header = headerMap(message.headers);
  for (const name of Object.keys(header)) {
    if (
      fields.includes("header") ||
      fields.includes("headers") ||
      fields.includes(`header[${name.toLowerCase()}]`)
    ) {
      header[name] = (header[name] ?? []).map(redactValue);
    }
  }
  const body = new TextDecoder().decode(message.body);
  return {
    message_id: message.id,
    kind: message.kind,
    parent_id: message.parentId,
    url: message.url,
    method: message.method,
    state: message.state,
    retried: message.retried,
    max_retries: message.maxRetries,
    /** Upstash-Timeout of each delivery (what the publish asked for, or the plan's default). */
    timeout_ms: message.timeoutMs,
    created_at: message.createdAt,
    not_before: message.notBefore,
    deduplication_id: message.deduplicationId,
    dlq_id: message.dlqId,
    header,
    body: fields.includes("body") ? redactValue(body) : body,
    deliveries: message.attempts.length,
    attempts: message.attempts,
    callbacks: message.callbackIds.map((id) => {
      const child = all.get(id);
      return { message_id: id, kind: child?.kind, url: child?.url, state: child?.state };
    }),
  };
}

/**
 * Local QStash: publish (as @upstash/qstash's Client sends it), signed deliveries with retries
 * and backoff, callbacks and failure callbacks, deduplication, messages and DLQ reads; plus
 * control switches for duplicate delivery, publish failures, the signing key and (for soak runs)
 * seeded random duplication and holding back of messages and callbacks (`/chaos`).
 */
export async function createQStashService(config: LocalCloudConfig): Promise<LocalService> {
  let signWith: "current" | "next" = "current";
  let duplicateSwitches: { match: string | null }[] = [];
  let publishFaults: { match: string | null }[] = [];
  const dedup = new Map<string, { messageId: string; at: number }>();
  let baseUrl: string | null = null;

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
      signWith === "current" ? config.qstashCurrentSigningKey : config.qstashNextSigningKey,
    holdBackMs: (message) => chaos.holdBackMs(message),
    takeDuplicate: (message) => {
      if (chaos.duplicate(message)) return true;
      const hit = duplicateSwitches.find((s) => matches(s.match, message));
      if (!hit) return false;
      duplicateSwitches = duplicateSwitches.filter((s) => s !== hit);
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
    if (publishFaults.some((f) => matches(f.match, { url, body }))) {
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

  const control = new Hono();
  const readJson = async (c: Context) =>
    ((await c.req.json().catch(() => ({}))) ?? {}) as Record<string, unknown>;
  const optionalMatch = (v: unknown): string | null | undefined =>
    v === undefined || v === null ? null : typeof v === "string" ? v : undefined;

  control.post("/duplicate", async (c) => {
    const match = optionalMatch((await readJson(c)).match);
    if (match === undefined) return c.json({ error: "match must be a string" }, 400);
    duplicateSwitches.push({ match });
    return c.json({ pending: duplicateSwitches.length });
  });
  control.post("/publish-fault", async (c) => {
    const body = await readJson(c);
    const match = optionalMatch(body.match);
    if (match === undefined) return c.json({ error: "match must be a string" }, 400);
    if (body.mode === "error") publishFaults.push({ match });
    else if (body.mode === "none") {
      publishFaults =
        body.match === undefined ? [] : publishFaults.filter((f) => f.match !== match);
    } else return c.json({ error: 'mode must be "error" or "none"' }, 400);
    return c.json({ faults: publishFaults });
  });
  control.post("/chaos", async (c) => {
    const problem = chaos.configure(await readJson(c));
    if (problem) return c.json({ error: problem }, 400);
    return c.json(chaos.view());
  });
  control.get("/chaos", (c) => c.json(chaos.view()));
  control.post("/signing-key", async (c) => {
    const use = (await readJson(c)).use;
    if (use !== "current" && use !== "next") {
      return c.json({ error: 'use must be "current" or "next"' }, 400);
    }
    signWith = use;
    return c.json({ use });
  });
  control.post("/reset", (c) => {
    signWith = "current";
    duplicateSwitches = [];
    publishFaults = [];
    chaos.configure({});
    return c.json({ ok: true });
  });
  control.get("/messages", (c) => {
    const match = c.req.query("match");
    const kind = c.req.query("kind");
    const selected = [...engine.messages.values()].filter(
      (m) =>
        (match === undefined || engine.lineage(m, (x) => matches(match, x))) &&
        (kind === undefined || m.kind === kind),
    );
    return c.json({ messages: selected.map((m) => view(m, engine.messages)) });
  });
  control.get("/messages/:id", (c) => {
    const m = engine.messages.get(c.req.param("id"));
    if (!m) return c.json({ error: "message not found" }, 404);
    return c.json(view(m, engine.messages));
  });
  control.post("/flush", async (c) => {
    const body = await readJson(c);
    const match = optionalMatch(body.match);
    if (match === undefined) return c.json({ error: "match must be a string" }, 400);
    const timeoutMs = typeof body.timeout_ms === "number" ? body.timeout_ms : 10_000;
    const selected = (m: QStashMessage) => engine.lineage(m, (x) => matches(match, x));
    const settled = await engine.flush(selected, timeoutMs);
    const pending = [...engine.messages.values()]
      .filter((m) => selected(m) && !isSettled(m))
      .map((m) => m.id);
    return c.json({ settled, pending }, settled ? 200 : 504);
  });
  control.get("/info", (c) => c.json({ base_url: baseUrl, signing_key: signWith }));

  return {
    name: "qstash",
    prefix: "/qstash",
    app,
    control,
    usage,
    onListen(url) {
      baseUrl = url;
    },
    close: () => engine.close(),
  };
}

type ChaosKind = QStashMessage["kind"];
const CHAOS_KINDS: readonly ChaosKind[] = ["publish", "callback", "failure_callback"];

/**
 * Random at-least-once behaviour for soak runs (`POST /_control/qstash/chaos`): each new message
 * of the chosen kinds is, with probability `duplicate`, delivered twice (as real QStash may), and
 * with probability `hold`, held back up to `hold_ms` so messages published later overtake it
 * (reordered deliveries and callbacks). Seeded, so a run can be replayed. `{}` switches it off.
 */
function createChaos() {
  let settings = { duplicate: 0, hold: 0, holdMs: 0, kinds: [...CHAOS_KINDS], match: "" };
  let state = 1;
  const counts = { duplicated: 0, held: 0 };
  // mulberry32: a tiny seeded generator; Math.random would make a soak run unrepeatable.
  const random = () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const applies = (m: QStashMessage) =>
    settings.kinds.includes(m.kind) &&
    (settings.match === "" ||
      m.url.includes(settings.match) ||
      new TextDecoder().decode(m.body).includes(settings.match));
  const probability = (v: unknown) =>
    v === undefined ? 0 : typeof v === "number" && v >= 0 && v <= 1 ? v : null;

  return {
    configure(body: Record<string, unknown>): string | null {
      const duplicate = probability(body.duplicate);
      const hold = probability(body.hold);
      const holdMs = body.hold_ms ?? 0;
      const kinds = body.kinds ?? CHAOS_KINDS;
      const seed = body.seed ?? 1;
      const match = body.match ?? "";
      if (duplicate === null || hold === null) return "duplicate and hold are probabilities 0..1";
      if (typeof holdMs !== "number" || holdMs < 0) return "hold_ms must be >= 0";
      if (!Number.isInteger(seed)) return "seed must be an integer";
      if (typeof match !== "string") return "match must be a string";
      if (!Array.isArray(kinds) || kinds.some((k) => !CHAOS_KINDS.includes(k as ChaosKind))) {
        return `kinds must list ${CHAOS_KINDS.join(", ")}`;
      }
      settings = { duplicate, hold, holdMs, kinds: kinds as ChaosKind[], match };
      state = seed as number;
      return null;
    },
    duplicate(m: QStashMessage): boolean {
      if (settings.duplicate === 0 || !applies(m) || random() >= settings.duplicate) return false;
      counts.duplicated++;
      return true;
    },
    holdBackMs(m: QStashMessage): number {
      if (settings.hold === 0 || !applies(m) || random() >= settings.hold) return 0;
      counts.held++;
      return Math.round(random() * settings.holdMs);
    },
    view() {
      const { holdMs, ...rest } = settings;
      return { ...rest, hold_ms: holdMs, ...counts };
    },
  };
}
