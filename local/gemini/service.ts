import { randomBytes } from "node:crypto";
import { type Context, Hono } from "hono";
import {
  shutDownModelMessage,
  thinkingFamily,
  thinkingLevelsOf,
} from "../../src/lib/gemini-models.ts";
import type { LocalCloudConfig, LocalService } from "../types.ts";
import {
  createControlApp,
  type GeminiCall,
  type GeminiFault,
  type GeminiFaultKind,
  type GeminiState,
} from "./control.ts";
import {
  countTokens,
  type GenerateContentRequest,
  lastUserTextOf,
  promptTextOf,
  replyTextFor,
  splitIntoChunks,
  truncateToTokens,
} from "./reply.ts";
import { GeminiUsage } from "./usage.ts";

const STREAM_FAULTS: ReadonlySet<GeminiFaultKind> = new Set([
  "stream_error",
  "stream_cut",
  "late_safety",
]);
const STREAM_FAULT_PACE_MS = 20;
/** Calls the record keeps (the oldest go first); a reader with `?since=` is told of any it missed. */
const MAX_CALLS_KEPT = 20_000;
const STREAM_CHUNKS = 4;
const SERVICE = "generativelanguage.googleapis.com";

type Method = GeminiCall["method"];

interface GeminiError {
  status: number;
  body: { error: { code: number; message: string; status: string; details?: unknown[] } };
  headers?: Record<string, string>;
}

function googleError(
  code: number,
  status: string,
  message: string,
  details?: unknown[],
): GeminiError {
  return {
    status: code,
    body: { error: { code, message, status, ...(details ? { details } : {}) } },
  };
}

const MISSING_KEY = googleError(
  403,
  "PERMISSION_DENIED",
  "Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.",
);

// The real API answers a wrong key with 400 INVALID_ARGUMENT (not 401), reason API_KEY_INVALID.
const INVALID_KEY = googleError(
  400,
  "INVALID_ARGUMENT",
  "API key not valid. Please pass a valid API key.",
  [
    {
      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
      reason: "API_KEY_INVALID",
      domain: "googleapis.com",
      metadata: { service: SERVICE },
    },
    {
      "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
      locale: "en-US",
      message: "API key not valid. Please pass a valid API key.",
    },
  ],
);

function faultError(fault: GeminiFault): GeminiError | null {
  switch (fault.kind) {
    case "rate_limit":
      // As the real API: no Retry-After header; the wait is only in RetryInfo.retryDelay, with
      // fractional seconds, beside QuotaFailure and Help.
      return googleError(
        429,
        "RESOURCE_EXHAUSTED",
        `You exceeded your current quota, please check your plan and billing details. Please retry in ${fault.retry_after}s.`,
        [
          {
            "@type": "type.googleapis.com/google.rpc.QuotaFailure",
            violations: [
              {
                quotaMetric: `${SERVICE}/generate_content_free_tier_requests`,
                quotaId: "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                quotaDimensions: { location: "global", model: "gemini" },
                quotaValue: "10",
              },
            ],
          },
          {
            "@type": "type.googleapis.com/google.rpc.Help",
            links: [
              {
                description: "Learn more about Gemini API quotas",
                url: "https://ai.google.dev/gemini-api/docs/rate-limits",
              },
            ],
          },
          {
            "@type": "type.googleapis.com/google.rpc.RetryInfo",
            retryDelay: `${fault.retry_after}s`,
          },
        ],
      );
    case "server_error":
    case "stream_error":
      return googleError(
        500,
        "INTERNAL",
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
      );
    case "unavailable":
      return googleError(503, "UNAVAILABLE", "The model is overloaded. Please try again later.");
    default:
      return null;
  }
}

/** The most output tokens any current model allows. */
const MAX_OUTPUT_TOKENS_LIMIT = 65_536;

/** Why Gemini would answer 400 to this generationConfig, or null. */
function generationConfigProblem(
  model: string,
  config: Record<string, unknown> | null,
): string | null {
  if (!config) return null;
  const max = config.maxOutputTokens;
  if (max !== undefined && !(Number.isInteger(max) && (max as number) > 0)) {
    return "* GenerateContentRequest.generation_config.max_output_tokens: must be a positive integer\n";
  }
  if (typeof max === "number" && max > MAX_OUTPUT_TOKENS_LIMIT) {
    return `Unable to submit request because it has a maxOutputTokens value of ${max} but the supported range is from 1 (inclusive) to ${MAX_OUTPUT_TOKENS_LIMIT + 1} (exclusive).`;
  }
  const temperature = config.temperature;
  if (
    temperature !== undefined &&
    !(typeof temperature === "number" && temperature >= 0 && temperature <= 2)
  ) {
    return "* GenerateContentRequest.generation_config.temperature: must be in the range [0.0, 2.0]\n";
  }
  const thinking = config.thinkingConfig as Record<string, unknown> | undefined;
  if (!thinking) return null;
  const hasBudget = thinking.thinkingBudget !== undefined;
  const hasLevel = thinking.thinkingLevel !== undefined;
  if (hasBudget && hasLevel) {
    return "Unable to submit request because thinking_budget and thinking_level are not supported together.";
  }
  const family = thinkingFamily(model);
  if (family === "none") return "Thinking is not supported by this model.";
  if (hasLevel && family === "budget") {
    return "Unable to submit request because thinking_level is not supported by this model.";
  }
  if (hasLevel) {
    const level = thinking.thinkingLevel;
    const allowed: readonly string[] = thinkingLevelsOf(model);
    if (typeof level !== "string" || !allowed.includes(level)) {
      return `Unable to submit request because thinking_level ${String(level)} is not supported by this model. Supported: ${allowed.join(", ")}.`;
    }
  }
  if (hasBudget && !Number.isInteger(thinking.thinkingBudget)) {
    return "* GenerateContentRequest.generation_config.thinking_config.thinking_budget: must be an integer\n";
  }
  return null;
}

/** Deterministic thinking: a stand-in thinks only as much as the request's thinkingConfig says. */
const THOUGHTS_PER_LEVEL: Record<string, number> = { MINIMAL: 0, LOW: 4, MEDIUM: 16, HIGH: 64 };
function thoughtsFor(model: string, config: Record<string, unknown> | null): number {
  const thinking = config?.thinkingConfig as Record<string, unknown> | undefined;
  if (!thinking || thinkingFamily(model) === "none") return 0;
  if (typeof thinking.thinkingLevel === "string") {
    return THOUGHTS_PER_LEVEL[thinking.thinkingLevel] ?? 0;
  }
  const budget = thinking.thinkingBudget;
  if (typeof budget !== "number") return 0;
  return budget < 0 ? 16 : Math.min(budget, 16);
}

function errorResponse(err: GeminiError): Response {
  return new Response(JSON.stringify(err.body, null, 2), {
    status: err.status,
    headers: { "Content-Type": "application/json; charset=UTF-8", ...err.headers },
  });
}

function newId(bytes: number): string {
  return randomBytes(bytes).toString("base64url");
}

/**
 * Local Gemini (generativelanguage v1 and v1beta): generateContent and streamGenerateContent as
 * @google/genai calls them, with deterministic echo replies and prompt-scoped faults.
 */
export async function createGeminiService(
  config: LocalCloudConfig,
  options: { maxCallsKept?: number } = {},
): Promise<LocalService> {
  const maxCallsKept = options.maxCallsKept ?? MAX_CALLS_KEPT;
  const state: GeminiState = { faults: [], calls: [], lastSeq: 0, evictedThrough: 0 };
  const usage = new GeminiUsage();
  const sleepers = new Set<() => void>();
  let closed = false;

  function sleep(ms: number): Promise<void> {
    if (closed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        sleepers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      sleepers.add(done);
    });
  }

  function record(call: Omit<GeminiCall, "at" | "seq">): void {
    usage.call(call.method, call.status);
    state.calls.push({ ...call, seq: ++state.lastSeq, at: new Date().toISOString() });
    if (state.calls.length > maxCallsKept) {
      const dropped = state.calls.splice(0, state.calls.length - maxCallsKept);
      state.evictedThrough = dropped.at(-1)?.seq ?? state.evictedThrough;
    }
  }

  /** Takes one use of the first fault matching the prompt. */
  function takeFault(prompt: string): GeminiFault | null {
    const fault = state.faults.find((f) => prompt.includes(f.match));
    if (!fault) return null;
    if (fault.times !== null) {
      fault.times -= 1;
      if (fault.times <= 0) state.faults = state.faults.filter((f) => f !== fault);
    }
    return { ...fault };
  }

  async function handle(c: Context): Promise<Response> {
    const m = /\/(v1|v1beta)\/models\/([^/:]+):(generateContent|streamGenerateContent)$/.exec(
      c.req.path,
    );
    if (!m) {
      return errorResponse(googleError(404, "NOT_FOUND", `Method not found: ${c.req.path}`));
    }
    const apiVersion = m[1] ?? "";
    const model = decodeURIComponent(m[2] ?? "");
    const method = m[3] as Method;
    const sse = c.req.query("alt") === "sse";

    const rawBody = await c.req.text();
    let request: GenerateContentRequest | null = null;
    try {
      const parsed: unknown = JSON.parse(rawBody);
      if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
        request = parsed as GenerateContentRequest;
      }
    } catch {
      request = null;
    }
    const prompt = request ? promptTextOf(request) : "";
    const generationConfig =
      request && typeof request.generationConfig === "object" && request.generationConfig !== null
        ? (request.generationConfig as Record<string, unknown>)
        : null;
    const systemInstruction = request?.systemInstruction
      ? (request.systemInstruction.parts ?? []).map((p) => p.text ?? "").join("")
      : null;
    const tools = request && Array.isArray(request.tools) ? (request.tools as unknown[]) : null;
    const answer = (status: number, fault: GeminiFaultKind | null = null) =>
      record({ model, method, prompt, generationConfig, systemInstruction, tools, status, fault });

    const key = c.req.header("x-goog-api-key") ?? c.req.query("key");
    if (!key) {
      answer(MISSING_KEY.status);
      return errorResponse(MISSING_KEY);
    }
    if (key !== config.geminiApiKey) {
      answer(INVALID_KEY.status);
      return errorResponse(INVALID_KEY);
    }
    if (!request) {
      answer(400);
      return errorResponse(
        googleError(400, "INVALID_ARGUMENT", "Invalid JSON payload received. Unexpected token."),
      );
    }
    if (!/^(gemini|gemma)-/.test(model)) {
      answer(404);
      return errorResponse(
        googleError(
          404,
          "NOT_FOUND",
          `models/${model} is not found for API version ${apiVersion}, or is not supported for ${method}. Call ListModels to see the list of available models and their supported methods.`,
        ),
      );
    }
    const shutDown = shutDownModelMessage(model);
    if (shutDown) {
      answer(404);
      return errorResponse(
        googleError(
          404,
          "NOT_FOUND",
          `models/${model} is not found for API version ${apiVersion}, or is not supported for ${method}. Call ListModels to see the list of available models and their supported methods.`,
        ),
      );
    }
    const invalidConfig = generationConfigProblem(model, generationConfig);
    if (invalidConfig) {
      answer(400);
      return errorResponse(googleError(400, "INVALID_ARGUMENT", invalidConfig));
    }
    if (!Array.isArray(request.contents) || request.contents.length === 0) {
      answer(400);
      return errorResponse(
        googleError(
          400,
          "INVALID_ARGUMENT",
          "* GenerateContentRequest.contents: contents is not specified\n",
        ),
      );
    }

    const fault = takeFault(prompt);
    // Stream-only faults play out inside a 200 stream; on generateContent they are a plain 500.
    const inStream = method === "streamGenerateContent";
    const failure =
      fault && !(inStream && STREAM_FAULTS.has(fault.kind)) ? faultError(fault) : null;
    if (fault && failure) {
      answer(failure.status, fault.kind);
      return errorResponse(failure);
    }
    if (fault?.kind === "slow") await sleep(fault.ms);
    answer(200, fault?.kind ?? null);

    const responseId = newId(16);
    const promptTokenCount = countTokens(prompt);
    usage.tokens(promptTokenCount, 0);
    const base = { modelVersion: model, responseId };

    if (fault?.kind === "malformed") {
      const broken = '{"candidates": [{"content": {"parts": [{"text": "Echo';
      if (method === "streamGenerateContent" && sse) {
        return new Response(`data: ${broken}\r\n\r\n`, {
          headers: { "Content-Type": "text/event-stream" },
        });
      }
      return new Response(broken, {
        headers: { "Content-Type": "application/json; charset=UTF-8" },
      });
    }

    let chunks: Record<string, unknown>[];
    if (fault?.kind === "safety") {
      chunks = [
        {
          candidates: [
            {
              finishReason: "SAFETY",
              index: 0,
              safetyRatings: [
                { category: "HARM_CATEGORY_HARASSMENT", probability: "NEGLIGIBLE" },
                { category: "HARM_CATEGORY_HATE_SPEECH", probability: "NEGLIGIBLE" },
                { category: "HARM_CATEGORY_SEXUALLY_EXPLICIT", probability: "NEGLIGIBLE" },
                { category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "HIGH", blocked: true },
              ],
            },
          ],
          usageMetadata: { promptTokenCount, totalTokenCount: promptTokenCount },
          ...base,
        },
      ];
    } else if (fault?.kind === "blocked_prompt") {
      chunks = [
        {
          promptFeedback: {
            blockReason: "SAFETY",
            safetyRatings: [
              { category: "HARM_CATEGORY_DANGEROUS_CONTENT", probability: "HIGH", blocked: true },
            ],
          },
          usageMetadata: { promptTokenCount, totalTokenCount: promptTokenCount },
          ...base,
        },
      ];
    } else if (fault?.kind === "empty") {
      chunks = [
        { usageMetadata: { promptTokenCount, totalTokenCount: promptTokenCount }, ...base },
      ];
    } else {
      const thoughtsTokenCount = thoughtsFor(model, generationConfig);
      let text = replyTextFor(lastUserTextOf(request));
      let finishReason = "STOP";
      const max = request.generationConfig?.maxOutputTokens;
      // Thinking counts against maxOutputTokens: what is left of the bound is for the text.
      if (typeof max === "number" && countTokens(text) + thoughtsTokenCount > max) {
        text = truncateToTokens(text, Math.max(0, max - thoughtsTokenCount));
        finishReason = "MAX_TOKENS";
      }
      const candidatesTokenCount = countTokens(text);
      const usageMetadata = {
        promptTokenCount,
        candidatesTokenCount,
        ...(thoughtsTokenCount > 0 ? { thoughtsTokenCount } : {}),
        totalTokenCount: promptTokenCount + candidatesTokenCount + thoughtsTokenCount,
        promptTokensDetails: [{ modality: "TEXT", tokenCount: promptTokenCount }],
      };
      let pieces = method === "generateContent" ? [text] : splitIntoChunks(text, STREAM_CHUNKS);
      const streamFault = inStream && fault && STREAM_FAULTS.has(fault.kind) ? fault.kind : null;
      // A stream fault delivers the first half of the text, then goes wrong.
      if (streamFault) pieces = pieces.slice(0, Math.max(1, Math.floor(pieces.length / 2)));
      const sentTokens = streamFault ? countTokens(pieces.join("")) : candidatesTokenCount;
      usage.tokens(0, sentTokens + thoughtsTokenCount);
      // Google Search grounding (tools: [{googleSearch: {}}]): one query, the prompt's first
      // words, and one made-up source, in the last candidate as Gemini sends it.
      const searched = (tools ?? []).some(
        (t) => typeof t === "object" && t !== null && "googleSearch" in t,
      );
      const query = lastUserTextOf(request).split(/\s+/).slice(0, 6).join(" ");
      const groundingMetadata = {
        webSearchQueries: [query],
        groundingChunks: [
          {
            web: {
              uri: `https://vertexaisearch.cloud.google.com/grounding-api-redirect/${newId(12)}`,
              title: "example.com",
            },
          },
        ],
        groundingSupports: [],
        searchEntryPoint: { renderedContent: "<div>local search chip</div>" },
      };
      chunks = pieces.map((piece, i) => {
        const last = i === pieces.length - 1 && !streamFault;
        return {
          candidates: [
            {
              content: { parts: [{ text: piece }], role: "model" },
              ...(last ? { finishReason } : {}),
              ...(last && searched ? { groundingMetadata } : {}),
              index: 0,
            },
          ],
          ...(last ? { usageMetadata } : {}),
          ...base,
        };
      });
      if (streamFault === "late_safety") {
        const sent = countTokens(pieces.join(""));
        chunks.push({
          candidates: [{ finishReason: "SAFETY", index: 0 }],
          usageMetadata: {
            promptTokenCount,
            candidatesTokenCount: sent,
            totalTokenCount: promptTokenCount + sent,
          },
          ...base,
        });
      } else if (streamFault === "stream_error") {
        chunks.push(faultError({ ...(fault as GeminiFault), kind: "server_error" })?.body ?? {});
      }
    }

    if (method === "generateContent") return c.json(chunks[0]);
    if (!sse) return c.json(chunks);
    const encoder = new TextEncoder();
    const pace =
      fault?.kind === "slow_stream"
        ? fault.ms
        : fault !== null && STREAM_FAULTS.has(fault.kind)
          ? STREAM_FAULT_PACE_MS
          : 0;
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        for (const chunk of chunks) {
          controller.enqueue(encoder.encode(`data: ${JSON.stringify(chunk)}\r\n\r\n`));
          // A faulty stream is paced so the client sees the text before things go wrong.
          if (pace > 0) await sleep(pace);
        }
        controller.close();
      },
    });
    return new Response(stream, {
      headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-cache" },
    });
  }

  const app = new Hono();
  // @google/genai 3.x calls v1 unless told httpOptions.apiVersion; v1beta is the REST docs' path.
  app.post("/v1/models/*", handle);
  app.post("/v1beta/models/*", handle);

  const control = createControlApp(state);

  return {
    name: "gemini",
    prefix: "/gemini",
    app,
    control,
    usage,
    close: async () => {
      closed = true;
      for (const wake of [...sleepers]) wake();
    },
  };
}
