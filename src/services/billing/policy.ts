import { PRO_STATUSES, TERMINAL_STATUSES, type Tier } from "../../db/schema";
import { ValidationError } from "../../errors";

/** Pro while Stripe considers the subscription paid or still collecting; Basic otherwise. */
export function tierForStatus(status: string | null | undefined): Tier {
  return (PRO_STATUSES as readonly string[]).includes(status ?? "") ? "pro" : "basic";
}

export function isTerminalStatus(status: string): boolean {
  return (TERMINAL_STATUSES as readonly string[]).includes(status);
}

/** Origins a client-supplied redirect may use: APP_URL's and the configured extra ones. */
export function allowedRedirectOrigins(appUrl: string, extra: string): Set<string> {
  const origins = new Set([new URL(appUrl).origin]);
  for (const entry of extra.split(",")) {
    const trimmed = entry.trim();
    if (!trimmed) continue;
    try {
      origins.add(new URL(trimmed).origin);
    } catch {
      // A malformed entry allows nothing; env validation is not the place to fail a checkout.
    }
  }
  return origins;
}

/**
 * A client-supplied redirect URL, accepted only on an allowed origin (no open redirect through
 * Stripe). Returns the normalised URL.
 */
export function checkRedirectUrl(field: string, value: string, allowed: Set<string>): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ValidationError(`${field} must be an absolute URL.`, [
      { path: field, message: `${field} must be an absolute URL`, location: "json" },
    ]);
  }
  if (!["http:", "https:"].includes(url.protocol) || !allowed.has(url.origin)) {
    throw new ValidationError(`${field} must be on an allowed origin.`, [
      {
        path: field,
        message: `${field} must be on an allowed origin (${url.origin} is not)`,
        location: "json",
      },
    ]);
  }
  // Stripe substitutes this placeholder; URL normalisation would percent-encode its braces.
  return url.toString().replaceAll("%7BCHECKOUT_SESSION_ID%7D", "{CHECKOUT_SESSION_ID}");
}

/** Seconds a repeated checkout click reuses the same Checkout Session (Stripe idempotency). */
export const CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS = 60;

/**
 * Idempotency key for a Checkout Session: one per user, customer, redirect URLs and short time
 * bucket, so a retried click gets the same session and a changed request (other URLs, or a
 * replaced customer) does not collide with Stripe's "same key, different parameters" error.
 */
export async function checkoutIdempotencyKey(
  userId: string,
  request: { customerId: string; successUrl: string; cancelUrl: string },
  now: Date,
  /** A session the key answered that was paid or expired since: the next key names it. */
  after: string | null = null,
): Promise<string> {
  const bucket = Math.floor(now.getTime() / 1000 / CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${request.customerId}\n${request.successUrl}\n${request.cancelUrl}`),
  );
  const hash = Array.from(new Uint8Array(digest).slice(0, 8), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
  return `checkout:${userId}:${bucket}:${hash}${after ? `:after:${after}` : ""}`;
}

/**
 * A customer creation's key names the attempt, not only the user: Stripe saves a 500 under its
 * key and replays it for 24 hours, so a fixed `customer:<user id>` would fail the user's checkout
 * for a day after one transient failure. Duplicates are prevented by the search before the create
 * and the conditional store after it (the loser deletes its customer), not by the key.
 */
export const customerIdempotencyKey = (userId: string, attemptId: string) =>
  `customer:${userId}:${attemptId}`;

/** The price a subscription is stored with: the Pro price if any item has it, else the first. */
export function storedPriceId(
  subscription: { priceId: string | null; priceIds: string[] },
  proPriceId: string,
): string | null {
  return subscription.priceIds.includes(proPriceId) ? proPriceId : subscription.priceId;
}
