import { ApiError, GoogleGenAI } from "@google/genai";
import type { GenerationConfig, Grounding } from "./gemini-models";

export * from "./gemini-models";

/** One turn of a conversation as Gemini sees it. */
export interface GeminiTurn {
  role: "user" | "model";
  text: string;
}

/** The REST body of `models/{model}:generateContent` (and of the streaming variant). */
export interface GenerateContentBody {
  contents: { role: "user" | "model"; parts: { text: string }[] }[];
  systemInstruction?: { parts: { text: string }[] };
  generationConfig?: GenerationConfig;
  /** `[{ googleSearch: {} }]` when the chatroom grounds its answers with Google Search. */
  tools?: { googleSearch: Record<string, never> }[];
}

/** A request for one reply: the model to call and the body to send it. */
export interface GeminiRequest {
  model: string;
  body: GenerateContentBody;
}

/** Token usage of one answer, as Gemini reports it (null: not reported). */
export interface GeminiUsage {
  promptTokens: number | null;
  /** candidatesTokenCount: the visible answer, thinking excluded. */
  replyTokens: number | null;
  /** thoughtsTokenCount: thinking, billed as output. */
  thoughtTokens: number | null;
  /** cachedContentTokenCount: the part of the prompt served from the context cache. */
  cachedTokens: number | null;
  totalTokens: number | null;
  /** modelVersion: the model that actually answered (it can differ from the one asked for). */
  model: string | null;
}

/** Whether Gemini produced output for this answer (then the prompt counts against the quota). */
export function producedOutput(usage: GeminiUsage): boolean {
  return (usage.replyTokens ?? 0) > 0 || (usage.thoughtTokens ?? 0) > 0;
}

/** What a Gemini answer boils down to for us. */
export type GeminiAnswer =
  | {
      kind: "text";
      text: string;
      finishReason: string | null;
      usage: GeminiUsage;
      /** candidates[0].groundingMetadata, when Google Search grounded the answer. */
      grounding?: Grounding | null;
    }
  | { kind: "blocked"; finishReason: string | null; usage: GeminiUsage }
  | { kind: "empty"; finishReason: string | null; usage: GeminiUsage };

const BLOCKING_FINISH_REASONS = new Set([
  "SAFETY",
  "RECITATION",
  "BLOCKLIST",
  "PROHIBITED_CONTENT",
  "SPII",
  "IMAGE_SAFETY",
]);

export function generateContentUrl(baseUrl: string, model: string): string {
  return `${baseUrl.replace(/\/+$/, "")}/v1beta/models/${encodeURIComponent(model)}:generateContent`;
}

/** The header Gemini reads its API key from (forwarded by QStash, redacted in its logs). */
export const GEMINI_API_KEY_HEADER = "x-goog-api-key";

/** Builds the request body; consecutive turns of one role are merged (Gemini expects alternation). */
export function buildGenerateContentBody(
  turns: GeminiTurn[],
  systemPrompt: string,
  generationConfig?: GenerationConfig,
): GenerateContentBody {
  const contents: GenerateContentBody["contents"] = [];
  for (const turn of turns) {
    const last = contents.at(-1);
    if (last && last.role === turn.role) last.parts.push({ text: turn.text });
    else contents.push({ role: turn.role, parts: [{ text: turn.text }] });
  }
  return {
    contents,
    ...(systemPrompt ? { systemInstruction: { parts: [{ text: systemPrompt }] } } : {}),
    ...(generationConfig ? { generationConfig } : {}),
  };
}

function asRecord(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : undefined;
}

function asCount(v: unknown): number | null {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : null;
}

/**
 * Reads a generateContent response (or one merged stream). Returns null when the value is not a
 * Gemini response at all (then the caller treats it as an upstream error).
 */
export function readGenerateContentResponse(json: unknown): GeminiAnswer | null {
  const root = asRecord(json);
  if (!root) return null;
  const usageMeta = asRecord(root.usageMetadata);
  const usage: GeminiUsage = {
    promptTokens: asCount(usageMeta?.promptTokenCount),
    replyTokens: asCount(usageMeta?.candidatesTokenCount),
    thoughtTokens: asCount(usageMeta?.thoughtsTokenCount),
    cachedTokens: asCount(usageMeta?.cachedContentTokenCount),
    totalTokens: asCount(usageMeta?.totalTokenCount),
    model: typeof root.modelVersion === "string" ? root.modelVersion : null,
  };
  const promptFeedback = asRecord(root.promptFeedback);
  if (typeof promptFeedback?.blockReason === "string") {
    return { kind: "blocked", finishReason: promptFeedback.blockReason, usage };
  }
  if (!Array.isArray(root.candidates)) return null;
  const candidate = asRecord(root.candidates[0]);
  if (!candidate) return { kind: "empty", finishReason: null, usage };
  const finishReason = typeof candidate.finishReason === "string" ? candidate.finishReason : null;
  if (finishReason && BLOCKING_FINISH_REASONS.has(finishReason)) {
    return { kind: "blocked", finishReason, usage };
  }
  const parts = asRecord(candidate.content)?.parts;
  const text = storableText(
    Array.isArray(parts)
      ? parts
          .map((p) => asRecord(p))
          .filter((p) => p !== undefined && p.thought !== true && typeof p.text === "string")
          .map((p) => p?.text as string)
          .join("")
      : "",
  );
  if (text.length === 0) return { kind: "empty", finishReason, usage };
  return { kind: "text", text, finishReason, usage, grounding: groundingOf(candidate) };
}

/**
 * A candidate's groundingMetadata as we keep it: `webSearchQueries` and the web `groundingChunks`
 * (https://ai.google.dev/gemini-api/docs/google-search). Null when there is none.
 */
export function groundingOf(candidate: Record<string, unknown>): Grounding | null {
  const meta = asRecord(candidate.groundingMetadata);
  if (!meta) return null;
  const queries = Array.isArray(meta.webSearchQueries)
    ? meta.webSearchQueries.filter((q): q is string => typeof q === "string").map(storableText)
    : [];
  const sources: Grounding["sources"] = [];
  if (Array.isArray(meta.groundingChunks)) {
    for (const chunk of meta.groundingChunks) {
      const web = asRecord(asRecord(chunk)?.web);
      if (typeof web?.uri !== "string") continue;
      sources.push({
        uri: storableText(web.uri),
        title: typeof web.title === "string" ? storableText(web.title) : null,
      });
    }
  }
  return queries.length === 0 && sources.length === 0 ? null : { queries, sources };
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * Model text as Postgres can store it: `text` refuses NUL (0x00) and a lone surrogate is not
 * UTF-8, and either would fail every delivery of the reply. NUL is dropped, a lone surrogate
 * becomes U+FFFD.
 */
export function storableText(text: string): string {
  return text.replaceAll("\u0000", "").replace(LONE_SURROGATE, "\uFFFD");
}

/** A failure of the streaming call, with the upstream HTTP status when there was one. */
export class GeminiCallError extends Error {
  override name = "GeminiCallError";
  readonly status: number | null;
  readonly timedOut: boolean;
  /** RetryInfo.retryDelay of a 429 in seconds (Gemini sends no Retry-After header). */
  readonly retryAfterSeconds: number | null;
  constructor(
    message: string,
    status: number | null,
    timedOut: boolean,
    retryAfterSeconds: number | null = null,
  ) {
    super(message);
    this.status = status;
    this.timedOut = timedOut;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

/**
 * The wait a Gemini error body asks for: `error.details[]` RetryInfo `retryDelay` ("45.837906927s").
 * Gemini puts it only there, never in a Retry-After header. Rounded up to whole seconds.
 */
export function retryDelaySeconds(errorBody: unknown): number | null {
  const details = asRecord(asRecord(errorBody)?.error)?.details;
  if (!Array.isArray(details)) return null;
  for (const d of details) {
    const r = asRecord(d);
    if (r?.["@type"] !== "type.googleapis.com/google.rpc.RetryInfo") continue;
    const m = typeof r.retryDelay === "string" ? /^(\d+(?:\.\d+)?)s$/.exec(r.retryDelay) : null;
    if (m) return Math.ceil(Number(m[1]));
  }
  return null;
}

/** One streamed chunk: new text (possibly empty) and, at the end, the merged answer. */
export type GeminiStreamEvent =
  | { type: "delta"; text: string }
  | { type: "end"; answer: GeminiAnswer };

/** Calls streamGenerateContent directly (the SSE path only; queued replies go through QStash). */
export interface GeminiStreamer {
  /** `signal` aborts the upstream call (the generation is handed elsewhere). */
  stream(
    body: GenerateContentBody,
    signal?: AbortSignal,
    model?: string,
  ): AsyncGenerator<GeminiStreamEvent>;
}

export function createGeminiStreamer(options: {
  apiKey: string;
  baseUrl: string;
  model: string;
  timeoutMs: number;
}): GeminiStreamer {
  // Built on first use: most requests never stream, and the SDK client is not free to set up.
  let client: GoogleGenAI | undefined;
  return {
    async *stream(body, signal, model) {
      client ??= new GoogleGenAI({
        apiKey: options.apiKey,
        httpOptions: { baseUrl: options.baseUrl, timeout: options.timeoutMs },
      });
      const ai = client;
      let chunks: Awaited<ReturnType<typeof ai.models.generateContentStream>>;
      try {
        chunks = await ai.models.generateContentStream({
          model: model ?? options.model,
          contents: body.contents,
          config: {
            ...(body.systemInstruction ? { systemInstruction: body.systemInstruction } : {}),
            ...(body.tools ? { tools: body.tools } : {}),
            ...(body.generationConfig ? sdkGenerationConfig(body.generationConfig) : {}),
            ...(signal ? { abortSignal: signal } : {}),
          },
        });
      } catch (err) {
        throw toCallError(err);
      }
      let text = "";
      let finishReason: string | null = null;
      let usage: unknown;
      let promptFeedback: unknown;
      let modelVersion: string | undefined;
      let groundingMetadata: unknown;
      try {
        for await (const chunk of chunks) {
          const answer = readGenerateContentResponse({
            candidates: chunk.candidates ?? [],
            usageMetadata: chunk.usageMetadata,
          });
          if (chunk.usageMetadata) usage = chunk.usageMetadata;
          if (chunk.modelVersion) modelVersion = chunk.modelVersion;
          if (chunk.promptFeedback) promptFeedback = chunk.promptFeedback;
          const grounded = chunk.candidates?.[0]?.groundingMetadata;
          if (grounded) groundingMetadata = grounded;
          if (answer?.finishReason) finishReason = answer.finishReason;
          if (answer?.kind === "text") {
            text += answer.text;
            yield { type: "delta", text: answer.text };
          }
        }
      } catch (err) {
        throw toCallError(err);
      }
      const merged = readGenerateContentResponse({
        candidates: [
          {
            content: { parts: [{ text }] },
            finishReason,
            ...(groundingMetadata ? { groundingMetadata } : {}),
          },
        ],
        usageMetadata: usage,
        promptFeedback,
        modelVersion,
      });
      if (finishReason === null && merged?.kind !== "blocked") {
        // The SDK does not always raise an error object sent inside the 200 stream; a stream
        // that ends without a finishReason did not finish, whatever text it delivered.
        throw new GeminiCallError("Gemini's stream ended without a finishReason", null, false);
      }
      yield { type: "end", answer: merged ?? { kind: "empty", finishReason, usage: noUsage } };
    },
  };
}

/** The SDK spells generationConfig's fields flat in `config`; it sends them back nested. */
function sdkGenerationConfig(g: GenerationConfig) {
  return {
    maxOutputTokens: g.maxOutputTokens,
    ...(g.temperature !== undefined ? { temperature: g.temperature } : {}),
    ...(g.thinkingConfig
      ? { thinkingConfig: g.thinkingConfig as import("@google/genai").ThinkingConfig }
      : {}),
  };
}

const noUsage: GeminiUsage = {
  promptTokens: null,
  replyTokens: null,
  thoughtTokens: null,
  cachedTokens: null,
  totalTokens: null,
  model: null,
};

/** The SDK's ApiError message carries the error body as JSON (after "got status: …. "). */
function retryDelayOfMessage(message: string): number | null {
  const start = message.indexOf("{");
  if (start < 0) return null;
  try {
    return retryDelaySeconds(JSON.parse(message.slice(start)));
  } catch {
    return null;
  }
}

function toCallError(err: unknown): GeminiCallError {
  if (err instanceof ApiError) {
    return new GeminiCallError(err.message, err.status, false, retryDelayOfMessage(err.message));
  }
  const e = err instanceof Error ? err : new Error(String(err));
  const timedOut =
    e.name === "AbortError" || e.name === "TimeoutError" || /timed? ?out/i.test(e.message);
  return new GeminiCallError(e.message, null, timedOut);
}
