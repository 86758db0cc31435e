-- Backfill for mobile_verified_at (docs/adr/0008-credentials.md). An account without a password
-- that has ever had a session got every session from a code sent to its number (no other way in
-- exists for it), so its number is proved. Accounts with a password stay unproved: a stranger's
-- signup password cannot be told apart from the owner's, so their password stops working until
-- the owner proves the number (the first verify-otp drops it; reset-password replaces it).
UPDATE "users" SET "mobile_verified_at" = "created_at"
 WHERE "mobile_verified_at" IS NULL
   AND "password_hash" IS NULL
   AND EXISTS (SELECT 1 FROM "refresh_tokens" t WHERE t."user_id" = "users"."id");
