import type { Handler } from "hono";
import type { AppEnv } from "../context";
import { PlaygroundPage } from "./playground/page";

function newNonce(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

/**
 * Only the page's own nonce-tagged style and script run; fetches go to this origin only. Leaving
 * for Stripe Checkout is a top-level navigation, which CSP does not restrict.
 */
function contentSecurityPolicy(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "form-action 'none'",
    "base-uri 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** GET /: the playground, a server-rendered page that drives the JSON API from the browser. */
export const playgroundPage: Handler<AppEnv> = (c) => {
  const nonce = newNonce();
  c.header("Content-Security-Policy", contentSecurityPolicy(nonce));
  c.header("Cache-Control", "no-store");
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  return c.html(
    <PlaygroundPage nonce={nonce} codesInResponse={c.get("env")?.OTP_DELIVERY === "response"} />,
  );
};
