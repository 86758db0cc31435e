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
      { path: field, message: "not an absolute URL", location: "json" },
    ]);
  }
  if (!["http:", "https:"].includes(url.protocol) || !allowed.has(url.origin)) {
    throw new ValidationError(`${field} must be on an allowed origin.`, [
      { path: field, message: `origin ${url.origin} is not allowed`, location: "json" },
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
): Promise<string> {
  const bucket = Math.floor(now.getTime() / 1000 / CHECKOUT_IDEMPOTENCY_WINDOW_SECONDS);
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(`${request.customerId}\n${request.successUrl}\n${request.cancelUrl}`),
  );
  const hash = Array.from(new Uint8Array(digest).slice(0, 8), (b) =>
    b.toString(16).padStart(2, "0"),
  ).join("");
  return `checkout:${userId}:${bucket}:${hash}`;
}

/**
 * One Stripe customer per user; a replacement for a customer Stripe no longer knows gets its own
 * key (the original key would answer the gone customer again for 24 hours).
 */
export const customerIdempotencyKey = (userId: string, replacing: string | null = null) =>
  replacing ? `customer:${userId}:replaces:${replacing}` : `customer:${userId}`;
