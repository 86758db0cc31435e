import { createHash } from "node:crypto";
import { type ApiResponse, call } from "../support/api.ts";
import { sql } from "./chat-support.ts";

export const refresh = (refresh_token: unknown): Promise<ApiResponse> =>
  call("POST", "/auth/refresh", { body: { refresh_token } });

/** What the database stores for a refresh token (SHA-256, hex), computed on the test's side. */
export const hashOf = (token: string) => createHash("sha256").update(token).digest("hex");

export interface TokenRow {
  id: string;
  parent_id: string | null;
  token_hash: string;
  rotated_at: string | null;
  revoked_at: string | null;
}

/** Every refresh token of the user's sessions, oldest first. */
export async function tokensOf(userId: string): Promise<TokenRow[]> {
  return (await sql().query(
    `select id, parent_id, token_hash, rotated_at, revoked_at from refresh_tokens
      where user_id = $1 order by created_at, id`,
    [userId],
  )) as TokenRow[];
}

/** The hashes of the user's refresh tokens that a refresh would still accept. */
export async function liveTokenHashes(userId: string): Promise<string[]> {
  const rows = await tokensOf(userId);
  return rows
    .filter((r) => r.rotated_at === null && r.revoked_at === null)
    .map((r) => r.token_hash);
}

/** The row of one refresh token. */
export async function rowOf(token: string): Promise<TokenRow | undefined> {
  const rows = await sql().query(
    "select id, parent_id, token_hash, rotated_at, revoked_at from refresh_tokens where token_hash = $1",
    [hashOf(token)],
  );
  return rows[0] as TokenRow | undefined;
}

/** Moves a rotated token's rotation `seconds` into the past (the reuse interval is measured from it). */
export async function backdateRotation(token: string, seconds: number): Promise<void> {
  await sql().query(
    `update refresh_tokens set rotated_at = rotated_at - make_interval(secs => $2)
      where token_hash = $1`,
    [hashOf(token), seconds],
  );
}

/**
 * Places a rotated token's rotation `rotatedSecondsAgo` in the past and its own expiry
 * `expiresInSeconds` from now (negative: already expired), as if it had been rotated shortly
 * before the end of its lifetime.
 */
export async function setRotationAndExpiry(
  token: string,
  times: { rotatedSecondsAgo: number; expiresInSeconds: number },
): Promise<void> {
  await sql().query(
    `update refresh_tokens
        set rotated_at = now() - make_interval(secs => $2),
            expires_at = now() + make_interval(secs => $3)
      where token_hash = $1 and rotated_at is not null`,
    [hashOf(token), times.rotatedSecondsAgo, times.expiresInSeconds],
  );
}

/** Ends a token's own lifetime `secondsAgo` seconds ago. */
export async function expireToken(token: string, secondsAgo: number): Promise<void> {
  await sql().query(
    "update refresh_tokens set expires_at = now() - make_interval(secs => $2) where token_hash = $1",
    [hashOf(token), secondsAgo],
  );
}
