/** QStash's time rules: backoff, durations, Retry-After, and the Upstash-Retry-Delay expression. */

/** The longest QStash waits between two attempts. */
export const MAX_DELAY_SECONDS = 86_400;

/** Default backoff before retry number `n` (1 for the first retry): min(1 day, e^(2.5n)) s. */
export function backoffSeconds(n: number): number {
  return Math.min(MAX_DELAY_SECONDS, Math.exp(2.5 * n));
}

const UNIT_SECONDS: Record<string, number> = {
  ns: 1e-9,
  us: 1e-6,
  µs: 1e-6,
  ms: 1e-3,
  s: 1,
  m: 60,
  h: 3600,
  d: 86_400,
};

/** Parses "50s", "1d10h30m", "6m5s", "250ms" to seconds; a bare number is seconds. */
export function parseDurationSeconds(value: string): number | null {
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Number(v);
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)/gy;
  let total = 0;
  let consumed = 0;
  for (let m = re.exec(v); m; m = re.exec(v)) {
    total += Number(m[1]) * (UNIT_SECONDS[m[2] ?? ""] ?? 0);
    consumed = re.lastIndex;
  }
  return consumed > 0 && consumed === v.length ? total : null;
}

const RETRY_AFTER_HEADERS = [
  "retry-after",
  "x-ratelimit-reset",
  "x-ratelimit-reset-requests",
  "x-ratelimit-reset-tokens",
];

/**
 * Seconds to wait before the next attempt as the destination asked (seconds, a duration or an
 * HTTP date), or null when it did not ask or asked for more than a day (then backoff applies).
 */
export function retryAfterSeconds(headers: Headers, nowMs: number): number | null {
  for (const name of RETRY_AFTER_HEADERS) {
    const raw = headers.get(name);
    if (raw === null) continue;
    let seconds = parseDurationSeconds(raw);
    if (seconds === null) {
      const at = Date.parse(raw);
      if (Number.isNaN(at)) continue;
      seconds = Math.max(0, (at - nowMs) / 1000);
    }
    return seconds <= MAX_DELAY_SECONDS ? seconds : null;
  }
  return null;
}

const FUNCTIONS: Record<string, (...args: number[]) => number> = {
  pow: (x = 0, y = 0) => x ** y,
  sqrt: (x = 0) => Math.sqrt(x),
  abs: (x = 0) => Math.abs(x),
  exp: (x = 0) => Math.exp(x),
  floor: (x = 0) => Math.floor(x),
  ceil: (x = 0) => Math.ceil(x),
  round: (x = 0) => Math.round(x),
  min: (...xs) => Math.min(...xs),
  max: (...xs) => Math.max(...xs),
};

/**
 * Evaluates an Upstash-Retry-Delay expression (milliseconds) such as `pow(2, retried) * 1000`:
 * numbers, `retried`, + - * / and parentheses, and the functions QStash documents.
 */
export function evalRetryDelayMs(expression: string, retried: number): number {
  const tokens = expression.match(/\d+(?:\.\d+)?|[A-Za-z_]\w*|[-+*/(),]/g) ?? [];
  if (tokens.join("") !== expression.replace(/\s+/g, "")) {
    throw new Error(`invalid retry delay expression: ${expression}`);
  }
  let pos = 0;
  const peek = () => tokens[pos];
  const take = (expected?: string) => {
    const t = tokens[pos++];
    if (t === undefined || (expected !== undefined && t !== expected)) {
      throw new Error(`invalid retry delay expression: ${expression}`);
    }
    return t;
  };
  const primary = (): number => {
    const t = take();
    if (t === "(") {
      const v = sum();
      take(")");
      return v;
    }
    if (t === "-") return -primary();
    if (/^\d/.test(t)) return Number(t);
    if (t === "retried") return retried;
    const fn = FUNCTIONS[t];
    if (!fn) throw new Error(`unknown function in retry delay expression: ${t}`);
    take("(");
    const args = [sum()];
    while (peek() === ",") {
      take(",");
      args.push(sum());
    }
    take(")");
    return fn(...args);
  };
  const product = (): number => {
    let v = primary();
    while (peek() === "*" || peek() === "/") v = take() === "*" ? v * primary() : v / primary();
    return v;
  };
  const sum = (): number => {
    let v = product();
    while (peek() === "+" || peek() === "-") v = take() === "+" ? v + product() : v - product();
    return v;
  };
  const value = sum();
  if (pos !== tokens.length || !Number.isFinite(value)) {
    throw new Error(`invalid retry delay expression: ${expression}`);
  }
  return Math.max(0, value);
}
