import { createHash } from "node:crypto";
import { headerMap, type QStashMessage } from "./engine.ts";

function redactValue(value: string): string {
  return `REDACTED:${createHash("sha256").update(value).digest("hex")}`;
}

/** A message as tests see it: snake_case, with Upstash-Redact-Fields applied like the console. */
export function view(message: QStashMessage, all: Map<string, QStashMessage>) {
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
