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
  /** A chatroom's `settings.temperature` (absent: the model's default). */
  temperature?: number;
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

/** Google Search grounding of one answer: the queries Gemini ran and the pages it used. */
export interface Grounding {
  queries: string[];
  sources: { uri: string; title: string | null }[];
}

/** Subscription tiers, as the catalogue names them (users.tier). */
export type Tier = "basic" | "pro";

/** One model users may pick for a chatroom (GET /models and `settings.model`). */
export interface CatalogueModel {
  id: string;
  display_name: string;
  /** Tiers that may choose it. */
  tiers: readonly Tier[];
  input_token_limit: number;
  /** The model's own bound; a tier's GEMINI_MAX_OUTPUT_TOKENS_* may be lower. */
  output_token_limit: number;
  supports: { thinking: boolean; search: boolean };
}

/**
 * The one catalogue of models a chatroom may use: GET /models serves it and per-chat settings
 * are checked against it. Limits are Google's model pages' "Input/Output token limit" (see
 * docs/adr/0007). GEMINI_MODEL (the deployment default) need not be listed: a chatroom without
 * `settings.model` uses it.
 */
export const MODEL_CATALOGUE: readonly CatalogueModel[] = [
  {
    id: "gemini-3.8-flash",
    display_name: "Gemini 3.8 Flash",
    tiers: ["basic", "pro"],
    input_token_limit: 1_048_576,
    output_token_limit: 65_536,
    supports: { thinking: true, search: true },
  },
  {
    id: "gemini-3.5-flash-lite",
    display_name: "Gemini 3.5 Flash-Lite",
    tiers: ["basic", "pro"],
    input_token_limit: 1_048_576,
    output_token_limit: 65_536,
    supports: { thinking: true, search: true },
  },
  {
    id: "gemini-3.5-flash",
    display_name: "Gemini 3.5 Flash",
    tiers: ["pro"],
    input_token_limit: 1_048_576,
    output_token_limit: 65_536,
    supports: { thinking: true, search: true },
  },
  {
    id: "gemini-3.1-pro-preview",
    display_name: "Gemini 3.1 Pro (preview)",
    tiers: ["pro"],
    input_token_limit: 1_048_576,
    output_token_limit: 65_536,
    supports: { thinking: true, search: true },
  },
];

export function catalogueModel(id: string): CatalogueModel | undefined {
  return MODEL_CATALOGUE.find((m) => m.id === id);
}

/** Tiers that may turn on Google Search grounding. */
export const SEARCH_TIERS: readonly Tier[] = ["pro"];

/** Longest `settings.system_instruction`, in UTF-8 bytes (8 KiB). */
export const SYSTEM_INSTRUCTION_MAX_BYTES = 8192;

/** A chatroom's own Gemini settings (every field optional: absent means the deployment's). */
export interface ChatSettings {
  model?: string;
  system_instruction?: string;
  temperature?: number;
  max_output_tokens?: number;
  google_search?: boolean;
}

/**
 * Why `settings` is not allowed for `tier` (a code and a message), or null. The output cap is the
 * tier's reply budget, bounded again by the chosen model's own limit.
 */
export function settingsRefusal(
  settings: ChatSettings,
  tier: Tier,
  tierOutputCap: number,
): { code: "model_not_allowed" | "invalid_request"; path: string; message: string } | null {
  let outputCap = tierOutputCap;
  if (settings.model !== undefined) {
    const model = catalogueModel(settings.model);
    if (!model?.tiers.includes(tier)) {
      return {
        code: "model_not_allowed",
        path: "settings.model",
        message: model
          ? `${settings.model} is not available on the ${tier} plan; see GET /models.`
          : `${settings.model} is not a model you can choose; see GET /models.`,
      };
    }
    outputCap = Math.min(outputCap, model.output_token_limit);
  }
  if (settings.max_output_tokens !== undefined && settings.max_output_tokens > outputCap) {
    return {
      code: "invalid_request",
      path: "settings.max_output_tokens",
      message: `max_output_tokens must be at most ${outputCap} on the ${tier} plan.`,
    };
  }
  if (settings.google_search === true && !SEARCH_TIERS.includes(tier)) {
    return {
      code: "invalid_request",
      path: "settings.google_search",
      message: "Google Search grounding is a Pro feature.",
    };
  }
  return null;
}
