/**
 * Which Gemini models we may call and how each family bounds a reply. No SDK import: the config
 * schema (src/env.ts) validates GEMINI_MODEL with it.
 */

/** Gemini 3.x thinking levels (not every model takes every level; see docs/adr/0007). */
export const THINKING_LEVELS = ["MINIMAL", "LOW", "MEDIUM", "HIGH"] as const;
export type ThinkingLevel = (typeof THINKING_LEVELS)[number];

/**
 * The bound on one reply's cost. Thinking tokens count against `maxOutputTokens`. Exactly one
 * thinking field is sent: Gemini answers 400 when a request carries both.
 */
export interface GenerationConfig {
  maxOutputTokens: number;
  thinkingConfig?: { thinkingBudget: number } | { thinkingLevel: ThinkingLevel };
}

/** The thinking bound a model family takes: a token budget (2.5), a level (3.x on), or none. */
export function thinkingFamily(model: string): "budget" | "level" | "none" {
  if (/^gemini-2\.5-/.test(model)) return "budget";
  if (/^gemini-(1\.|2\.0-)/.test(model) || model.startsWith("gemma-")) return "none";
  return "level";
}

/** What one tier may spend on a reply (GEMINI_MAX_OUTPUT_TOKENS_* and GEMINI_THINKING_*). */
export interface ReplyBudget {
  maxOutputTokens: number;
  thinkingBudget: number;
  thinkingLevel: ThinkingLevel;
}

export function generationConfigFor(model: string, budget: ReplyBudget): GenerationConfig {
  const family = thinkingFamily(model);
  if (family === "budget") {
    return {
      maxOutputTokens: budget.maxOutputTokens,
      thinkingConfig: { thinkingBudget: budget.thinkingBudget },
    };
  }
  if (family === "level") {
    return {
      maxOutputTokens: budget.maxOutputTokens,
      thinkingConfig: { thinkingLevel: budget.thinkingLevel },
    };
  }
  return { maxOutputTokens: budget.maxOutputTokens };
}

/**
 * Model ids Google has shut down, with the replacement Google names (sources in
 * docs/adr/0007-gemini-integration.md). Configuration refuses them: a shut-down id either fails
 * every request or is silently re-routed to another model at that model's price.
 */
export const SHUT_DOWN_MODELS: Readonly<Record<string, { shutDown: string; replacement: string }>> =
  {
    "gemini-2.5-flash": { shutDown: "2026-12-01", replacement: "gemini-3.5-flash-lite" },
    "gemini-2.5-pro": { shutDown: "2026-12-01", replacement: "gemini-3.8-flash" },
    "gemini-2.0-flash": { shutDown: "2026-06-01", replacement: "gemini-3.5-flash" },
    "gemini-2.0-flash-001": { shutDown: "2026-06-01", replacement: "gemini-3.5-flash" },
    "gemini-2.0-flash-lite": { shutDown: "2026-06-01", replacement: "gemini-3.5-flash-lite" },
    "gemini-2.0-flash-lite-001": { shutDown: "2026-06-01", replacement: "gemini-3.5-flash-lite" },
    "gemini-3-pro-preview": { shutDown: "2026-03-09", replacement: "gemini-3.1-pro-preview" },
    "gemini-2.5-pro-preview-03-25": { shutDown: "2025-12-02", replacement: "gemini-3.8-flash" },
    "gemini-2.5-pro-preview-05-06": { shutDown: "2025-12-02", replacement: "gemini-3.8-flash" },
    "gemini-2.5-pro-preview-06-05": { shutDown: "2025-12-02", replacement: "gemini-3.8-flash" },
  };

/** Why `model` cannot be configured, or null when it may be. Gemini 1.x is long gone too. */
export function shutDownModelMessage(model: string): string | null {
  const known = SHUT_DOWN_MODELS[model];
  if (known) {
    return `${model} was shut down by Google on ${known.shutDown}; use ${known.replacement}`;
  }
  if (/^gemini-1\./.test(model)) {
    return `${model} was shut down by Google (Gemini 1.x); use gemini-3.8-flash`;
  }
  return null;
}

/**
 * Thinking levels each model documents, where it is not all four (Google's model pages; see
 * docs/adr/0007). A level a model lacks is a 400 on every request, so configuration refuses it.
 */
export const MODEL_THINKING_LEVELS: Readonly<Record<string, readonly ThinkingLevel[]>> = {
  "gemini-3.8-flash": ["LOW", "MEDIUM", "HIGH"],
  "gemini-3.7-flash": ["LOW", "MEDIUM", "HIGH"],
  "gemini-3.1-pro-preview": ["LOW", "MEDIUM", "HIGH"],
};

export function thinkingLevelsOf(model: string): readonly ThinkingLevel[] {
  return MODEL_THINKING_LEVELS[model] ?? THINKING_LEVELS;
}
