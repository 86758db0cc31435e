// Bundled in place of zod's `locales/index.js` (see `alias` in wrangler.jsonc). @hono/zod-openapi
// passes zod's whole namespace to extendZodWithOpenApi, which keeps every one of zod's ~50 locale
// modules (260 KiB minified) in the Worker. The API answers in English only, so the namespace
// keeps just `en`, which zod itself configures by default.
export { default as en } from "zod/v4/locales/en.js";
