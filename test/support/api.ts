import { inject } from "vitest";

export const workerUrl = inject("workerUrl");
export const cloudUrl = inject("cloudUrl");
/** The exact variables the Worker runs with (secrets included), for signing real tokens. */
export const testEnv = inject("testEnv");

// biome-ignore lint/suspicious/noExplicitAny: tests assert on response bodies of every shape.
export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface CallOptions {
  body?: unknown;
  /** Sent as is, instead of JSON-encoding `body`. */
  rawBody?: BodyInit;
  token?: string;
  headers?: Record<string, string>;
}

async function toApiResponse(res: Response): Promise<ApiResponse> {
  const text = await res.text();
  let body: unknown = text;
  if ((res.headers.get("content-type") ?? "").includes("json") && text) body = JSON.parse(text);
  return { status: res.status, headers: res.headers, body, text };
}

/**
 * A fresh client address per call. Cloudflare sets CF-Connecting-IP in production; locally the
 * client's header passes through, so each test flow gets its own per-IP budgets.
 */
export function uniqueClientIp(): string {
  const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
  return `10.${a}.${b}.${c}`;
}

/**
 * Calls the Worker over HTTP as a client would. Each call comes from its own client address
 * unless the test names one (per-IP limits are then tested on purpose, never hit by accident:
 * a real Redis keeps the counters across runs).
 */
export async function call(
  method: string,
  path: string,
  opts: CallOptions = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...opts.headers };
  if (!Object.keys(headers).some((name) => name.toLowerCase() === "cf-connecting-ip")) {
    headers["cf-connecting-ip"] = uniqueClientIp();
  }
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: BodyInit | undefined = opts.rawBody;
  if (body === undefined && opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] ??= "application/json";
  }
  return toApiResponse(
    await fetch(`${workerUrl}${path}`, { method, headers, body, redirect: "manual" }),
  );
}

/** Calls a local-cloud control endpoint: `control("gemini/faults", {...})` posts, no body gets. */
export async function control(path: string, body?: unknown, method?: string): Promise<ApiResponse> {
  const res = await fetch(`${cloudUrl}/_control/${path}`, {
    method: method ?? (body === undefined ? "GET" : "POST"),
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return toApiResponse(res);
}

/**
 * Faults of the local Redis for the commands that name a match (a user id, a number), each
 * remembered so that `clear()` lifts them all: call it in `afterEach`, so a failing test never
 * leaves Redis down for the next one.
 */
export function redisFaultsByMatch() {
  const matches: string[] = [];
  return {
    async set(match: string, fault: { mode: "down" | "error" | "slow"; ms?: number }) {
      matches.push(match);
      const res = await control("redis/fault", { ...fault, match });
      if (res.status !== 200) throw new Error(`redis/fault answered ${res.status}: ${res.text}`);
    },
    async lift(match: string) {
      await control("redis/fault", { mode: "none", match });
    },
    async clear() {
      for (const match of matches.splice(0)) await control("redis/fault", { mode: "none", match });
    },
  };
}

/** Runs the Worker's cron handler once, as the Workers runtime would on schedule. */
export async function runScheduled(cron = "* * * * *"): Promise<void> {
  const res = await fetch(
    `${workerUrl}/cdn-cgi/handler/scheduled?cron=${encodeURIComponent(cron)}`,
  );
  if (!res.ok) throw new Error(`scheduled handler answered ${res.status}: ${await res.text()}`);
}

/**
 * Runs a rate-limit test until one run starts and ends inside one fixed window of `windowMs`.
 * The sliding limits weigh the previous window by the elapsed fraction, so a run that crosses a
 * boundary can get one more request through: such a run's failure is retried (at most twice),
 * any other failure stands. `fn` must use fresh identifiers on each run.
 */
export async function withinOneWindow<T>(windowMs: number, fn: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const started = Date.now();
    try {
      return await fn();
    } catch (err) {
      const straddled = Math.floor(started / windowMs) !== Math.floor(Date.now() / windowMs);
      if (!straddled || attempt >= 3) throw err;
    }
  }
}

/** Polls `fn` until it returns a truthy value or the timeout passes. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 10_000,
  everyMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A random, unique E.164 number in a reserved-looking range, so tests never collide. */
export function uniqueMobileNumber(): string {
  // 10 random digits: 1e10 numbers, so runs against a persistent database never collide.
  const digits = Array.from(crypto.getRandomValues(new Uint32Array(10)), (n) => n % 10).join("");
  return `+1555${digits}`;
}
