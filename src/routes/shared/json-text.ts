import type { Context, TypedResponse } from "hono";

/**
 * A 200 whose JSON body is already text (a cached page, stored as `JSON.stringify` wrote it):
 * sent as is, with the headers `c.json` would set, and typed as the value the text holds so the
 * route's declared response still checks. The caller vouches that `json` is `T` serialised.
 */
export function jsonText<T>(
  c: Context,
  json: string,
  headers: Record<string, string>,
): TypedResponse<T, 200, "json"> {
  const res = c.body(json, 200, { ...headers, "Content-Type": "application/json" });
  return res as unknown as TypedResponse<T, 200, "json">;
}
