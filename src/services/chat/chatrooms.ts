import { and, eq, type SQL } from "drizzle-orm";
import { sqlStateOf } from "../../db/client";
import {
  type ChatroomCursor,
  type ChatroomRow,
  chatroomExists,
  deleteChatroom as deleteChatroomRow,
  insertChatroom,
  insertChatroomIf,
  insertChatroomIfSessionLive,
  listChatrooms as listChatroomRows,
  selectOwnedChatroom,
  updateChatroom as updateChatroomRow,
} from "../../db/queries/chatrooms";
import {
  deleteExpiredIdempotencyRecord,
  type IdempotencyRow,
  insertIdempotencyRecord,
  insertIdempotencyRecordIf,
  noLiveIdempotencyRecord,
  selectIdempotencyRecord,
} from "../../db/queries/idempotency";
import {
  selectLatestMessages,
  selectMessage,
  selectMessagesBefore,
} from "../../db/queries/messages";
import { sessionLiveCondition } from "../../db/queries/refresh-tokens";
import { type Tier, users } from "../../db/schema/users";
import {
  NotFoundError,
  UnauthorizedError,
  UnprocessableError,
  ValidationError,
} from "../../errors";
import { type ChatSettings, settingsRefusal } from "../../lib/gemini-models";
import { ID_PATTERN, newId } from "../../lib/ids";
import { describeError } from "../../log";
import { background, type ChatDeps } from "./deps";
import { IDEMPOTENCY_TTL_MS, inProgressError, requestHashOf, storedAnswerOf } from "./idempotency";
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

type ChatDb = Pick<ChatDeps, "db" | "clock" | "listCache" | "waitUntil" | "config" | "log">;

/** The title of a chatroom created without one, until Gemini suggests a better one. */
export const DEFAULT_CHATROOM_TITLE = "New chat";

/**
 * Round 1 of a chatroom write: the caller's session check, and the tier when `settings` need
 * checking against it (one round: they run side by side). Throws before anything is written.
 */
async function firstRound(
  deps: ChatDb,
  input: { userId: string; settings?: ChatSettings; sessionLive?: Promise<void> },
): Promise<void> {
  const settings = input.settings;
  const needsTier = settings !== undefined && Object.keys(settings).length > 0;
  const [rows] = await Promise.all([
    needsTier ? selectTier(deps.db, input.userId) : Promise.resolve(null),
    input.sessionLive,
  ]);
  if (!rows || !settings) return;
  assertSettingsAllowed(deps, settings, rows[0]?.tier);
}

function selectTier(db: ChatDeps["db"], userId: string) {
  return db.select({ tier: users.tier }).from(users).where(eq(users.id, userId)).limit(1);
}

/** Throws (401, 422 or 400) unless `settings` are within the plan of a user of `tier`. */
function assertSettingsAllowed(
  deps: Pick<ChatDeps, "config">,
  settings: ChatSettings,
  tier: Tier | undefined,
): void {
  if (!tier) throw new UnauthorizedError("The account no longer exists.");
  const refusal = settingsRefusal(settings, tier, deps.config.replyBudgets[tier].maxOutputTokens);
  if (!refusal) return;
  const details = [{ path: refusal.path, message: refusal.message, location: "json" }];
  if (refusal.code === "model_not_allowed") {
    throw new UnprocessableError(refusal.message, "model_not_allowed", details);
  }
  throw new ValidationError(refusal.message, details);
}

/** Round 2 of a chatroom write: the write beside the list-cache bump, then a bump after it. */
async function writeAndInvalidate<T>(deps: ChatDb, userId: string, write: Promise<T>): Promise<T> {
  const [written, invalidated] = await Promise.allSettled([
    write,
    deps.listCache.invalidate(userId),
  ]);
  if (written.status === "rejected") throw written.reason;
  // Bumped again after the commit: a list read racing the write may have cached the old list.
  background(
    deps,
    "cache_invalidate",
    invalidated.status === "fulfilled"
      ? deps.listCache.invalidate(userId)
      : invalidateList(deps, userId),
  );
  return written.value;
}

/** What POST /chatroom answers: the new chatroom, or an Idempotency-Key's replay of the first. */
export interface ChatroomCreated {
  /** "replay": the answer stored by an earlier request with the same Idempotency-Key. */
  kind: "created" | "replay";
  body: { chatroom: ChatroomView };
}

/** What POST /chatroom takes (the body's fields, the key, and the caller's session). */
export interface CreateChatroomInput {
  userId: string;
  title?: string;
  description?: string | null;
  settings?: ChatSettings;
  /** The same key and body within 24 h answers the first response again (ADR 5). */
  idempotencyKey?: string;
  /**
   * Runs (or joins) the caller's session check: only when the insert cannot carry it (with
   * `settings`), or to name why a carried check refused.
   */
  sessionLive?: () => Promise<void>;
  /** The token's session and issue time: with them the insert carries the check itself. */
  session?: { familyId: string; issuedAt: Date };
}

/**
 * POST /chatroom. Without `settings`: one round, [insert conditional on the session ‖ cache
 * bump] (the insert carries the session check, so nothing is written for a revoked session).
 * With `settings`, the tier must be read first: [session check ‖ tier] then [insert ‖ bump].
 * Without a title the chatroom is "New chat" with `title_source` "auto" (Gemini may retitle it).
 * With an Idempotency-Key, see `createChatroomOnce`.
 */
export async function createChatroom(
  deps: ChatDb,
  input: CreateChatroomInput,
): Promise<ChatroomCreated> {
  const settings = input.settings && Object.keys(input.settings).length > 0 ? input.settings : null;
  const values = {
    id: newId(),
    userId: input.userId,
    title: input.title ?? DEFAULT_CHATROOM_TITLE,
    titleSource: input.title === undefined ? ("auto" as const) : ("user" as const),
    description: input.description ?? null,
  };
  if (input.idempotencyKey !== undefined) {
    return createChatroomOnce(deps, input, { ...values, settings }, input.idempotencyKey);
  }
  if (settings === null && input.session) {
    const [row] = await writeAndInvalidate(
      deps,
      input.userId,
      insertChatroomIfSessionLive(
        deps.db,
        { ...values, settings: null, now: deps.clock.now() },
        input.session,
      ),
    );
    if (row) return created(row);
    // Revoked session (the check answers 401 with its usual message) or a deleted account.
    await input.sessionLive?.();
    throw new UnauthorizedError("The account no longer exists.");
  }
  await firstRound(deps, { ...input, sessionLive: input.sessionLive?.() });
  const now = deps.clock.now();
  const [row] = await writeAndInvalidate(
    deps,
    input.userId,
    insertChatroom(deps.db, { ...values, settings, createdAt: now, updatedAt: now }),
  );
  if (!row) throw new Error("insert returned no row");
  return created(row);
}

function created(row: ChatroomRow): ChatroomCreated {
  return { kind: "created", body: { chatroom: chatroomView(row) } };
}

/** A create with an Idempotency-Key: the chatroom and the key's record, and what they need. */
interface KeyedCreate {
  key: string;
  requestHash: string;
  now: Date;
  room: Omit<ChatroomRow, "messageCount" | "lastMessageAt" | "createdAt" | "updatedAt">;
  /** The key's record: the 201 this create answers, stored in the batch that writes the room. */
  record: Parameters<typeof insertIdempotencyRecordIf>[1];
}

/**
 * POST /chatroom with an Idempotency-Key: the chatroom and the key's record are written by one
 * db.batch, so both or neither exist, and the record's primary key (user, key) lets exactly one
 * create of a key commit; a parallel twin waits on it in the database and replays the winner.
 * A live record of the key (same body) answers its stored 201 again, writing nothing; another
 * body is 409 idempotency_key_reused. A replay bumps the list cache as a create does: the first
 * request's write may have committed after its answer was lost, when nothing bumped it.
 * - Without `settings`: one round, [batch ‖ cache bump], the batch carrying the session check
 *   as the keyless insert does (the record read, the room and the record are each conditional
 *   on it); a revoked session writes neither.
 * - With `settings`: [session check ‖ tier + record], then the write beside the bump, as
 *   without a key; a replay ends after the first round with a bump (2 rounds).
 */
async function createChatroomOnce(
  deps: ChatDb,
  input: CreateChatroomInput,
  room: KeyedCreate["room"],
  key: string,
): Promise<ChatroomCreated> {
  const now = deps.clock.now();
  const requestHash = await requestHashOf("POST /chatroom", {
    title: input.title,
    description: input.description,
    settings: input.settings,
  });
  const view = chatroomView({
    ...room,
    messageCount: 0,
    lastMessageAt: null,
    createdAt: now,
    updatedAt: now,
  });
  const create: KeyedCreate = {
    key,
    requestHash,
    now,
    room,
    record: {
      userId: input.userId,
      key,
      requestHash,
      statusCode: 201,
      responseBody: { chatroom: view },
      createdAt: now,
      expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS),
    },
  };
  try {
    return room.settings === null && input.session
      ? await createCarryingSession(deps, input, input.session, create)
      : await createAfterSessionCheck(deps, input, create);
  } catch (err) {
    // 23505 on the record: a create with this key committed first (this batch waited for it
    // and rolled back as a whole). Its answer is this one's.
    if (sqlStateOf(err) !== "23505") throw err;
    const [first] = await selectIdempotencyRecord(deps.db, input.userId, key, now);
    if (first) return replayed(first, requestHash);
    // Gone again since (expired, purged): nothing to replay, nothing written, and nothing holds
    // the key any more, so a resend a second later goes ahead.
    const nowMs = deps.clock.now().getTime();
    throw inProgressError(nowMs, nowMs);
  }
}

async function createCarryingSession(
  deps: ChatDb,
  input: CreateChatroomInput,
  session: NonNullable<CreateChatroomInput["session"]>,
  { key, now, room, record, requestHash }: KeyedCreate,
): Promise<ChatroomCreated> {
  const { db } = deps;
  const live = sessionLiveCondition({ userId: input.userId, ...session });
  // Beside the list-cache bump, like a keyless create: a replay bumps it too, which is what it
  // needs when the first request's write committed after its answer was lost (a 503 past the
  // database deadline), so that no bump followed it.
  const [found, , rooms] = await writeAndInvalidate(
    deps,
    input.userId,
    db.batch([
      // A replay is answered only to a live session: the read carries the check too.
      selectIdempotencyRecord(db, input.userId, key, now, live),
      deleteExpiredIdempotencyRecord(db, input.userId, key, now),
      insertChatroomIf(
        db,
        { ...room, settings: null, now },
        and(live, noLiveIdempotencyRecord(db, input.userId, key, now)) as SQL,
      ),
      // Only with the room: never for a revoked session or a replay.
      insertIdempotencyRecordIf(db, record, chatroomExists(room.id)),
    ]),
  );
  const [row] = rooms;
  if (row) return created(row);
  if (found[0]) return replayed(found[0], requestHash);
  // Nothing written: a revoked session (the check answers 401), a deleted account, or a create
  // with this key that committed between the batch's read and its insert (replayed).
  const [[first]] = await Promise.all([
    selectIdempotencyRecord(db, input.userId, key, now),
    input.sessionLive?.(),
  ]);
  if (first) return replayed(first, requestHash);
  throw new UnauthorizedError("The account no longer exists.");
}

async function createAfterSessionCheck(
  deps: ChatDb,
  input: CreateChatroomInput,
  { key, now, room, record, requestHash }: KeyedCreate,
): Promise<ChatroomCreated> {
  const { db } = deps;
  const [[tiers, found]] = await Promise.all([
    db.batch([selectTier(db, input.userId), selectIdempotencyRecord(db, input.userId, key, now)]),
    input.sessionLive?.(),
  ]);
  if (found[0]) {
    // The first request's write may have committed after its answer was lost, with no bump
    // after it (see createCarryingSession): the list read after this answer must show the room.
    await invalidateList(deps, input.userId);
    return replayed(found[0], requestHash);
  }
  if (room.settings) assertSettingsAllowed(deps, room.settings, tiers[0]?.tier);
  const [, rooms] = await writeAndInvalidate(
    deps,
    input.userId,
    db.batch([
      deleteExpiredIdempotencyRecord(db, input.userId, key, now),
      insertChatroom(db, { ...room, createdAt: now, updatedAt: now }),
      // A live record of the key (a parallel twin's) fails the batch: the room is not written.
      insertIdempotencyRecord(db, record),
    ]),
  );
  const [row] = rooms;
  if (!row) throw new Error("insert returned no row");
  return created(row);
}

function replayed(row: IdempotencyRow, requestHash: string): ChatroomCreated {
  const { body } = storedAnswerOf<ChatroomCreated["body"]>(row, requestHash);
  return { kind: "replay", body };
}

/** PATCH /chatroom/:id: [session check ‖ tier] then [update ‖ cache bump]. */
export async function updateChatroom(
  deps: ChatDb,
  input: {
    userId: string;
    chatroomId: string;
    title?: string;
    description?: string | null;
    /** Merged into the stored settings; a null field goes back to the deployment's default. */
    settings?: { [K in keyof ChatSettings]?: ChatSettings[K] | null };
    sessionLive?: Promise<void>;
  },
): Promise<ChatroomView> {
  assertId(input.chatroomId);
  const given = input.settings
    ? (Object.fromEntries(
        Object.entries(input.settings).filter(([, v]) => v !== null && v !== undefined),
      ) as ChatSettings)
    : undefined;
  await firstRound(deps, { ...input, settings: given });
  const [row] = await writeAndInvalidate(
    deps,
    input.userId,
    updateChatroomRow(deps.db, {
      id: input.chatroomId,
      userId: input.userId,
      patch: {
        title: input.title,
        description: input.description,
        settings: input.settings,
      },
      now: deps.clock.now(),
    }),
  );
  if (!row) throw new NotFoundError("No such chatroom.");
  return chatroomView(row);
}

/** DELETE /chatroom/:id: [session check] then [delete ‖ cache bump]. */
export async function deleteChatroom(
  deps: ChatDb,
  input: { userId: string; chatroomId: string; sessionLive?: Promise<void> },
): Promise<void> {
  assertId(input.chatroomId);
  await input.sessionLive;
  const rows = await writeAndInvalidate(
    deps,
    input.userId,
    deleteChatroomRow(deps.db, input.chatroomId, input.userId),
  );
  if (rows.length === 0) throw new NotFoundError("No such chatroom.");
}

/** Background retries of a failed invalidation (ms), well inside waitUntil's 30 s. */
const INVALIDATE_RETRY_DELAYS_MS = [1_000, 3_000, 9_000];

/**
 * Bumps the user's list-cache version. A Redis failure is logged, not thrown: the write already
 * committed. The bump is retried in the background, so a list changed during a Redis blip is
 * fresh once Redis is back; after a longer outage entries expire after CHATROOM_CACHE_TTL_SECONDS.
 */
export async function invalidateList(
  deps: Pick<ChatDeps, "listCache" | "waitUntil" | "log">,
  userId: string,
) {
  try {
    await deps.listCache.invalidate(userId);
  } catch (err) {
    deps.log.warn("cache_invalidate_failed", { user_id: userId, error: describeError(err) });
    deps.waitUntil(retryInvalidate(deps, userId));
  }
}

async function retryInvalidate(deps: Pick<ChatDeps, "listCache" | "log">, userId: string) {
  for (const delay of INVALIDATE_RETRY_DELAYS_MS) {
    await new Promise((r) => setTimeout(r, delay));
    try {
      await deps.listCache.invalidate(userId);
      return;
    } catch {
      // Still down; the next attempt, or the entries' TTL, takes over.
    }
  }
  deps.log.warn("cache_invalidate_gave_up", { user_id: userId });
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

/**
 * The format of a cached page, part of its cache key: bump it whenever `ChatroomPage` or
 * `ChatroomView` changes shape, so a deploy never serves pages an older deploy stored.
 */
const PAGE_FORMAT = "p2";

/** How every page `JSON.stringify` writes begins (`chatrooms` is the first key). */
const PAGE_OPENING = '{"chatrooms":[';

/**
 * A stored page, checked without parsing it: this Worker wrote it with `JSON.stringify` under a
 * key naming its format, so what can go wrong is a damaged value, not another shape.
 */
function isStoredPage(text: string): boolean {
  return text.startsWith(PAGE_OPENING) && text.endsWith("}");
}

/**
 * GET /chatroom, cached per user and page. A page is stored under the user's cache version read
 * before the database query, so a page computed from data older than a concurrent write is
 * never served. Redis failing or slow: served from the database (`MISS`).
 *
 * Resolves the page as JSON text: a hit is answered with the text as stored (no parse, no check
 * of every field, no second serialisation: the CPU of the most frequent read), and a miss is
 * serialised once for both the answer and the cache.
 */
export async function listChatroomsCached(
  deps: ChatDb & Pick<ChatDeps, "waitUntil">,
  input: { userId: string; limit: number; cursor: string | undefined },
): Promise<{ json: string; cache: "HIT" | "MISS" }> {
  const after = input.cursor ? decodeChatroomCursor(input.cursor) : null;
  const pageKey = `${PAGE_FORMAT}:${input.limit}:${input.cursor ?? ""}`;
  const cached = await deps.listCache.read(input.userId, pageKey);
  // A damaged entry is a miss; the fresh page below overwrites it.
  if (cached?.value && isStoredPage(cached.value)) return { json: cached.value, cache: "HIT" };
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
  const json = JSON.stringify(page);
  if (cached) {
    background(
      deps,
      "cache_write",
      deps.listCache.write(input.userId, pageKey, cached.version, json),
    );
  }
  return { json, cache: "MISS" };
}

export async function getChatroom(
  deps: Pick<ChatDeps, "db">,
  input: { userId: string; chatroomId: string },
): Promise<{ chatroom: ChatroomView; messages: MessageView[]; has_more: boolean }> {
  assertId(input.chatroomId);
  const [rooms, latest] = await deps.db.batch([
    selectOwnedChatroom(deps.db, input.chatroomId, input.userId),
    selectLatestMessages(
      deps.db,
      input.chatroomId,
      input.userId,
      CHATROOM_MESSAGES_WINDOW + 1,
      true,
    ),
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
