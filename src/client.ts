import { hc } from "hono/client";
import type { AppType } from "./app";

export type { AppType } from "./app";

/** The typed RPC client: every route, its inputs and its JSON responses, from AppType. */
export type ApiClient = ReturnType<typeof hc<AppType>>;

/**
 * A typed client for the API at `baseUrl`. With `token`, every request carries it as a bearer
 * token; pass `fetch` to route requests elsewhere (tests, service bindings).
 */
export function createClient(
  baseUrl: string,
  token?: string,
  options: { fetch?: typeof fetch; headers?: Record<string, string> } = {},
): ApiClient {
  return hc<AppType>(baseUrl, {
    ...(options.fetch ? { fetch: options.fetch } : {}),
    headers: {
      ...options.headers,
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
  });
}
