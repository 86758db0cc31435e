import { setAutoTitle } from "../../db/queries/chatrooms";
import { type MessageRow, selectMessage } from "../../db/queries/messages";
import {
  buildGenerateContentBody,
  GEMINI_API_KEY_HEADER,
  generateContentUrl,
  generationConfigFor,
  readGenerateContentResponse,
} from "../../lib/gemini";
import { decodeCallbackBody, type QueueCallback, type QueuedRequest } from "../../lib/queue";
import { DEFAULT_CHATROOM_TITLE, invalidateList } from "./chatrooms";
import type { ChatConfig, ChatDeps } from "./deps";

export const TITLE_CALLBACK_PATH = "/webhook/qstash/title";

/** Longest title kept (the API accepts 100; a suggestion longer than this is cut at a word). */
export const AUTO_TITLE_MAX_CHARS = 80;

/**
 * A chatroom is titled from its first exchange; a completion among its first this many messages
 * (a failed first reply, a regenerate) may still ask, while the title is the default.
 */
const TITLE_WITHIN_MESSAGES = 4;

/** Of the exchange, only this much of each side goes to Gemini: a title needs the gist. */
const TITLE_INPUT_CHARS = 2_000;

const TITLE_INSTRUCTION =
  "You name conversations. Answer with a title of at most six words for the conversation shown, in its language, and nothing else.";

/** The chatroom after a reply completed in it (what `touchChatroomForReply` returns). */
export interface TouchedChatroom {
  titleSource: "auto" | "user";
  title: string;
  messageCount: number;
}

/** Whether a completed reply should ask Gemini for the chatroom's title. */
export function wantsAutoTitle(room: TouchedChatroom | undefined): boolean {
  return (
    room !== undefined &&
    room.titleSource === "auto" &&
    room.title === DEFAULT_CHATROOM_TITLE &&
    room.messageCount <= TITLE_WITHIN_MESSAGES
  );
}

/**
 * The QStash job asking Gemini (the deployment's model, a small output bound, least thinking)
 * for a title. No quota is taken: the user asked for a reply, not a title. One retry; a title
 * that never comes leaves "New chat", so the failure callback is the same endpoint, which
 * ignores anything but a usable answer.
 */
export function titleJob(
  config: ChatConfig,
  chatroomId: string,
  exchange: { prompt: string; answer: string },
): QueuedRequest {
  const base = config.appUrl.replace(/\/+$/, "");
  const callback = `${base}${TITLE_CALLBACK_PATH}?chatroom_id=${encodeURIComponent(chatroomId)}`;
  const conversation = `User: ${exchange.prompt.slice(0, TITLE_INPUT_CHARS)}\n\nAssistant: ${exchange.answer.slice(0, TITLE_INPUT_CHARS)}`;
  const body = buildGenerateContentBody(
    [{ role: "user", text: conversation }],
    TITLE_INSTRUCTION,
    generationConfigFor(config.geminiModel, {
      maxOutputTokens: 256,
      thinkingBudget: 0,
      thinkingLevel: "LOW",
    }),
  );
  return {
    url: generateContentUrl(config.geminiBaseUrl, config.geminiModel),
    body,
    forwardHeaders: { [GEMINI_API_KEY_HEADER]: config.geminiApiKey },
    redactHeaders: [GEMINI_API_KEY_HEADER],
    // One title job per chatroom within QStash's deduplication window.
    deduplicationId: `title-${chatroomId}`,
    retries: 1,
    timeoutSeconds: 60,
    callback,
    failureCallback: callback,
  };
}

/**
 * Publishes the title job for the chatroom of a reply that just completed (under waitUntil:
 * one read of the prompt, then the publish). Best effort: a lost job leaves "New chat".
 */
export async function queueTitle(
  deps: Pick<ChatDeps, "db" | "queue" | "config">,
  reply: MessageRow,
): Promise<void> {
  if (!reply.replyToId) return;
  const [prompt] = await selectMessage(deps.db, reply.chatroomId, reply.userId, reply.replyToId);
  if (!prompt) return;
  await deps.queue.publish(
    titleJob(deps.config, reply.chatroomId, { prompt: prompt.content, answer: reply.content }),
  );
}

/** Gemini's suggestion made into a title: its first line, unquoted, one space, bounded. */
export function cleanTitle(text: string): string | null {
  const line = text
    .split("\n")
    .map((l) => l.trim())
    .find((l) => l.length > 0);
  if (!line) return null;
  let title = line
    .replace(/[*`]+/g, "")
    .replace(/^#+\s*/, "")
    .replace(/^title:\s*/i, "")
    .replace(/^["'“”‘’_]+|["'“”‘’_]+$/g, "")
    .replace(/\s+/g, " ")
    .replace(/[.!,;:]+$/, "")
    .trim();
  if (title.length > AUTO_TITLE_MAX_CHARS) {
    const cut = title.slice(0, AUTO_TITLE_MAX_CHARS + 1);
    const space = cut.lastIndexOf(" ");
    title = (space > 20 ? cut.slice(0, space) : cut.slice(0, AUTO_TITLE_MAX_CHARS)).trim();
  }
  // Lone surrogates and NUL are refused as titles by the API (and by Postgres).
  title = title.replace(
    /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
    "",
  );
  return title.length > 0 ? title : null;
}

export type TitleResult = "titled" | "unchanged" | "ignored";

/**
 * A title job's callback (signature already verified): a usable answer becomes the title unless
 * the user has set one meanwhile (the UPDATE is conditional on `title_source` "auto"). Anything
 * else (Gemini failed, a blocked or empty answer) is ignored: the title stays as it is.
 */
export async function applyTitle(
  deps: Pick<ChatDeps, "db" | "listCache" | "waitUntil" | "log">,
  input: { chatroomId: string; callback: QueueCallback },
): Promise<TitleResult> {
  const { callback } = input;
  if (callback.status < 200 || callback.status >= 300) return "ignored";
  const json = decodeCallbackBody(callback.body);
  const answer = json === undefined ? null : readGenerateContentResponse(json);
  const title = answer?.kind === "text" ? cleanTitle(answer.text) : null;
  if (!title) return "ignored";
  const [row] = await setAutoTitle(deps.db, input.chatroomId, title);
  if (!row) return "unchanged";
  await invalidateList(deps, row.userId);
  return "titled";
}
