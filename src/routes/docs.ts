import { Scalar } from "@scalar/hono-api-reference";
import type { Handler } from "hono";
import type { AppEnv } from "../context";
import { contentSecurityPolicy, newNonce } from "./shared/csp";

/**
 * Scalar's standalone bundle, a static asset under public/ (wrangler.jsonc `assets`), so /docs
 * needs no CDN: it renders offline and under the pages' CSP. The version is in the file name, so
 * it can be cached for good; `npm run vendor:scalar -- <version>` replaces it.
 */
export const SCALAR_BUNDLE = "/docs/scalar/api-reference-1.76.4.js";

const reference = {
  url: "/openapi.json",
  cdn: SCALAR_BUNDLE,
  pageTitle: "Gemini Chat API reference",
  // Nothing leaves this origin: no web fonts, no telemetry, no request proxy (the try-it client
  // calls this same origin directly), no link to Scalar's hosted client.
  withDefaultFonts: false,
  telemetry: false,
  hideClientButton: true,
  showDeveloperTools: "never",
  authentication: { preferredSecurityScheme: "bearerAuth" },
} as const;

/** GET /docs: the Scalar API reference for /openapi.json, with a try-it client. */
export const docsPage: Handler<AppEnv> = async (c, next) => {
  const nonce = newNonce();
  c.header("Content-Security-Policy", contentSecurityPolicy(nonce));
  c.header("Cache-Control", "no-store");
  c.header("X-Content-Type-Options", "nosniff");
  c.header("Referrer-Policy", "no-referrer");
  // The nonce goes on Scalar's script tags and, through its csp-nonce meta tag, on the styles the
  // bundle injects at runtime.
  return Scalar<AppEnv>({ ...reference, nonce })(c, next);
};
