import { and, eq, isNotNull, isNull, lte, or, sql } from "drizzle-orm";
import type { Database } from "../client";
import { refreshTokens } from "../schema/refresh-tokens";
import { type UserRow, users } from "../schema/users";
import {
  insertRefreshTokenWhileHash,
  type NewRefreshToken,
  sessionLivePlaceholders,
  sessionParams,
} from "./refresh-tokens";

export type { UserRow };

/** Inserts a user; null when the number is taken (the unique index decides, race-free). */
export async function insertUser(
  db: Database,
  values: {
    id: string;
    mobileNumber: string;
    name: string | null;
    email: string | null;
    passwordHash: string | null;
  },
): Promise<UserRow | null> {
  const rows = await db
    .insert(users)
    .values({ ...values, passwordChangedAt: null })
    .onConflictDoNothing({ target: users.mobileNumber })
    .returning();
  return rows[0] ?? null;
}

export async function findUserByMobileNumber(
  db: Database,
  mobileNumber: string,
): Promise<UserRow | null> {
  const rows = await db.select().from(users).where(eq(users.mobileNumber, mobileNumber)).limit(1);
  return rows[0] ?? null;
}

/**
 * Replaces a password hash with a stronger one of the same password (rehash on login). Only
 * while `from` is still stored, so a password changed in the meantime is never overwritten; no
 * session is revoked, since the password itself did not change.
 */
export async function upgradePasswordHash(
  db: Database,
  input: { userId: string; from: string; to: string; now: Date },
): Promise<void> {
  await db
    .update(users)
    .set({ passwordHash: input.to, updatedAt: input.now })
    .where(and(eq(users.id, input.userId), eq(users.passwordHash, input.from)));
}

export async function findUserById(db: Database, id: string): Promise<UserRow | null> {
  const rows = await db.select().from(users).where(eq(users.id, id)).limit(1);
  return rows[0] ?? null;
}

/**
 * The user, only while the caller's session stands (`sessionLiveCondition`: the check and the
 * read are one query); null otherwise or when the user is gone.
 */
export async function findUserIfSessionLive(
  db: Database,
  input: { userId: string; familyId: string; issuedAt: Date },
): Promise<UserRow | null> {
  let prepared = usersIfSessionLive.get(db);
  if (!prepared) {
    const live = sessionLivePlaceholders();
    prepared = db
      .select()
      .from(users)
      .where(and(eq(users.id, live.userId), live.condition))
      .limit(1)
      .prepare("find_user_if_session_live");
    usersIfSessionLive.set(db, prepared);
  }
  const rows = await prepared.execute(sessionParams(input));
  return rows[0] ?? null;
}

// Isolate-lifetime cache: GET /user/me runs this on every call; prepared once per database
// instance, a call only fills in the parameters (no query building per request).
const usersIfSessionLive = new WeakMap<Database, PreparedUserRead>();

interface PreparedUserRead {
  execute(params: ReturnType<typeof sessionParams>): Promise<UserRow[]>;
}

/**
 * Sets a new password hash and revokes every live refresh token of the user in one transaction
 * (`db.batch`), so no session survives a change or reset. `newSession` (the caller's fresh
 * session after a change) is inserted in the same transaction, after the revocation. With
 * `expectedHash` (a change, which verified the current password) nothing happens unless that
 * hash (null: none) is still stored, so of two concurrent changes only one applies. Null when
 * nothing was changed.
 */
export async function setPasswordAndRevokeSessions(
  db: Database,
  input: {
    userId: string;
    passwordHash: string;
    expectedHash?: string | null;
    now: Date;
    newSession?: NewRefreshToken;
    /** A code sent to the number authorised this (reset, first password): it is now proved. */
    numberProved?: boolean;
  },
): Promise<UserRow | null> {
  const { userId, passwordHash, expectedHash, now } = input;
  const updateUser = db
    .update(users)
    .set({
      passwordHash,
      passwordChangedAt: now,
      updatedAt: now,
      ...(input.numberProved
        ? {
            mobileVerifiedAt: sql`coalesce(${users.mobileVerifiedAt}, ${now.toISOString()}::timestamptz)`,
          }
        : {}),
    })
    .where(
      and(
        eq(users.id, userId),
        expectedHash === undefined
          ? undefined
          : expectedHash === null
            ? isNull(users.passwordHash)
            : eq(users.passwordHash, expectedHash),
      ),
    )
    .returning();
  // The statements after it run only if it applied (the new hash, freshly salted, is unique).
  const applied = sql`exists (select 1 from ${users} where ${users.id} = ${userId} and ${users.passwordHash} = ${passwordHash})`;
  const revoke = db
    .update(refreshTokens)
    .set({ revokedAt: now })
    .where(and(eq(refreshTokens.userId, userId), isNull(refreshTokens.revokedAt), applied));
  const [updated] = input.newSession
    ? await db.batch([
        updateUser,
        revoke,
        // Bound to the new hash, like a login's session: inserted only if the update applied.
        db.execute(insertRefreshTokenWhileHash(input.newSession, passwordHash, now)),
      ])
    : await db.batch([updateUser, revoke]);
  return updated[0] ?? null;
}

/**
 * Updates the profile only if the caller's access token was issued at or after the last password
 * change and its session is unrevoked (one round trip for the check and the write); null
 * otherwise or when the user is gone.
 */
export async function updateUserProfileIfTokenCurrent(
  db: Database,
  input: {
    userId: string;
    tokenIssuedAt: Date;
    /** The token's session (`sid`): the write applies only while its family is unrevoked. */
    sessionId: string;
    changes: { name?: string | null; email?: string | null };
    now: Date;
  },
): Promise<UserRow | null> {
  const rows = await db
    .update(users)
    .set({ ...input.changes, updatedAt: input.now })
    .where(
      and(
        eq(users.id, input.userId),
        // Every session of an unproved account is dead (ADR 8), even one from before the proof.
        isNotNull(users.mobileVerifiedAt),
        or(isNull(users.passwordChangedAt), lte(users.passwordChangedAt, input.tokenIssuedAt)),
        sql`exists (select 1 from ${refreshTokens} t where t.family_id = ${input.sessionId} and t.user_id = ${input.userId} and t.revoked_at is null)`,
      ),
    )
    .returning();
  return rows[0] ?? null;
}

/**
 * A login code was just used: the number is proved, and a session starts, in one transaction.
 * On the FIRST proof (`mobile_verified_at` still null) everything that was obtained without proof
 * is undone in the same statements: the password becomes `keepPasswordHash` (the signup's pending
 * password when the same client presented its signup token, otherwise none; a password signup
 * without its token also loses its name and email), and every earlier
 * session is revoked (so its access tokens are refused too, see middleware/auth.ts). Later proofs change nothing
 * but start the session. Null when the user is gone.
 */
export async function proveNumberAndStartSession(
  db: Database,
  input: {
    userId: string;
    keepPasswordHash: string | null;
    now: Date;
    session: NewRefreshToken;
  },
): Promise<UserRow | null> {
  const { userId, now } = input;
  const at = sql`${now.toISOString()}::timestamptz`;
  const first = sql`${users.mobileVerifiedAt} is null`;
  // A password signup whose token was not presented was made by another client: its name and
  // email are a stranger's words too, and go with its password.
  const strangers = sql`${first} and ${users.passwordHash} is not null and ${input.keepPasswordHash}::text is null`;
  const [updated] = await db.batch([
    db
      .update(users)
      .set({
        mobileVerifiedAt: sql`coalesce(${users.mobileVerifiedAt}, ${at})`,
        passwordHash: sql`case when ${first} then ${input.keepPasswordHash}::text else ${users.passwordHash} end`,
        name: sql`case when ${strangers} then null else ${users.name} end`,
        email: sql`case when ${strangers} then null else ${users.email} end`,
      })
      .where(eq(users.id, userId))
      .returning(),
    // Only when this statement's proof was the first (it stamped `now`): sessions from before it
    // were never proved, whoever holds them.
    db
      .update(refreshTokens)
      .set({ revokedAt: now })
      .where(
        and(
          eq(refreshTokens.userId, userId),
          isNull(refreshTokens.revokedAt),
          sql`exists (select 1 from ${users} where ${users.id} = ${userId} and ${users.mobileVerifiedAt} = ${at})`,
        ),
      ),
    db.insert(refreshTokens).values({ ...input.session, createdAt: now }),
  ]);
  return updated[0] ?? null;
}
