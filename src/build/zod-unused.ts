// Bundled in place of two zod modules the Worker never runs (see `alias` in wrangler.jsonc and
// docs/adr/0006-bundle-budget.md): `core/compile.js` (z.compile, a code generator that needs
// `new Function`, which Workers forbid) and `classic/from-json-schema.js` (z.fromJSONSchema).
// @hono/zod-openapi passes zod's whole namespace to extendZodWithOpenApi, so esbuild keeps every
// export of it, used or not. The names zod re-exports stay defined; calling one says why it is
// missing.

function notBundled(name: string): never {
  throw new Error(`zod's ${name} is not in the Worker bundle (docs/adr/0006-bundle-budget.md)`);
}

export const INVALID = Symbol.for("zod.compile.invalid");

export class ZodCompileAsyncError extends Error {
  override name = "ZodCompileAsyncError";
}

export class ZodCompileUnsupportedError extends Error {
  override name = "ZodCompileUnsupportedError";
}

export const compile = (): never => notBundled("compile()");
export const compileFn = (): never => notBundled("compile()");
export const withParser = (): never => notBundled("withParser()");
export const fromJSONSchema = (): never => notBundled("fromJSONSchema()");
