import {
  type ChatroomCursor,
  deleteChatroom as deleteChatroomRow,
  insertChatroom,
  listChatrooms as listChatroomRows,
  renameChatroom as renameChatroomRow,
  selectOwnedChatroom,
} from "../../db/queries/chatrooms";
import {
  selectLatestMessages,
  selectMessage,
  selectMessagesBefore,
} from "../../db/queries/messages";
import { describeError, NotFoundError, ValidationError } from "../../errors";
import { ID_PATTERN, newId } from "../../lib/ids";
import { background, type ChatDeps } from "./deps";
import { type ChatroomView, chatroomView, type MessageView, messageView } from "./views";

/** Messages GET /chatroom/:id returns (the latest, oldest first). */
export const CHATROOM_MESSAGES_WINDOW = 50;

/**
 * A malformed id is answered exactly like an unknown or foreign one (404), so ids reveal
 * nothing and clients need one rule (ADR 0005).
 */
export function assertId(id: string, what = "chatroom"): void {
  if (!ID_PATTERN.test(id)) throw new NotFoundError(`No such ${what}.`);
}

type ChatDb = Pick<ChatDeps, "db" | "clock" | "listCache" | "waitUntil">;

export async function createChatroom(
  deps: ChatDb,
  input: { userId: string; title: string },
): Promise<ChatroomView> {
  const now = deps.clock.now();
  const [row] = await insertChatroom(deps.db, {
    id: newId(),
    userId: input.userId,
    title: input.title,
    createdAt: now,
    updatedAt: now,
  });
  if (!row) throw new Error("insert returned no row");
  // Awaited, not backgrounded: the creator's next GET /chatroom must see the new room.
  await invalidateList(deps, input.userId);
  return chatroomView(row);
}

export async function renameChatroom(
  deps: ChatDb,
  input: { userId: string; chatroomId: string; title: string },
): Promise<ChatroomView> {
  assertId(input.chatroomId);
  const [row] = await renameChatroomRow(deps.db, {
    id: input.chatroomId,
    userId: input.userId,
    title: input.title,
    now: deps.clock.now(),
  });
  if (!row) throw new NotFoundError("No such chatroom.");
  await invalidateList(deps, input.userId);
  return chatroomView(row);
}

export async function deleteChatroom(
  deps: ChatDb,
  input: { userId: string; chatroomId: string },
): Promise<void> {
  assertId(input.chatroomId);
  const rows = await deleteChatroomRow(deps.db, input.chatroomId, input.userId);
  if (rows.length === 0) throw new NotFoundError("No such chatroom.");
  await invalidateList(deps, input.userId);
}

/** Background retries of a failed invalidation (ms), well inside waitUntil's 30 s. */
const INVALIDATE_RETRY_DELAYS_MS = [1_000, 3_000, 9_000];

/**
 * Bumps the user's list-cache version. A Redis failure is logged, not thrown: the write already
 * committed. The bump is retried in the background, so a list changed during a Redis blip is
 * fresh once Redis is back; after a longer outage entries expire after CHATROOM_CACHE_TTL_SECONDS.
 */
export async function invalidateList(
  deps: Pick<ChatDeps, "listCache" | "waitUntil">,
  userId: string,
) {
  try {
    await deps.listCache.invalidate(userId);
  } catch (err) {
    console.warn(
      JSON.stringify({
        level: "warn",
        msg: "cache_invalidate_failed",
        user_id: userId,
        error: describeError(err),
      }),
    );
    deps.waitUntil(retryInvalidate(deps, userId));
  }
}

async function retryInvalidate(deps: Pick<ChatDeps, "listCache">, userId: string) {
  for (const delay of INVALIDATE_RETRY_DELAYS_MS) {
    await new Promise((r) => setTimeout(r, delay));
    try {
      await deps.listCache.invalidate(userId);
      return;
    } catch {
      // Still down; the next attempt, or the entries' TTL, takes over.
    }
  }
  console.warn(JSON.stringify({ level: "warn", msg: "cache_invalidate_gave_up", user_id: userId }));
}

export interface ChatroomPage {
  chatrooms: ChatroomView[];
  next_cursor: string | null;
}

export function encodeChatroomCursor(c: ChatroomCursor): string {
  return base64UrlEncode(`${c.activityAt.toISOString()}|${c.id}`);
}

/** Throws ValidationError for anything `encodeChatroomCursor` could not have produced. */
export function decodeChatroomCursor(cursor: string): ChatroomCursor {
  const invalid = () =>
    new ValidationError("The cursor is invalid.", [
      { path: "cursor", message: "Pass next_cursor from a previous page.", location: "query" },
    ]);
  let text: string;
  try {
    text = base64UrlDecode(cursor);
  } catch {
    throw invalid();
  }
  const [iso, id, extra] = text.split("|");
  if (!iso || !id || extra !== undefined || !ID_PATTERN.test(id)) throw invalid();
  // Four-digit years from 0001 only: Postgres refuses year 0 and the signed six-digit years
  // that Date.toISOString round-trips (a query error, i.e. a 500, otherwise).
  if (!/^(?!0000)\d{4}-/.test(iso)) throw invalid();
  const activityAt = new Date(iso);
  if (Number.isNaN(activityAt.getTime()) || activityAt.toISOString() !== iso) throw invalid();
  return { activityAt, id };
}

function base64UrlEncode(s: string): string {
  const bytes = new TextEncoder().encode(s);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function base64UrlDecode(s: string): string {
  if (!/^[A-Za-z0-9_-]+$/.test(s)) throw new Error("not base64url");
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/"));
  return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(
    Uint8Array.from(bin, (ch) => ch.charCodeAt(0)),
  );
}

function isChatroomPage(v: unknown): v is ChatroomPage {
  if (typeof v !== "object" || v === null) return false;
  const p = v as Record<string, unknown>;
  return (
    Array.isArray(p.chatrooms) &&
    (p.next_cursor === null || typeof p.next_cursor === "string") &&
    p.chatrooms.every(
      (c) => typeof c === "object" && c !== null && typeof (c as { id?: unknown }).id === "string",
    )
  );
}

/**
 * GET /chatroom, cached per user and page. A page is stored under the user's cache version read
 * before the database query, so a page computed from data older than a concurrent write is
 * never served. Redis failing or slow: served from the database (`MISS`).
 */
export async function listChatroomsCached(
  deps: ChatDb & Pick<ChatDeps, "waitUntil">,
  input: { userId: string; limit: number; cursor: string | undefined },
): Promise<{ page: ChatroomPage; cache: "HIT" | "MISS" }> {
  const after = input.cursor ? decodeChatroomCursor(input.cursor) : null;
  const pageKey = `${input.limit}:${input.cursor ?? ""}`;
  const cached = await deps.listCache.read(input.userId, pageKey);
  if (cached?.value) {
    try {
      const page: unknown = JSON.parse(cached.value);
      if (isChatroomPage(page)) return { page, cache: "HIT" };
    } catch {
      // A corrupt entry is a miss; the fresh page below overwrites it.
    }
  }
  const rows = await listChatroomRows(deps.db, input.userId, input.limit, after);
  const items = rows.slice(0, input.limit);
  const last = items.at(-1);
  const page: ChatroomPage = {
    chatrooms: items.map(chatroomView),
    next_cursor:
      rows.length > input.limit && last
        ? encodeChatroomCursor({ activityAt: last.updatedAt, id: last.id })
        : null,
  };
  if (cached) {
    background(
      deps,
      "cache_write",
      deps.listCache.write(input.userId, pageKey, cached.version, JSON.stringify(page)),
    );
  }
  return { page, cache: "MISS" };
}

export async function getChatroom(
  deps: Pick<ChatDeps, "db">,
  input: { userId: string; chatroomId: string },
): Promise<{ chatroom: ChatroomView; messages: MessageView[]; has_more: boolean }> {
  assertId(input.chatroomId);
  const [rooms, latest] = await deps.db.batch([
    selectOwnedChatroom(deps.db, input.chatroomId, input.userId),
    selectLatestMessages(deps.db, input.chatroomId, input.userId, CHATROOM_MESSAGES_WINDOW + 1),
  ]);
  const room = rooms[0];
  if (!room) throw new NotFoundError("No such chatroom.");
  const page = latest.slice(0, CHATROOM_MESSAGES_WINDOW).reverse();
  return {
    chatroom: chatroomView(room),
    messages: page.map(messageView),
    has_more: latest.length > CHATROOM_MESSAGES_WINDOW,
  };
}

/** Older pages: messages before `before` (a message id), oldest first within the page. */
export async function listMessages(
  deps: Pick<ChatDeps, "db">,
  input: { userId: string; chatroomId: string; limit: number; before: string | undefined },
): Promise<{ messages: MessageView[]; next_cursor: string | null }> {
  assertId(input.chatroomId);
  if (input.before !== undefined && !ID_PATTERN.test(input.before)) {
    throw new ValidationError("The cursor is invalid.", [
      { path: "before", message: "Pass a message id (next_cursor).", location: "query" },
    ]);
  }
  const [rooms, rows] = await deps.db.batch([
    selectOwnedChatroom(deps.db, input.chatroomId, input.userId),
    input.before
      ? selectMessagesBefore(deps.db, input.chatroomId, input.userId, input.before, input.limit + 1)
      : selectLatestMessages(deps.db, input.chatroomId, input.userId, input.limit + 1),
  ]);
  if (!rooms[0]) throw new NotFoundError("No such chatroom.");
  const page = rows.slice(0, input.limit).reverse();
  const oldest = page[0];
  return {
    messages: page.map(messageView),
    next_cursor: rows.length > input.limit && oldest ? oldest.id : null,
  };
}

export async function getMessage(
  deps: Pick<ChatDeps, "db">,
  input: { userId: string; chatroomId: string; messageId: string },
): Promise<MessageView> {
  assertId(input.chatroomId);
  assertId(input.messageId, "message");
  const [row] = await selectMessage(deps.db, input.chatroomId, input.userId, input.messageId);
  if (!row) throw new NotFoundError("No such message.");
  return messageView(row);
}
