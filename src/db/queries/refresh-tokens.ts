import { and, eq, inArray, isNotNull, isNull, notExists, type SQL, sql } from "drizzle-orm";
import type { Database } from "../client";
import { refreshTokens } from "../schema/refresh-tokens";
import { users } from "../schema/users";

export interface NewRefreshToken {
  id: string;
  userId: string;
  familyId: string;
  tokenHash: string;
  expiresAt: Date;
}

export async function insertRefreshToken(
  db: Database,
  values: NewRefreshToken,
  now: Date,
): Promise<void> {
  await db.insert(refreshTokens).values({ ...values, createdAt: now });
}

/**
 * The statement inserting a session's first refresh token only while the user's stored password
 * hash is `passwordHash` (one just verified, or one just written). The user row is read `for
 * share`: a password change or reset in flight holds it, so this waits and then sees the new
 * hash and inserts nothing. Returns the inserted id, if any.
 */
export function insertRefreshTokenWhileHash(
  values: NewRefreshToken,
  passwordHash: string,
  now: Date,
): SQL {
  return sql`
    with owner as (
      select u.id from ${users} u
       where u.id = ${values.userId} and u.password_hash = ${passwordHash}
         for share of u
    )
    insert into ${refreshTokens} (id, user_id, family_id, token_hash, expires_at, created_at)
    select ${values.id}, id, ${values.familyId}, ${values.tokenHash},
           ${values.expiresAt.toISOString()}::timestamptz, ${now.toISOString()}::timestamptz
      from owner
    returning id`;
}

/**
 * A password login's first refresh token, bound to the hash the login verified (see
 * insertRefreshTokenWhileHash): without it, a login verified against the old password just
 * before a reset would get a session that outlives the reset. True when inserted.
 */
export async function insertRefreshTokenForPassword(
  db: Database,
  values: NewRefreshToken,
  passwordHash: string,
  now: Date,
): Promise<boolean> {
  const result = await db.execute<{ id: string }>(
    insertRefreshTokenWhileHash(values, passwordHash, now),
  );
  return result.rows.length > 0;
}

/** What a rotation (or a reissue within the reuse interval) hands back for the access token. */
export interface RotatedSession {
  userId: string;
  familyId: string;
  mobileNumber: string;
}

/** A presented refresh token and the successor a rotation or a reissue would give it. */
export interface SuccessorRequest {
  tokenHash: string;
  newId: string;
  newTokenHash: string;
  expiresAt: Date;
  now: Date;
  /** The family's first token must be younger than this (its absolute lifetime). */
  familyStartedAfter: Date;
}

/**
 * What a token, its owner and its family must still satisfy for the token to get a successor, by
 * rotation or by a reissue within the reuse interval (docs/adr/0008-credentials.md, items 5, 8
 * and 11): the token has not expired at `now`, the number has been proved, the password has not
 * changed since the token was issued, and the family started after `familyStartedAfter` (its
 * absolute lifetime). One builder, so the two statements cannot drift apart (the reissue once
 * missed the expiry, which the rotation checked on its own). Written over the aliases both use:
 * `t` is the presented token, `u` its owner.
 */
function liveRotationConditions(input: { now: Date; familyStartedAfter: Date }): SQL {
  return sql`t.expires_at > ${input.now.toISOString()}::timestamptz
         and u.mobile_verified_at is not null
         and (u.password_changed_at is null or u.password_changed_at <= t.created_at)
         and not exists (
           select 1 from ${refreshTokens} f
            where f.family_id = t.family_id
              and f.created_at <= ${input.familyStartedAfter.toISOString()}::timestamptz)`;
}

/**
 * Rotates a live refresh token into a new one in ONE statement: the conditional UPDATE (`rotated_at
 * is null`) row-locks the old token, so of two concurrent rotations exactly one gets a row and
 * inserts the successor; the other gets nothing. Returns null when the token is unknown, expired,
 * revoked or already rotated, was issued before the owner's last password change, belongs to an
 * account whose number nobody has proved (a session from before proofs were required), or belongs to
 * a family (session) that started before `familyStartedAfter` (its absolute lifetime is over).
 *
 * The owner's row is read `for share`: a concurrent password change (which updates the user row
 * first, then revokes every token) either waits for this rotation to commit and then revokes its
 * successor too, or commits first, and this statement then sees the new `password_changed_at`
 * and refuses. Without it, a successor inserted mid-change would survive the revocation.
 */
export async function rotateRefreshToken(
  db: Database,
  input: SuccessorRequest,
): Promise<RotatedSession | null> {
  const now = input.now.toISOString();
  const result = await db.execute<{
    user_id: string;
    family_id: string;
    mobile_number: string;
  }>(sql`
    with owner as (
      select u.id, u.mobile_number
        from ${users} u
        join ${refreshTokens} t on t.user_id = u.id
       where t.token_hash = ${input.tokenHash}
         and ${liveRotationConditions(input)}
         for share of u
    ), rotated as (
      update ${refreshTokens}
         set rotated_at = ${now}::timestamptz
       where token_hash = ${input.tokenHash}
         and rotated_at is null
         and revoked_at is null
         and user_id in (select id from owner)
      returning id, user_id, family_id
    ), inserted as (
      insert into ${refreshTokens}
             (id, user_id, family_id, parent_id, token_hash, expires_at, created_at)
      select ${input.newId}, user_id, family_id, id, ${input.newTokenHash},
             ${input.expiresAt.toISOString()}::timestamptz, ${now}::timestamptz
        from rotated
      returning user_id, family_id
    )
    -- The number, for the access token's number tag (docs/adr/0008-credentials.md).
    select i.user_id, i.family_id, o.mobile_number
      from inserted i join owner o on o.id = i.user_id`);
  const row = result.rows[0];
  return row
    ? { userId: row.user_id, familyId: row.family_id, mobileNumber: row.mobile_number }
    : null;
}

/**
 * Locks the owner's user row `for update` before a revocation, in the same transaction. A
 * rotation holds that row `for share` while it inserts a successor, so the revocation waits for
 * it to commit, and its UPDATE (a new snapshot under READ COMMITTED) then sees and revokes the
 * successor too. Without the lock a token rotated during a logout would survive it.
 */
function lockOwners(db: Database, owned: SQL | undefined) {
  const owners = db.select({ userId: refreshTokens.userId }).from(refreshTokens).where(owned);
  return db.select({ id: users.id }).from(users).where(inArray(users.id, owners)).for("update");
}

/** Revokes every live token of the family that the token matching `owned` belongs to. */
async function revokeFamilyOf(db: Database, owned: SQL | undefined, now: Date): Promise<number> {
  const family = db.select({ familyId: refreshTokens.familyId }).from(refreshTokens).where(owned);
  const [, rows] = await db.batch([
    lockOwners(db, owned),
    db
      .update(refreshTokens)
      .set({ revokedAt: now })
      .where(and(inArray(refreshTokens.familyId, family), isNull(refreshTokens.revokedAt)))
      .returning({ id: refreshTokens.id }),
  ]);
  return rows.length;
}

/**
 * A token that was already rotated, presented again: either the retry of a rotation whose answer
 * was lost, or a replay (stolen or leaked). ONE transaction decides which:
 *
 * 1. The owner's row is locked `for update` (as for any revocation, see lockOwners), so parallel
 *    presentations of the token, a rotation of its successor in flight, a logout and a password
 *    change all run one after the other, and each statement below sees what they committed.
 * 2. **Reissue** when the token was rotated after `rotatedAfter` (the reuse interval), is not
 *    revoked, and its successor is still live (neither used nor revoked): the successor is
 *    superseded (marked rotated and revoked, so whoever presents it later is treated as a
 *    replay) and a new successor of the same token is inserted. The conditional UPDATE of the
 *    successor (`rotated_at is null and revoked_at is null`) is what admits one reissue per live
 *    successor, so a token never has two live children. The token, owner and family
 *    conditions of rotateRefreshToken apply too (the same `liveRotationConditions`): an expired
 *    token is never reissued, however recently it was rotated.
 * 3. **Theft detection** otherwise (the interval is over, or the successor was used: the
 *    legitimate holder has moved on; or a condition of step 2 fails, such as the token's
 *    expiry): every live token of the family, the thief's and the owner's, is revoked, unless
 *    step 2 inserted the new token.
 *
 * Returns the reissued session (or null) and how many tokens theft detection revoked.
 */
export async function reissueOrRevokeRotatedToken(
  db: Database,
  input: SuccessorRequest & {
    /** The reuse interval's start: a token rotated at or before it is never reissued. */
    rotatedAfter: Date;
  },
): Promise<{ reissued: RotatedSession | null; revoked: number }> {
  const now = input.now.toISOString();
  const presentedRotated = and(
    eq(refreshTokens.tokenHash, input.tokenHash),
    isNotNull(refreshTokens.rotatedAt),
  );
  const family = db
    .select({ familyId: refreshTokens.familyId })
    .from(refreshTokens)
    .where(presentedRotated);
  const [, reissued, revoked] = await db.batch([
    lockOwners(db, presentedRotated),
    db.execute<{ user_id: string; family_id: string; mobile_number: string }>(sql`
      with presented as (
        select t.id, t.family_id, u.id as user_id, u.mobile_number
          from ${refreshTokens} t
          join ${users} u on u.id = t.user_id
         where t.token_hash = ${input.tokenHash}
           and t.rotated_at > ${input.rotatedAfter.toISOString()}::timestamptz
           and t.revoked_at is null
           and ${liveRotationConditions(input)}
      ), superseded as (
        update ${refreshTokens} c
           set rotated_at = ${now}::timestamptz, revoked_at = ${now}::timestamptz
          from presented p
         where c.family_id = p.family_id
           and c.parent_id = p.id
           and c.rotated_at is null
           and c.revoked_at is null
        returning p.id as parent_id, p.user_id, p.family_id, p.mobile_number
      ), inserted as (
        insert into ${refreshTokens}
               (id, user_id, family_id, parent_id, token_hash, expires_at, created_at)
        select ${input.newId}, user_id, family_id, parent_id, ${input.newTokenHash},
               ${input.expiresAt.toISOString()}::timestamptz, ${now}::timestamptz
          from superseded
         limit 1
        returning user_id, family_id
      )
      select i.user_id, i.family_id, s.mobile_number
        from inserted i join superseded s on s.family_id = i.family_id
       limit 1`),
    db
      .update(refreshTokens)
      .set({ revokedAt: input.now })
      .where(
        and(
          inArray(refreshTokens.familyId, family),
          isNull(refreshTokens.revokedAt),
          notExists(
            db
              .select({ id: refreshTokens.id })
              .from(refreshTokens)
              .where(eq(refreshTokens.id, input.newId)),
          ),
        ),
      )
      .returning({ id: refreshTokens.id }),
  ]);
  const row = reissued.rows[0];
  return {
    reissued: row
      ? { userId: row.user_id, familyId: row.family_id, mobileNumber: row.mobile_number }
      : null,
    revoked: revoked.length,
  };
}

/**
 * Revokes the family of a token (logout): holding the refresh token is the proof, so no access
 * token is needed; with `userId`, only if the token is that user's.
 */
export function revokeFamilyOfToken(
  db: Database,
  userId: string | null,
  tokenHash: string,
  now: Date,
): Promise<number> {
  return revokeFamilyOf(
    db,
    and(
      eq(refreshTokens.tokenHash, tokenHash),
      userId === null ? undefined : eq(refreshTokens.userId, userId),
    ),
    now,
  );
}

/** Revokes one family of `userId` (logout by the access token's session id). */
export async function revokeFamily(
  db: Database,
  userId: string,
  familyId: string,
  now: Date,
): Promise<number> {
  const [, rows] = await db.batch([
    // See lockOwners: a rotation in flight commits its successor before this revocation reads.
    db.select({ id: users.id }).from(users).where(eq(users.id, userId)).for("update"),
    db
      .update(refreshTokens)
      .set({ revokedAt: now })
      .where(
        and(
          eq(refreshTokens.familyId, familyId),
          eq(refreshTokens.userId, userId),
          isNull(refreshTokens.revokedAt),
        ),
      )
      .returning({ id: refreshTokens.id }),
  ]);
  return rows.length;
}

/**
 * Whether an access token's session still stands: its refresh-token family (`sid`) belongs to
 * the user and was not revoked (logout, password change or reset, theft detection, first proof
 * of the number), the number has been proved (a session of an unproved account predates the
 * rule that needs proof, whoever holds it), and the token was issued at or after the user's
 * last password change. A
 * revocation marks every live token of the family, so one unrevoked token means a live family.
 */
export async function sessionIsLive(
  db: Database,
  input: { userId: string; familyId: string; issuedAt: Date },
): Promise<boolean> {
  const rows = await preparedSessionCheck(db).execute(sessionParams(input));
  return rows.length > 0;
}

/** The session check's placeholders, filled per call by `sessionParams`. */
const SESSION_PLACEHOLDERS = {
  userId: sql.placeholder("userId"),
  familyId: sql.placeholder("familyId"),
  issuedAt: sql.placeholder("issuedAt"),
};

/**
 * `sessionLiveCondition` over placeholders, for a query prepared once per isolate; execute it
 * with `sessionParams(input)` (and `userId` is the placeholder of the same name).
 */
export function sessionLivePlaceholders() {
  return { condition: sessionLiveSql(SESSION_PLACEHOLDERS), userId: SESSION_PLACEHOLDERS.userId };
}

/** The values of `SESSION_PLACEHOLDERS` for one caller. */
export function sessionParams(input: { userId: string; familyId: string; issuedAt: Date }) {
  return { userId: input.userId, familyId: input.familyId, issuedAt: input.issuedAt.toISOString() };
}

// Isolate-lifetime cache: the check runs on every authenticated request, and building its SQL
// (drizzle's builder, the query text, the column casing) each time was a share of each request's
// CPU; prepared once per database instance, a call only fills in the parameters.
const sessionChecks = new WeakMap<Database, ReturnType<typeof prepareSessionCheck>>();

function prepareSessionCheck(db: Database) {
  // The user's row, only while the session stands: no row when it does not (or the user is gone).
  return db
    .select({ id: users.id })
    .from(users)
    .where(and(eq(users.id, SESSION_PLACEHOLDERS.userId), sessionLivePlaceholders().condition))
    .limit(1)
    .prepare("session_is_live");
}

function preparedSessionCheck(db: Database) {
  let prepared = sessionChecks.get(db);
  if (!prepared) {
    prepared = prepareSessionCheck(db);
    sessionChecks.set(db, prepared);
  }
  return prepared;
}

/**
 * `sessionIsLive` as a boolean SQL expression, so a write can carry the check as its own
 * condition (one round trip for both; see insertChatroomIfSessionLive).
 */
export function sessionLiveCondition(input: {
  userId: string;
  familyId: string;
  issuedAt: Date;
}): SQL {
  return sessionLiveSql({ ...input, issuedAt: input.issuedAt.toISOString() });
}

/** The condition over values or placeholders (`issuedAt` as ISO 8601 text). */
function sessionLiveSql(input: { userId: unknown; familyId: unknown; issuedAt: unknown }): SQL {
  return sql`exists (
      select 1
        from ${refreshTokens} t
        join ${users} u on u.id = t.user_id
       where t.family_id = ${input.familyId}
         and t.user_id = ${input.userId}
         and t.revoked_at is null
         and u.mobile_verified_at is not null
         and (u.password_changed_at is null
              or u.password_changed_at <= ${input.issuedAt}::timestamptz)
    )`;
}
