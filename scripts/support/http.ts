// A small timed HTTP client and latency statistics for the load run and the benchmark.

export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: scripts read response bodies of every shape.
  body: any;
  text: string;
  ms: number;
}

export interface RequestOptions {
  body?: unknown;
  rawBody?: string;
  token?: string;
  headers?: Record<string, string>;
}

/** Sends one request and times it until the whole body has arrived. */
export async function timedRequest(
  baseUrl: string,
  method: string,
  path: string,
  opts: RequestOptions = {},
): Promise<Reply> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | undefined = opts.rawBody;
  if (body === undefined && opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers["content-type"] ??= "application/json";
  }
  const started = performance.now();
  const res = await fetch(`${baseUrl}${path}`, { method, headers, body, redirect: "manual" });
  const text = await res.text();
  const ms = performance.now() - started;
  let parsed: unknown = text;
  if ((res.headers.get("content-type") ?? "").includes("json") && text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      // Left as text; callers check the status first.
    }
  }
  return { status: res.status, headers: res.headers, body: parsed, text, ms };
}

/** Nearest-rank percentile of an ascending list (p in 0..100). */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] as number;
}

export interface Summary {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
}

export function summarize(samples: number[]): Summary {
  const s = [...samples].sort((a, b) => a - b);
  return {
    count: s.length,
    p50: percentile(s, 50),
    p95: percentile(s, 95),
    p99: percentile(s, 99),
    max: s.at(-1) ?? Number.NaN,
  };
}

/** Latency samples grouped by a label such as "GET /chatroom/:id". */
export class Samples {
  readonly byLabel = new Map<string, number[]>();

  add(label: string, ms: number): void {
    const list = this.byLabel.get(label);
    if (list) list.push(ms);
    else this.byLabel.set(label, [ms]);
  }

  summaries(): [string, Summary][] {
    return [...this.byLabel.entries()].map(([label, xs]) => [label, summarize(xs)]);
  }
}

/** Renders rows as an aligned plain-text table. */
export function table(header: string[], rows: (string | number)[][]): string {
  const cells = [header, ...rows.map((r) => r.map(String))];
  const widths = header.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? "").length)));
  return cells
    .map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i] ?? 0) : c.padStart(widths[i] ?? 0))))
    .map((r) => r.join("  "))
    .join("\n");
}

export const ms1 = (n: number) => (Number.isFinite(n) ? n.toFixed(1) : "-");

/** A random client address, so per-IP limits see each simulated client separately. */
export function randomClientIp(): string {
  const [a, b, c] = crypto.getRandomValues(new Uint8Array(3));
  return `10.${a}.${b}.${c}`;
}

/** A random E.164 number in the +1555 range the tests use (1e10 of them: no collisions). */
export function randomMobileNumber(): string {
  const digits = Array.from(crypto.getRandomValues(new Uint32Array(10)), (n) => n % 10).join("");
  return `+1555${digits}`;
}

/** Refuses anything but loopback: these scripts generate load and must never aim it elsewhere. */
export function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) {
    throw new Error(`refusing to send load to ${url}: loopback only`);
  }
}
