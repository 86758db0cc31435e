import { and, desc, eq, type SQL, sql } from "drizzle-orm";
import type { Database } from "../client";
import { type ChatroomRow, chatrooms } from "../schema/chatrooms";
import { sessionLivePlaceholders, sessionParams } from "./refresh-tokens";

export type { ChatroomRow };

/** Position in the activity-ordered list: (updated_at, id), both descending. */
export interface ChatroomCursor {
  activityAt: Date;
  id: string;
}

export function insertChatroom(db: Database, row: typeof chatrooms.$inferInsert) {
  return db.insert(chatrooms).values(row).returning();
}

/**
 * Inserts the chatroom only while the caller's session stands (`sessionLiveCondition`): the
 * check and the write are one statement, one round trip. No row back: the session is revoked
 * (or the user is gone) and nothing was written.
 */
export function insertChatroomIfSessionLive(
  db: Database,
  row: NewChatroom,
  session: { familyId: string; issuedAt: Date },
) {
  let prepared = insertsIfSessionLive.get(db);
  if (!prepared) {
    prepared = prepareInsertIfSessionLive(db);
    insertsIfSessionLive.set(db, prepared);
  }
  return prepared.execute({
    ...sessionParams({ userId: row.userId, ...session }),
    id: row.id,
    title: row.title,
    titleSource: row.titleSource,
    description: row.description,
    settings: row.settings === null ? null : JSON.stringify(row.settings),
    at: row.now.toISOString(),
  });
}

/** A chatroom as a create writes it (no messages yet, created and updated `now`). */
export interface NewChatroom {
  id: string;
  userId: string;
  title: string;
  titleSource: "auto" | "user";
  description: string | null;
  settings: Record<string, unknown> | null;
  now: Date;
}

/**
 * `insertChatroomIfSessionLive` for a create with an Idempotency-Key: built per call, so it can
 * join the key's db.batch, and written only while `condition` holds (the session check, and no
 * live record of the key).
 */
export function insertChatroomIf(db: Database, row: NewChatroom, condition: SQL) {
  return db
    .insert(chatrooms)
    .select(
      newChatroomSelect(
        {
          id: row.id,
          userId: row.userId,
          title: row.title,
          titleSource: row.titleSource,
          description: row.description,
          settings: row.settings === null ? null : JSON.stringify(row.settings),
          at: row.now.toISOString(),
        },
        condition,
      ),
    )
    .returning();
}

/** True once the chatroom exists: a later statement of a batch sees an earlier one's insert. */
export function chatroomExists(id: string): SQL {
  return sql`exists (select 1 from ${chatrooms} where ${chatrooms.id} = ${id})`;
}

/**
 * The SELECT of an INSERT ... SELECT of a new chatroom: every column in the table's order
 * (drizzle names them all), the row only while `condition` holds.
 */
function newChatroomSelect(
  v: Record<"id" | "userId" | "title" | "titleSource" | "description" | "settings" | "at", unknown>,
  condition: SQL,
): SQL {
  return sql`select ${v.id}, ${v.userId}, ${v.title}, ${v.titleSource}, ${v.description}::text, ${v.settings}::jsonb, 0, null::timestamptz, ${v.at}::timestamptz, ${v.at}::timestamptz where ${condition}`;
}

// Isolate-lifetime cache: POST /chatroom runs this on every call; prepared once per database
// instance, a call only fills in the parameters (no query building per request).
const insertsIfSessionLive = new WeakMap<Database, ReturnType<typeof prepareInsertIfSessionLive>>();

function prepareInsertIfSessionLive(db: Database) {
  const live = sessionLivePlaceholders();
  const p = (name: string) => sql.placeholder(name);
  return db
    .insert(chatrooms)
    .select(
      newChatroomSelect(
        {
          id: p("id"),
          userId: live.userId,
          title: p("title"),
          titleSource: p("titleSource"),
          description: p("description"),
          settings: p("settings"),
          at: p("at"),
        },
        live.condition,
      ),
    )
    .returning()
    .prepare("insert_chatroom_if_session_live");
}

/** The chatroom if `userId` owns it (a query, so it can join a db.batch). */
export function selectOwnedChatroom(db: Database, id: string, userId: string) {
  return db
    .select()
    .from(chatrooms)
    .where(and(eq(chatrooms.id, id), eq(chatrooms.userId, userId)))
    .limit(1);
}

/** `limit + 1` rows, newest activity first, strictly after `after`. */
export function listChatrooms(
  db: Database,
  userId: string,
  limit: number,
  after: ChatroomCursor | null,
) {
  return db
    .select()
    .from(chatrooms)
    .where(
      and(
        eq(chatrooms.userId, userId),
        after
          ? sql`(${chatrooms.updatedAt}, ${chatrooms.id}) < (${after.activityAt.toISOString()}::timestamptz, ${after.id})`
          : undefined,
      ),
    )
    .orderBy(desc(chatrooms.updatedAt), desc(chatrooms.id))
    .limit(limit + 1);
}

/** The fields PATCH /chatroom/:id may change (absent: unchanged). */
export interface ChatroomPatch {
  title?: string;
  /** null clears it. */
  description?: string | null;
  /** Merged into the stored settings; a null field removes that setting. */
  settings?: Record<string, unknown>;
}

export function updateChatroom(
  db: Database,
  input: { id: string; userId: string; patch: ChatroomPatch; now: Date },
) {
  const { title, description, settings } = input.patch;
  return db
    .update(chatrooms)
    .set({
      ...(title !== undefined ? { title, titleSource: "user" as const } : {}),
      ...(description !== undefined ? { description } : {}),
      ...(settings !== undefined
        ? {
            settings: sql`jsonb_strip_nulls(coalesce(${chatrooms.settings}, '{}'::jsonb) || ${JSON.stringify(settings)}::jsonb)`,
          }
        : {}),
      updatedAt: input.now,
    })
    .where(and(eq(chatrooms.id, input.id), eq(chatrooms.userId, input.userId)))
    .returning();
}

/** Deletes the chatroom; its messages go with it (ON DELETE CASCADE). */
export function deleteChatroom(db: Database, id: string, userId: string) {
  return db
    .delete(chatrooms)
    .where(and(eq(chatrooms.id, id), eq(chatrooms.userId, userId)))
    .returning({ id: chatrooms.id });
}

/** Counts a prompt and its reply; also the activity that orders the list. */
export function recordExchange(
  db: Database,
  input: {
    id: string;
    userId: string;
    added: number;
    now: Date;
    /** Past this instant (the database's clock) the statement fails: see `writeDeadlineGuard`. */
    commitBy?: Date;
  },
) {
  return db
    .update(chatrooms)
    .set({
      messageCount: sql`${chatrooms.messageCount} + ${input.added}`,
      lastMessageAt: input.now,
      updatedAt: input.now,
    })
    .where(
      and(
        eq(chatrooms.id, input.id),
        eq(chatrooms.userId, input.userId),
        input.commitBy ? writeDeadlineGuard(input.commitBy) : undefined,
      ),
    );
}

/** The text the write-deadline guard fails with (in its error message; SQLSTATE 22P02). */
export const WRITE_DEADLINE_PASSED = "write_deadline_passed";

/**
 * A condition that is true until `deadline` on the database's clock and then raises, so the
 * transaction it is part of rolls back (ADR 3): a batch held past its deadline can no longer
 * commit. `clock_timestamp()` is the time of evaluation, not of the transaction's start, and in
 * an UPDATE's WHERE it is evaluated again after a row-lock wait. Plain SQL has no `raise`: the
 * cast of a text that is not a number fails, and it is outside the CASE so that the planner,
 * which folds constant arms, cannot raise it early.
 */
export function writeDeadlineGuard(deadline: Date) {
  return sql`(case when clock_timestamp() > ${deadline.toISOString()}::timestamptz then 'write_deadline_passed'::text end)::int is null`;
}

/** Whether a database error is `writeDeadlineGuard` failing. */
export function isWriteDeadlinePassed(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e && depth < 5; depth++) {
    if (e instanceof Error && e.message.includes(WRITE_DEADLINE_PASSED)) return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * KEY SHARE-locks the chatroom of reply `replyId` until the transaction ends: the first statement
 * of a batch that then locks the reply row and updates the chatroom. A chatroom DELETE locks the
 * chatroom row first and its messages after (the ON DELETE CASCADE), so a batch taking the reply
 * first and the chatroom last could deadlock with it (40P01, seen on PostgreSQL). With this lock
 * first, both take the chatroom first: whichever comes second waits, and nothing is held while
 * it does. KEY SHARE, the weakest mode a DELETE conflicts with, is what an INSERT's foreign-key
 * check takes too: it does not queue behind a prompt's or a regenerate's batch (which take it
 * the same way) nor make them queue behind it.
 */
export function lockChatroomOfReply(db: Database, replyId: string) {
  return db
    .select({ id: chatrooms.id })
    .from(chatrooms)
    .where(sql`${chatrooms.id} = (select m.chatroom_id from messages m where m.id = ${replyId})`)
    .for("key share");
}

/** A reply that completed at `now` is the chatroom's latest activity. */
export function touchChatroomForReply(db: Database, replyId: string, completedAt: Date) {
  return (
    db
      .update(chatrooms)
      .set({ lastMessageAt: completedAt, updatedAt: completedAt })
      .where(
        sql`${chatrooms.id} = (select m.chatroom_id from messages m where m.id = ${replyId} and m.status = 'complete' and m.completed_at = ${completedAt.toISOString()}::timestamptz)`,
      )
      // What the auto title needs to know (services/chat/titles.ts), at no extra round.
      .returning({
        titleSource: chatrooms.titleSource,
        title: chatrooms.title,
        messageCount: chatrooms.messageCount,
      })
  );
}

/**
 * Sets a title Gemini suggested, unless the user has set one since (`title_source` "user"):
 * a rename during the title job wins. Not activity: `updated_at` (the list order) is unchanged.
 */
export function setAutoTitle(db: Database, id: string, title: string) {
  return db
    .update(chatrooms)
    .set({ title })
    .where(and(eq(chatrooms.id, id), eq(chatrooms.titleSource, "auto")))
    .returning({ userId: chatrooms.userId });
}
