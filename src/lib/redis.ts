import { Redis } from "@upstash/redis/cloudflare";

export type RedisClient = Redis;

/** No Redis command waits longer than this; a hanging Redis becomes a 503, not a hung request. */
export const REDIS_TIMEOUT_MS = 2_000;

/**
 * Upstash Redis over REST. One retry only: the SDK's default (5 retries, ~11 s of backoff) would
 * hold a request far past the point where failing fast with a 503 is the better answer. The
 * signal is a function so each command gets a fresh deadline, and so the SDK throws on timeout
 * (given a plain signal it would resolve an aborted command with the abort reason as its result).
 */
export function createRedis(url: string, token: string): RedisClient {
  return new Redis({
    url,
    token,
    retry: { retries: 1, backoff: () => 50 },
    signal: () => AbortSignal.timeout(REDIS_TIMEOUT_MS),
    automaticDeserialization: false,
    // Plain JSON results: every value here is text the Worker wrote, so base64 (the SDK's
    // default, for binary values) only cost a per-character decode of every result, the cached
    // chatroom pages included (docs/performance.md, "CPU per request").
    responseEncoding: false,
    enableTelemetry: false,
    // One HTTP request per command, not the SDK's default auto-pipeline: with it every command
    // went through a Proxy and a fresh Pipeline (about 185 closures built per pipeline) and
    // waited two microtasks to join others; and since this client serves the whole isolate, it
    // batched commands of unrelated requests into one HTTP call, tying their fates together.
    // Commands that belong together are sent as explicit pipelines or scripts already, and
    // Upstash bills commands either way (docs/performance.md, "CPU per request").
    enableAutoPipelining: false,
  });
}

/** This adapter's failures: the SDK raises UpstashError for anything Upstash answered as failed. */
export function isRedisUnavailable(err: Error): boolean {
  return err.name === "UpstashError";
}
