import {
  buildGenerateContentBody,
  type ChatSettings,
  catalogueModel,
  type GeminiRequest,
  type GeminiTurn,
  generationConfigFor,
  SEARCH_TIERS,
} from "../../lib/gemini";
import type { ChatConfig } from "./deps";

/** Newest-first messages → Gemini turns within the character budget; the newest is always kept. */
export function historyTurns(
  newestFirst: { role: "user" | "model"; content: string }[],
  maxChars: number,
): GeminiTurn[] {
  const picked: GeminiTurn[] = [];
  let budget = maxChars;
  for (const m of newestFirst) {
    if (picked.length > 0 && m.content.length > budget) break;
    budget -= m.content.length;
    picked.push({ role: m.role, text: m.content });
  }
  picked.reverse();
  // A conversation sent to Gemini starts with the user.
  while (picked.length > 0 && picked[0]?.role !== "user") picked.shift();
  return picked;
}

/**
 * The Gemini request for a prompt: the chatroom's settings over the deployment's defaults,
 * bounded by the tier's reply budget (docs/adr/0007). Settings are checked again here, against
 * the tier the user has now: a model or feature of a plan since left falls back to the default.
 */
export function promptRequest(
  config: ChatConfig,
  tier: "basic" | "pro",
  newestFirst: { role: "user" | "model"; content: string }[],
  settings: ChatSettings | null = null,
): GeminiRequest {
  const chosen = settings?.model ? catalogueModel(settings.model) : undefined;
  const model = chosen?.tiers.includes(tier) ? chosen.id : config.geminiModel;
  const budget = config.replyBudgets[tier];
  const maxOutputTokens = Math.min(
    settings?.max_output_tokens ?? budget.maxOutputTokens,
    budget.maxOutputTokens,
    chosen?.tiers.includes(tier) ? chosen.output_token_limit : Number.POSITIVE_INFINITY,
  );
  const generationConfig = generationConfigFor(model, {
    ...budget,
    maxOutputTokens,
    // Thinking counts against maxOutputTokens: a small chosen bound leaves room for the answer.
    thinkingBudget: Math.min(budget.thinkingBudget, Math.floor(maxOutputTokens / 2)),
  });
  if (settings?.temperature !== undefined) generationConfig.temperature = settings.temperature;
  const body = buildGenerateContentBody(
    historyTurns(newestFirst, config.historyMaxChars),
    settings?.system_instruction ?? config.systemPrompt,
    generationConfig,
  );
  if (settings?.google_search === true && SEARCH_TIERS.includes(tier)) {
    body.tools = [{ googleSearch: {} }];
  }
  return { model, body };
}
