import { randomBytes } from "node:crypto";
import { Hono } from "hono";

export const FAULT_KINDS = [
  "rate_limit",
  "server_error",
  "unavailable",
  "slow",
  "safety",
  "malformed",
  "empty",
  /** promptFeedback.blockReason and no candidates: the prompt itself was refused. */
  "blocked_prompt",
  /** Streams: some text, then an `{"error":…}` object inside the 200 stream. */
  "stream_error",
  /** Streams: some text, then the stream ends without a finishReason (a cut connection). */
  "stream_cut",
  /** Streams: some text, then a late finishReason SAFETY (the text so far is already out). */
  "late_safety",
  /** Streams: every chunk `ms` apart (a long answer); generateContent answers normally. */
  "slow_stream",
] as const;
export type GeminiFaultKind = (typeof FAULT_KINDS)[number];

/** A fault applied to requests whose prompt text contains `match`, `times` times (null = always). */
export interface GeminiFault {
  id: string;
  match: string;
  kind: GeminiFaultKind;
  times: number | null;
  ms: number;
  retry_after: number;
}

export interface GeminiCall {
  /** 1, 2, 3…: the call's place in the record, never reused (the cursor of `GET /calls?since=`). */
  seq: number;
  model: string;
  method: "generateContent" | "streamGenerateContent";
  prompt: string;
  /** The request's generationConfig as sent (null when absent), so tests can assert bounds. */
  generationConfig: Record<string, unknown> | null;
  /** The systemInstruction's text (null when absent), so tests can assert per-chat settings. */
  systemInstruction: string | null;
  /** The request's tools as sent (null when absent), e.g. `[{"googleSearch":{}}]`. */
  tools: unknown[] | null;
  status: number;
  fault: GeminiFaultKind | null;
  at: string;
}

/** What the stand-in remembers between requests: the switched-on faults and the calls it saw. */
export interface GeminiState {
  faults: GeminiFault[];
  calls: GeminiCall[];
  /** The last `seq` given to a call (0 before the first). */
  lastSeq: number;
  /** The highest `seq` the record dropped to stay within its size (0 if none). */
  evictedThrough: number;
}

function parseFault(input: unknown): GeminiFault | string {
  if (typeof input !== "object" || input === null) return "body must be a JSON object";
  const b = input as Record<string, unknown>;
  if (typeof b.match !== "string") return "match must be a string";
  if (!FAULT_KINDS.includes(b.kind as GeminiFaultKind)) {
    return `kind must be one of ${FAULT_KINDS.join(", ")}`;
  }
  const times = b.times ?? null;
  if (times !== null && !(Number.isInteger(times) && (times as number) > 0)) {
    return "times must be a positive integer";
  }
  const ms = b.ms ?? 1000;
  if (typeof ms !== "number" || ms < 0) return "ms must be a non-negative number";
  const retryAfter = b.retry_after ?? 45.837906927;
  if (typeof retryAfter !== "number" || retryAfter < 0) {
    return "retry_after must be a non-negative number";
  }
  return {
    id: `flt_${randomBytes(9).toString("base64url")}`,
    match: b.match,
    kind: b.kind as GeminiFaultKind,
    times: times as number | null,
    ms,
    retry_after: retryAfter,
  };
}

/**
 * `/_control/gemini`: `POST /faults` (a fault scoped to prompts containing `match`),
 * `GET|DELETE /faults[?match=]`, `DELETE /faults/:id`, and `GET|DELETE /calls[?match=]` to read or
 * forget the calls whose prompt contains `match`.
 *
 * `GET /calls?since=<seq>` reads only the calls recorded after `seq`, with `next_since` (the cursor
 * for the next read: the last seq given, matching or not) and `lost` (how many calls after `seq`
 * the record dropped to stay within its size before this read: a reader that sees 0 every time
 * has seen every call). Without `since`, `lost` counts from the first call.
 */
export function createControlApp(state: GeminiState): Hono {
  const control = new Hono();
  control.post("/faults", async (c) => {
    const fault = parseFault(await c.req.json().catch(() => null));
    if (typeof fault === "string") return c.json({ error: fault }, 400);
    state.faults.push(fault);
    return c.json({ fault }, 201);
  });
  control.get("/faults", (c) => c.json({ faults: state.faults }));
  control.delete("/faults", (c) => {
    const match = c.req.query("match");
    const before = state.faults.length;
    state.faults = match === undefined ? [] : state.faults.filter((f) => f.match !== match);
    return c.json({ deleted: before - state.faults.length });
  });
  control.delete("/faults/:id", (c) => {
    const before = state.faults.length;
    state.faults = state.faults.filter((f) => f.id !== c.req.param("id"));
    return c.json({ deleted: before - state.faults.length });
  });
  control.get("/calls", (c) => {
    const match = c.req.query("match");
    const rawSince = c.req.query("since") ?? "0";
    const since = Number(rawSince);
    if (!/^\d+$/.test(rawSince) || !Number.isSafeInteger(since)) {
      return c.json({ error: "since must be a non-negative integer (a call's seq)" }, 400);
    }
    return c.json({
      calls: state.calls.filter(
        (x) => x.seq > since && (match === undefined || x.prompt.includes(match)),
      ),
      next_since: state.lastSeq,
      lost: Math.max(0, state.evictedThrough - since),
    });
  });
  control.delete("/calls", (c) => {
    const match = c.req.query("match");
    const before = state.calls.length;
    state.calls = match === undefined ? [] : state.calls.filter((x) => !x.prompt.includes(match));
    return c.json({ deleted: before - state.calls.length });
  });
  return control;
}
