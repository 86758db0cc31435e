/** A fresh CSP nonce (16 random bytes, base64) for one HTML response. */
export function newNonce(): string {
  return btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
}

/**
 * The CSP of the HTML pages (playground and /docs): only the page's own nonce-tagged styles and
 * scripts run (a nonce-tagged <script src> too, so /docs and the playground load their scripts
 * from this origin's static assets; any other same-origin URL still cannot run as a script), and
 * fetches go to this origin only. Leaving for Stripe Checkout is a top-level navigation, which CSP
 * does not restrict.
 */
export function contentSecurityPolicy(nonce: string): string {
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
