// `npm run bench -- --cpu`: the CPU time Cloudflare bills, per request. Builds the Worker as it is
// deployed (`wrangler deploy --dry-run`), serves the bundle with plain `workerd serve` (no
// wrangler dev wrapper, no proxy, no inspector) beside an empty Worker, against the local cloud
// in this process, and drives each endpoint alone with N connections. CPU per request is the
// workerd process's CPU time (every thread's /proc schedstat, in ns) over the run divided by the
// requests; the empty Worker's figure, measured in the same round, is the floor any request pays.
// `--rounds` repeats the pass and reports medians; `--baseline DIR` serves another build beside
// this one and measures both in the same rounds. Then, in a second workerd with the inspector,
// takes one CPU profile per API endpoint and prints its top self-time entries, named through the
// bundle's source map (the .cpuprofile files and the map go to bench-results/).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { SourceMap } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { unstable_readConfig } from "wrangler";
import { startLocalCloud } from "../../local/cloud.ts";
import { ALL_SERVICES } from "../../local/services.ts";
import { freePort } from "../../local/stack.ts";
import { testCloudConfig } from "../../local/test-config.ts";
import { workerVarsFor } from "../../local/worker-vars.ts";
import { createChatroom, createSession, type Target } from "../support/fixtures.ts";
import { table } from "../support/http.ts";
import { selfHostVars } from "../support/self-host.ts";

const ROOT = resolve(import.meta.dirname, "../..");
const bin = (name: string) => join(ROOT, "node_modules/.bin", name);

interface Endpoint {
  label: string;
  /** On the empty Worker, the SDK Worker (the empty one with the API's adapters), or the API. */
  server: "api" | "empty" | "sdk";
  /**
   * Sent with a second user's token: a write that would otherwise invalidate (and grow) the list
   * the cached `GET /chatroom` row reads, round after round.
   */
  writer?: boolean;
  status: number;
  request(i: number): { method: string; path: string; body?: unknown; token?: boolean };
  /** Checks the answer beyond its status (e.g. X-Cache): a problem is counted, not fatal. */
  check?(res: Response): string | null;
}

const ENDPOINTS: Endpoint[] = [
  { label: "empty Worker (floor)", server: "empty", status: 200, request: () => get("/") },
  {
    // The floor of one request-log line: the empty Worker writing one JSON line like the API's.
    label: "empty Worker + one log line",
    server: "empty",
    status: 200,
    request: () => get("/log"),
  },
  {
    // The floor of one vendor round trip: the empty Worker making one subrequest (a Redis PING
    // over REST to the local cloud, read to the end) and nothing else.
    label: "empty Worker + one fetch (floor of a vendor call)",
    server: "empty",
    status: 200,
    request: () => get("/fetch"),
  },
  {
    // The same with the deadline every vendor call of the API carries (AbortSignal.timeout).
    label: "empty Worker + one fetch with a deadline",
    server: "empty",
    status: 200,
    request: () => get("/fetch-deadline"),
  },
  {
    // The floor of one Neon query: the same `select 1` neon's driver sends (its body and
    // headers), as a bare fetch.
    label: "empty Worker + one bare Neon fetch (select 1, no SDK)",
    server: "empty",
    status: 200,
    request: () => get("/neon-fetch"),
  },
  {
    // The rows below make the same calls through the API's own adapters (scripts/bench/sdk-worker.ts:
    // createRedis, createDatabase, the prepared session check), once per isolate as the API
    // builds them: above the bare fetch above is the SDK's and the adapter's share of a call.
    label: "empty Worker + one Upstash SDK GET",
    server: "sdk",
    status: 200,
    request: () => get("/upstash-get"),
  },
  {
    label: "empty Worker + one neon SDK query (select 1)",
    server: "sdk",
    status: 200,
    request: () => get("/neon-query"),
  },
  {
    label: "empty Worker + one drizzle prepared query (the session check)",
    server: "sdk",
    status: 200,
    request: () => get("/session-check"),
  },
  {
    label: "unknown route (404)",
    server: "api",
    status: 404,
    request: () => get("/no-such-route"),
  },
  {
    // The token is verified; the malformed id is answered 404 before any lookup, and no session
    // check is started for it (src/middleware/auth.ts): 0 vendor calls.
    label: "authenticated, no vendor call (GET /chatroom/{malformed id}, 404)",
    server: "api",
    status: 404,
    request: () => ({ ...get("/chatroom/not-an-id"), token: true }),
  },
  {
    label: "GET /chatroom (cache hit)",
    server: "api",
    status: 200,
    request: () => ({ ...get("/chatroom"), token: true }),
    check: (res) =>
      res.headers.get("x-cache") === "HIT" ? null : `X-Cache ${res.headers.get("x-cache")}`,
  },
  {
    label: "GET /user/me",
    server: "api",
    status: 200,
    request: () => ({ ...get("/user/me"), token: true }),
  },
  {
    label: "POST /chatroom",
    server: "api",
    status: 201,
    writer: true,
    request: (i) => ({
      method: "POST",
      path: "/chatroom",
      body: { title: `cpu ${i}` },
      token: true,
    }),
  },
];

function get(path: string) {
  return { method: "GET", path };
}

/** The workerd binary's newest supported compatibility date (it refuses a later one). */
function workerdDate(): string {
  const out = execFileSync(bin("workerd"), ["--version"], { encoding: "utf8" });
  return /(\d{4}-\d{2}-\d{2})/.exec(out)?.[1] ?? "2026-01-01";
}

/**
 * CPU time of a process in ms, all its threads: the first field of each thread's
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds on a CPU), so short runs are not rounded to the
 * 10 ms clock ticks of /proc/<pid>/stat.
 */
function processCpuMs(pid: number): number {
  let ns = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // A thread that ended between the listing and the read.
    }
  }
  return ns / 1e6;
}

/**
 * The floor: answers "ok"; on /log, first writes one log line like the API's request log; on
 * /fetch, first makes one subrequest as an SDK would (no SDK); on /fetch-deadline, the same
 * subrequest with an `AbortSignal.timeout` deadline, as the API's vendor calls carry; on
 * /neon-fetch, the request neon's driver makes for `select 1` (same body and headers).
 */
const EMPTY_WORKER = `export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/log") {
      console.log(JSON.stringify({ level: "info", msg: "request", request_id: crypto.randomUUID(),
        method: "GET", route: "/log", status: 200, latency_ms: 0.1, user_id: null, rate_limit: null }));
    }
    if (path === "/fetch" || path === "/fetch-deadline") {
      const res = await fetch(env.REDIS_URL, {
        method: "POST",
        headers: { authorization: "Bearer " + env.REDIS_TOKEN, "content-type": "application/json" },
        body: '["PING"]',
        ...(path === "/fetch-deadline" ? { signal: AbortSignal.timeout(10000) } : {}),
      });
      await res.json();
    }
    if (path === "/neon-fetch") {
      const res = await fetch(env.NEON_FETCH_ENDPOINT, {
        method: "POST",
        headers: { "Neon-Connection-String": env.NEON_CONNECTION_STRING, "Neon-Raw-Text-Output": "true",
          "Neon-Array-Mode": "true" },
        body: '{"query":"select 1","params":[]}',
      });
      await res.json();
    }
    return new Response("ok");
  },
};`;

/**
 * The connection string neon's driver sends in its `Neon-Connection-String` header: the URL with
 * the `postgresql:` scheme and its own `application_name` (so the bare fetch sends the same bytes).
 */
function neonConnectionString(databaseUrl: string): string {
  const url = new URL(databaseUrl.replace(/^postgres(ql)?:/, "http:"));
  const version = (
    JSON.parse(
      readFileSync(join(ROOT, "node_modules/@neondatabase/serverless/package.json"), "utf8"),
    ) as { version: string }
  ).version;
  url.searchParams.append("application_name", `pkg:npm/%40neondatabase/serverless@${version}`);
  return `postgresql:${url.href.slice("http:".length)}`;
}

/**
 * Builds scripts/bench/sdk-worker.ts as the API is built (wrangler's bundler, minified, the same
 * compatibility flags) into `outDir`/index.js.
 */
function buildSdkWorker(
  outDir: string,
  wrangler: { compatibility_date?: string; compatibility_flags?: string[] },
): void {
  const configFile = join(outDir, "wrangler.json");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(
    configFile,
    JSON.stringify({
      name: "bench-sdk",
      main: join(ROOT, "scripts/bench/sdk-worker.ts"),
      compatibility_date: wrangler.compatibility_date,
      compatibility_flags: wrangler.compatibility_flags ?? [],
      minify: true,
    }),
  );
  execFileSync(
    bin("wrangler"),
    ["deploy", "--dry-run", "--config", configFile, "--outdir", join(outDir, "dist")],
    {
      cwd: outDir,
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    },
  );
}

function capnpConfig(opts: {
  bundle: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  vars: Record<string, string>;
  apiPort: number;
  emptyPort: number;
  /** The SDK Worker's bundle (scripts/bench/sdk-worker.ts, built like the API) and its port. */
  sdk: { bundle: string; port: number };
  /** V8 flags for workerd, e.g. `--perf-basic-prof` so `perf record` can name JS frames. */
  v8Flags?: string[];
  /** A second build of the API (`--baseline`), served beside it with the same bindings. */
  baseline?: { bundle: string; port: number };
}): string {
  const bindings = Object.entries(opts.vars)
    .map(([name, value]) => `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(value)})`)
    .join(",\n      ");
  const flags = opts.compatibilityFlags.map((f) => JSON.stringify(f)).join(", ");
  return `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "api", worker = .api),
    (name = "empty", worker = .empty),
    (name = "sdk", worker = .sdk),
    ${opts.baseline ? '(name = "base", worker = .base),' : ""}
    # Loopback allowed: the local cloud stands in for every vendor.
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  ${opts.v8Flags?.length ? `v8Flags = [${opts.v8Flags.map((f) => JSON.stringify(f)).join(", ")}],` : ""}
  sockets = [
    (name = "api", address = "127.0.0.1:${opts.apiPort}", http = (), service = "api"),
    (name = "empty", address = "127.0.0.1:${opts.emptyPort}", http = (), service = "empty"),
    (name = "sdk", address = "127.0.0.1:${opts.sdk.port}", http = (), service = "sdk"),
    ${opts.baseline ? `(name = "base", address = "127.0.0.1:${opts.baseline.port}", http = (), service = "base"),` : ""}
  ],
);

const api :Workerd.Worker = (
  # Relative to this file: workerd reads embeds from the config's directory.
  modules = [(name = "index.js", esModule = embed ${JSON.stringify(opts.bundle)})],
  compatibilityDate = ${JSON.stringify(opts.compatibilityDate)},
  compatibilityFlags = [${flags}],
  bindings = [
      ${bindings}
  ],
  globalOutbound = "internet",
);

${
  opts.baseline
    ? `const base :Workerd.Worker = (
  modules = [(name = "index.js", esModule = embed ${JSON.stringify(opts.baseline.bundle)})],
  compatibilityDate = ${JSON.stringify(opts.compatibilityDate)},
  compatibilityFlags = [${flags}],
  bindings = [
      ${bindings}
  ],
  globalOutbound = "internet",
);`
    : ""
}

const empty :Workerd.Worker = (
  modules = [(name = "index.js", esModule = ${JSON.stringify(EMPTY_WORKER)})],
  compatibilityDate = ${JSON.stringify(opts.compatibilityDate)},
  bindings = [
    (name = "REDIS_URL", text = ${JSON.stringify(opts.vars.UPSTASH_REDIS_REST_URL ?? "")}),
    (name = "REDIS_TOKEN", text = ${JSON.stringify(opts.vars.UPSTASH_REDIS_REST_TOKEN ?? "")}),
    (name = "NEON_FETCH_ENDPOINT", text = ${JSON.stringify(opts.vars.NEON_FETCH_ENDPOINT ?? "")}),
    (name = "NEON_CONNECTION_STRING", text = ${JSON.stringify(neonConnectionString(opts.vars.DATABASE_URL ?? ""))}),
  ],
  globalOutbound = "internet",
);

const sdk :Workerd.Worker = (
  modules = [(name = "index.js", esModule = embed ${JSON.stringify(opts.sdk.bundle)})],
  compatibilityDate = ${JSON.stringify(opts.compatibilityDate)},
  compatibilityFlags = [${flags}],
  bindings = [
      ${bindings}
  ],
  globalOutbound = "internet",
);
`;
}

async function waitForServer(
  url: string,
  child: ChildProcess,
  log: () => string,
  tries = 200,
): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (child.exitCode !== null) throw new Error(`workerd exited ${child.exitCode}: ${log()}`);
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`workerd never answered on ${url}: ${log()}`);
}

/**
 * `total` requests over `connections` concurrent loops; a wrong status stops the run, a failed
 * `check` is counted (returned).
 */
async function drive(
  base: string,
  ep: Endpoint,
  token: string,
  total: number,
  connections: number,
): Promise<number> {
  let next = 0;
  let problems = 0;
  const loop = async () => {
    for (let i = next++; i < total; i = next++) {
      const r = ep.request(i);
      const res = await fetch(`${base}${r.path}`, {
        method: r.method,
        headers: {
          ...(r.token ? { authorization: `Bearer ${token}` } : {}),
          ...(r.body ? { "content-type": "application/json" } : {}),
        },
        ...(r.body ? { body: JSON.stringify(r.body) } : {}),
      });
      const text = await res.text();
      if (res.status !== ep.status)
        throw new Error(
          `${ep.label}: ${res.status} (expected ${ep.status}): ${text.slice(0, 300)}`,
        );
      if (ep.check?.(res)) problems++;
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  return problems;
}

/** Neon HTTP requests + Upstash REST requests served so far (the local cloud's counters). */
async function vendorRequests(cloudUrl: string): Promise<number> {
  const stats = async (vendor: string) =>
    (await (await fetch(`${cloudUrl}/_control/${vendor}/stats`)).json()) as {
      requests: number | Record<string, number>;
    };
  const count = (r: number | Record<string, number>) =>
    typeof r === "number" ? r : Object.values(r).reduce((a, b) => a + b, 0);
  // Neon counts HTTP requests; Upstash counts them per endpoint (single, pipeline, multi-exec).
  return count((await stats("neon")).requests) + count((await stats("redis")).requests);
}

/** One endpoint on one server (the API, its baseline build, or the empty Worker). */
interface Run {
  ep: Endpoint;
  label: string;
  url: string;
}

interface RoundFigure {
  cpu: number;
  aboveFloor: number;
  perSecond: number;
  vendor: number;
  failedChecks: number;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

function matches(ep: Endpoint, only: string | undefined): boolean {
  return !only || only.split("|").some((part) => ep.label.includes(part));
}

interface CpuRow {
  label: string;
  requests: number;
  rounds: number;
  /** Median over the rounds. */
  cpu_ms_per_request: number;
  cpu_ms_min: number;
  cpu_ms_max: number;
  above_floor_ms: number;
  requests_per_second: number;
  /** Neon and Upstash requests per request (whatever the Worker awaited or not). */
  vendor_calls_per_request: number;
  /** Answers that failed the endpoint's check (e.g. a cache miss among the hits). */
  failed_checks: number;
}

interface ProfileEntry {
  /** The original function name (through the bundle's source map), or V8's for native frames. */
  function: string;
  /** The original source file and line (node_modules/ shortened), or "" for native frames. */
  where: string;
  self_ms: number;
  self_percent: number;
}

/** Chrome DevTools protocol over the workerd inspector: one profile around `work`. */
async function profile(
  inspectorPort: number,
  work: () => Promise<void>,
  sourceMap: SourceMap,
): Promise<{ profile: unknown; top: ProfileEntry[] }> {
  const targets = (await (await fetch(`http://127.0.0.1:${inspectorPort}/json/list`)).json()) as {
    id: string;
    title?: string;
    webSocketDebuggerUrl: string;
  }[];
  const target = targets.find((t) => /api/.test(`${t.title} ${t.id} ${t.webSocketDebuggerUrl}`));
  if (!target) throw new Error(`no inspector target for the api: ${JSON.stringify(targets)}`);
  const ws = new WebSocket(target.webSocketDebuggerUrl);
  await new Promise((ok, fail) => {
    ws.onopen = ok;
    ws.onerror = () => fail(new Error("inspector websocket failed"));
  });
  let id = 0;
  const pending = new Map<number, (result: unknown) => void>();
  ws.onmessage = (event) => {
    const msg = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (msg.id !== undefined) pending.get(msg.id)?.(msg.result);
  };
  const send = (method: string, params: object = {}) =>
    new Promise<unknown>((done) => {
      const n = ++id;
      pending.set(n, done);
      ws.send(JSON.stringify({ id: n, method, params }));
    });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 100 });
  await send("Profiler.start");
  await work();
  const { profile } = (await send("Profiler.stop")) as { profile: CpuProfile };
  ws.close();
  return { profile, top: topSelfTime(profile, 15, sourceMap) };
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time per function (samples at the node itself), summed over nodes of the same original
 * function: the minified frames are named through the bundle's source map.
 */
function topSelfTime(p: CpuProfile, n: number, sourceMap: SourceMap): ProfileEntry[] {
  const byNode = new Map(p.nodes.map((node) => [node.id, node]));
  const self = new Map<string, { function: string; where: string; us: number }>();
  let total = 0;
  p.samples.forEach((nodeId, i) => {
    // A sample's time is the delta to the next sample (Chrome DevTools' attribution).
    const us = p.timeDeltas[i + 1] ?? 0;
    const frame = byNode.get(nodeId)?.callFrame;
    // Idle is the isolate waiting (for I/O): not CPU.
    if (!frame || frame.functionName === "(idle)") return;
    total += us;
    let fn = frame.functionName || "(anonymous)";
    let where = "";
    if (frame.url) {
      const original = sourceMap.findEntry(frame.lineNumber, frame.columnNumber) as {
        originalSource?: string;
        originalLine?: number;
        name?: string;
      };
      fn = original.name || fn;
      where = `${(original.originalSource ?? frame.url)
        .replace(/^.*node_modules\//, "")
        .replace(/^.*?\/src\//, "src/")}:${(original.originalLine ?? frame.lineNumber) + 1}`;
    }
    const key = `${fn}|${where}`;
    const row = self.get(key) ?? { function: fn, where, us: 0 };
    row.us += us;
    self.set(key, row);
  });
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map((row) => ({
      function: row.function,
      where: row.where,
      self_ms: Number((row.us / 1000).toFixed(1)),
      self_percent: Number(((row.us / total) * 100).toFixed(1)),
    }));
}

export async function runCpuBench(opts: {
  requests: number;
  connections: number;
  /** Timed passes over every endpoint; the rows report the median. */
  rounds: number;
  /** Endpoints whose label contains this text (`|` joins alternatives); the floor always runs. */
  only?: string;
  /** Takes the per-endpoint CPU profiles (a second workerd, with the inspector). */
  profile: boolean;
  /**
   * A directory holding another build's `index.js` (`wrangler deploy --dry-run --outdir DIR`,
   * e.g. of the commit before a change): served beside this build and measured in the same
   * rounds, so the two compare under the same load.
   */
  baseline?: string;
  /**
   * Runs workerd under valgrind's callgrind and reports thousands of instructions per request
   * instead of CPU ms: a count the machine's other load does not move (about 50× slower).
   */
  callgrind?: boolean;
  /** Passed to workerd's V8 (`--v8-flags "--perf-basic-prof"`, to read the run with perf). */
  v8Flags?: string[];
  json?: string;
}): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "bench-cpu-"));
  const work_ = work;
  let workerd: ChildProcess | undefined;
  let cloud: Awaited<ReturnType<typeof startLocalCloud>> | undefined;
  try {
    console.log("building the Worker (wrangler deploy --dry-run)…");
    execFileSync(bin("wrangler"), ["deploy", "--dry-run", "--outdir", join(work, "dist")], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
    });
    const wrangler = unstable_readConfig({ config: join(ROOT, "wrangler.jsonc") });
    buildSdkWorker(join(work, "sdk"), wrangler);
    if (opts.baseline) {
      mkdirSync(join(work, "baseline"));
      copyFileSync(join(opts.baseline, "index.js"), join(work, "baseline/index.js"));
    }
    const apiPort = await freePort();
    const emptyPort = await freePort();
    const sdkPort = await freePort();
    const basePort = await freePort();
    const inspectorPort = await freePort();
    const apiUrl = `http://127.0.0.1:${apiPort}`;
    const config = testCloudConfig({ stripeWebhookUrl: `${apiUrl}/webhook/stripe` });
    cloud = await startLocalCloud(config, ALL_SERVICES);
    const vars: Record<string, string> = {
      ...(wrangler.vars as Record<string, string>),
      APP_URL: apiUrl,
      ALLOWED_REDIRECT_ORIGINS: "http://localhost:3000",
      OTP_DELIVERY: "response",
      ...workerVarsFor(cloud.url, config),
      ...selfHostVars(),
    };
    const date = [wrangler.compatibility_date ?? "", workerdDate()].sort()[0] as string;
    writeFileSync(
      join(work, "config.capnp"),
      capnpConfig({
        bundle: "dist/index.js",
        compatibilityDate: date,
        compatibilityFlags: wrangler.compatibility_flags ?? [],
        vars,
        apiPort,
        emptyPort,
        sdk: { bundle: "sdk/dist/sdk-worker.js", port: sdkPort },
        ...(opts.baseline ? { baseline: { bundle: "baseline/index.js", port: basePort } } : {}),
        ...(opts.v8Flags ? { v8Flags: opts.v8Flags } : {}),
      }),
    );
    const startWorkerd = async (inspector?: number, callgrind?: string) => {
      let log = "";
      const serve = [
        bin("workerd"),
        "serve",
        join(work, "config.capnp"),
        ...(inspector ? [`--inspector-addr=127.0.0.1:${inspector}`] : []),
      ];
      // Under callgrind (instrumentation off until a measured run turns it on) the counts are
      // instructions, which the machine's other load does not change.
      const [command, ...args] = callgrind
        ? [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--smc-check=all-non-file",
            `--callgrind-out-file=${callgrind}`,
            ...serve,
          ]
        : serve;
      const child = spawn(command as string, args, { stdio: ["ignore", "pipe", "pipe"] });
      child.stdout?.on("data", (d) => {
        log = (log + String(d)).slice(-4000);
      });
      child.stderr?.on("data", (d) => {
        log = (log + String(d)).slice(-4000);
      });
      // Under valgrind the bundle takes far longer to start.
      const tries = callgrind ? 4000 : 200;
      await waitForServer(`http://127.0.0.1:${emptyPort}/`, child, () => log, tries);
      await waitForServer(`${apiUrl}/no-such-route`, child, () => log, tries);
      await waitForServer(`http://127.0.0.1:${sdkPort}/`, child, () => log, tries);
      return child;
    };
    // The timed runs have no inspector attached: with one, every console.log also becomes an
    // inspector event, which a deployed Worker does not pay.
    const callgrindOut = join(work, "callgrind.out");
    workerd = await startWorkerd(undefined, opts.callgrind ? callgrindOut : undefined);
    const pid = workerd.pid as number;
    /** Instructions executed while `work` runs (callgrind: zero, instrument, dump, read). */
    const callgrindDir = join(
      ROOT,
      "bench-results",
      `callgrind-${new Date().toISOString().replace(/[:.]/g, "-")}`,
    );
    if (opts.callgrind) mkdirSync(callgrindDir, { recursive: true });
    const instructions = async (work: () => Promise<number>, label: string) => {
      const control = (...args: string[]) =>
        execFileSync("callgrind_control", [...args, String(pid)], { stdio: "ignore" });
      control("-z");
      control("-i", "on");
      const result = await work();
      control("-d");
      control("-i", "off");
      const dumps = readdirSync(work_).filter((f) => f.startsWith("callgrind.out."));
      const latest = dumps.sort((a, b) => Number(a.split(".").pop()) - Number(b.split(".").pop()));
      const dump = join(work_, latest.at(-1) as string);
      // Kept (bench-results/ is gitignored) for `callgrind_annotate --inclusive=yes <file>`: the
      // native functions (workerd's fetch, URL, Headers; V8's runtime) are named there.
      copyFileSync(
        dump,
        join(callgrindDir, `${label.replace(/\W+/g, "-").replace(/^-|-$/g, "").toLowerCase()}.out`),
      );
      const text = readFileSync(dump, "utf8");
      return { count: Number(/^summary: (\d+)/m.exec(text)?.[1] ?? Number.NaN), result };
    };

    const target: Target = { baseUrl: apiUrl };
    const session = await createSession(target);
    const writer = await createSession(target);
    await createChatroom(target, session.token, "cpu bench");
    const baseUrl = `http://127.0.0.1:${basePort}`;
    // Fills the list cache (written back under waitUntil), so the measured GET /chatroom
    // requests are hits (the baseline build shares the cache: same Redis, same user).
    for (let i = 0; ; i++) {
      const res = await fetch(`${apiUrl}/chatroom`, {
        headers: { authorization: `Bearer ${session.token}` },
      });
      await res.arrayBuffer();
      if (res.headers.get("x-cache") === "HIT") break;
      if (i > 100) throw new Error("GET /chatroom never answered from the cache");
      await new Promise((r) => setTimeout(r, 20));
    }

    const floor = ENDPOINTS[0] as Endpoint;
    // With --baseline every API endpoint is measured on both builds, in alternating order from
    // round to round, so drifting load falls on both alike.
    const runs: Run[] = ENDPOINTS.filter((ep) => ep === floor || matches(ep, opts.only)).flatMap(
      (ep): Run[] =>
        ep.server !== "api"
          ? [
              {
                ep,
                label: ep.label,
                url: `http://127.0.0.1:${ep.server === "sdk" ? sdkPort : emptyPort}`,
              },
            ]
          : opts.baseline
            ? [
                { ep, label: ep.label, url: apiUrl },
                { ep, label: `${ep.label} [baseline]`, url: baseUrl },
              ]
            : [{ ep, label: ep.label, url: apiUrl }],
    );
    // Each round measures every endpoint once, the floor first: a row's "above floor" is taken
    // against the floor of its own round (the load of a shared machine drifts between rounds),
    // and the rows report the median over the rounds.
    const unit = opts.callgrind ? "k instructions" : "CPU ms";
    const perRound = new Map<Run, RoundFigure[]>(runs.map((run) => [run, []]));
    if (opts.callgrind) {
      // The first instrumented run read ~70k instructions per request more than the next ones
      // in every run (the floor: 295k in round 1, 223k in round 2): one pass of the floor,
      // discarded, takes that before anything is counted. Single runs still read high now and
      // then (a GC, a compile), so with --callgrind compare minimums over several rounds.
      const first = runs[0] as Run;
      await instructions(
        () => drive(first.url, first.ep, session.token, opts.requests, opts.connections),
        "discarded first pass",
      );
    }
    for (let round = 0; round < opts.rounds; round++) {
      let floorCpu = 0;
      const order = round % 2 === 0 ? runs : [...runs].reverse();
      for (const run of [runs[0] as Run, ...order.filter((r) => r !== runs[0])]) {
        const { ep } = run;
        const token = ep.writer ? writer.token : session.token;
        if (round === 0) {
          // Under callgrind, long enough for V8 to have compiled the hot paths (its compiler
          // threads count too), so the measured requests are the steady state.
          const warmUp = opts.callgrind ? opts.requests * 3 : Math.ceil(opts.requests / 10);
          await drive(run.url, ep, token, warmUp, opts.connections);
        }
        const vendorBefore = await vendorRequests(cloud.url);
        const cpuBefore = processCpuMs(pid);
        const started = performance.now();
        let failedChecks: number;
        let cpu: number;
        if (opts.callgrind) {
          // Thousands of instructions per request instead of milliseconds.
          const counted = await instructions(
            () => drive(run.url, ep, token, opts.requests, opts.connections),
            `${run.label} round ${round + 1}`,
          );
          failedChecks = counted.result;
          cpu = counted.count / opts.requests / 1000;
        } else {
          failedChecks = await drive(run.url, ep, token, opts.requests, opts.connections);
          cpu = (processCpuMs(pid) - cpuBefore) / opts.requests;
        }
        const seconds = (performance.now() - started) / 1000;
        const vendor = ((await vendorRequests(cloud.url)) - vendorBefore) / opts.requests;
        if (ep === floor) floorCpu = cpu;
        perRound.get(run)?.push({
          cpu,
          aboveFloor: cpu - floorCpu,
          perSecond: opts.requests / seconds,
          vendor,
          failedChecks,
        });
        console.log(
          `round ${round + 1}/${opts.rounds} ${run.label}: ${cpu.toFixed(3)} ${unit} per request`,
        );
      }
    }
    const rows: CpuRow[] = runs.map((run) => {
      const figures = perRound.get(run) ?? [];
      const cpus = figures.map((f) => f.cpu);
      return {
        label: run.label,
        requests: opts.requests,
        rounds: figures.length,
        cpu_ms_per_request: median(cpus),
        cpu_ms_min: Math.min(...cpus),
        cpu_ms_max: Math.max(...cpus),
        above_floor_ms: median(figures.map((f) => f.aboveFloor)),
        requests_per_second: Math.round(median(figures.map((f) => f.perSecond))),
        vendor_calls_per_request: median(figures.map((f) => f.vendor)),
        failed_checks: figures.reduce((sum, f) => sum + f.failedChecks, 0),
      };
    });
    const measured = runs.filter((r) => r.url === apiUrl).map((r) => r.ep);
    workerd.kill();
    const load = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
    console.log(
      `\nCPU per request: built Worker in plain workerd ${date}, ${opts.connections} connections, ${opts.requests} requests per endpoint, each alone; median of ${opts.rounds} round(s), "above floor" against the floor of the same round; load average ${load}\n${table(
        [
          "endpoint",
          `${unit}/request`,
          "min-max",
          "above floor",
          "vendor calls",
          "req/s",
          "failed checks",
        ],
        rows.map((r) => [
          r.label,
          r.cpu_ms_per_request.toFixed(3),
          `${r.cpu_ms_min.toFixed(3)}-${r.cpu_ms_max.toFixed(3)}`,
          r.above_floor_ms.toFixed(3),
          r.vendor_calls_per_request.toFixed(2),
          r.requests_per_second,
          r.failed_checks,
        ]),
      )}`,
    );

    let profiles: { endpoint: string; file: string; top: ProfileEntry[] }[] = [];
    if (opts.profile) {
      // A second workerd, with the inspector, for the profiles only (its figures are not timed).
      workerd = await startWorkerd(inspectorPort);
      const outDir = join(ROOT, "bench-results");
      mkdirSync(outDir, { recursive: true });
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      // The bundle's source map beside the profiles, so DevTools (and the table below) can name
      // the minified functions.
      const mapFile = join(outDir, `cpu-${stamp}.index.js.map`);
      copyFileSync(join(work, "dist/index.js.map"), mapFile);
      const sourceMap = new SourceMap(JSON.parse(readFileSync(mapFile, "utf8")));
      const each = Math.ceil(opts.requests / 4);
      for (const ep of measured.filter((e) => e.server === "api")) {
        const { profile: cpuProfile, top } = await profile(
          inspectorPort,
          () =>
            drive(
              apiUrl,
              ep,
              ep.writer ? writer.token : session.token,
              each,
              opts.connections,
            ).then(() => {}),
          sourceMap,
        );
        const slug = ep.label.replace(/\W+/g, "-").replace(/^-|-$/g, "").toLowerCase();
        const file = join(outDir, `cpu-${stamp}-${slug}.cpuprofile`);
        writeFileSync(file, JSON.stringify(cpuProfile));
        profiles.push({ endpoint: ep.label, file, top });
        console.log(
          `\nprofile of ${ep.label}, ${each} requests, top self time (the inspector also turns every console.log into an event, so the log writer reads high here):\n${table(
            ["function", "where", "self ms", "%"],
            top.map((t) => [t.function, t.where, t.self_ms.toFixed(1), t.self_percent.toFixed(1)]),
          )}`,
        );
      }
      console.log(`\nprofiles saved: ${outDir}/cpu-${stamp}-*.cpuprofile (source map: ${mapFile})`);
    } else {
      profiles = [];
    }
    if (opts.json) {
      writeFileSync(
        opts.json,
        JSON.stringify({ compatibility_date: date, load, ...opts, rows, profiles }, null, 2),
      );
    }
  } finally {
    workerd?.kill();
    await cloud?.close();
    rmSync(work, { recursive: true, force: true });
  }
}
