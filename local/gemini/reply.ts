/**
 * Deterministic replies of the local Gemini: the text depends only on the prompt, so tests can
 * assert it exactly. Token counts are word counts, close enough to real tokens for quota tests.
 */

export interface GeminiPart {
  text?: string;
  [key: string]: unknown;
}

export interface GeminiContent {
  role?: string;
  parts?: GeminiPart[];
}

export interface GenerateContentRequest {
  contents?: GeminiContent[];
  systemInstruction?: GeminiContent;
  generationConfig?: { maxOutputTokens?: number; [key: string]: unknown };
  safetySettings?: unknown[];
  [key: string]: unknown;
}

/** What the local Gemini appends to every echo, so a reply is recognisable as generated. */
export const REPLY_SUFFIX = "This reply comes from the local Gemini stand-in.";

function textOf(content: GeminiContent | undefined): string {
  return (content?.parts ?? []).map((p) => (typeof p.text === "string" ? p.text : "")).join("");
}

/** Every text the request carries (system instruction first), which faults match against. */
export function promptTextOf(request: GenerateContentRequest): string {
  const texts = [textOf(request.systemInstruction), ...(request.contents ?? []).map(textOf)];
  return texts.filter((t) => t.length > 0).join("\n");
}

/** Text of the last user turn (a content without a role counts as the user's). */
export function lastUserTextOf(request: GenerateContentRequest): string {
  const contents = request.contents ?? [];
  for (let i = contents.length - 1; i >= 0; i--) {
    const content = contents[i];
    if (content && (content.role === undefined || content.role === "user")) return textOf(content);
  }
  return "";
}

/** The reply the local Gemini gives to a last user turn. */
export function replyTextFor(lastUserText: string): string {
  return `Echo: ${lastUserText}\n\n${REPLY_SUFFIX}`;
}

export function countTokens(text: string): number {
  return text.split(/\s+/).filter((w) => w.length > 0).length;
}

/** First `max` words of `text`, keeping its whitespace. */
export function truncateToTokens(text: string, max: number): string {
  const words = text.match(/\s*\S+/g) ?? [];
  return words.slice(0, Math.max(0, max)).join("");
}

/**
 * Splits text into at most `parts` pieces on word boundaries; joined, they give the text back
 * exactly (streaming clients concatenate chunks).
 */
export function splitIntoChunks(text: string, parts: number): string[] {
  const words = text.match(/\s*\S+\s*/g);
  if (!words || words.length === 0) return [text];
  const n = Math.max(1, Math.min(parts, words.length));
  const size = Math.ceil(words.length / n);
  const chunks: string[] = [];
  for (let i = 0; i < words.length; i += size) chunks.push(words.slice(i, i + size).join(""));
  return chunks;
}
