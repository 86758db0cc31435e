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
    return c.json({
      calls:
        match === undefined ? state.calls : state.calls.filter((x) => x.prompt.includes(match)),
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
