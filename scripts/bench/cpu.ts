// `npm run bench -- --cpu`: the CPU time Cloudflare bills, per request. Builds the Worker as it is
// deployed (`wrangler deploy --dry-run`), serves the bundle with plain `workerd serve` (no
// wrangler dev wrapper, no proxy) beside an empty Worker, against the local cloud in this
// process, and drives each endpoint alone with N connections. CPU per request is the workerd
// process's user+system time (/proc/<pid>/stat) over the run divided by the requests; the empty
// Worker's figure is the floor any request pays. Then takes a CPU profile over the inspector
// and prints the top self-time entries (the .cpuprofile goes to bench-results/).
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
  /** On the empty Worker, or on the API. */
  server: "api" | "empty";
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

/** user+system CPU of a process in ms (fields 14 and 15 of /proc/<pid>/stat, in clock ticks). */
function processCpuMs(pid: number, ticksPerSecond: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // After "pid (comm) ", field 3 (state) is index 0: utime is field 14 → index 11, stime index 12.
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}

/**
 * The floor: answers "ok"; on /log, first writes one log line like the API's request log; on
 * /fetch, first makes one subrequest as an SDK would (no SDK).
 */
const EMPTY_WORKER = `export default {
  async fetch(request, env) {
    const path = new URL(request.url).pathname;
    if (path === "/log") {
      console.log(JSON.stringify({ level: "info", msg: "request", request_id: crypto.randomUUID(),
        method: "GET", route: "/log", status: 200, latency_ms: 0.1, user_id: null, rate_limit: null }));
    }
    if (path === "/fetch") {
      const res = await fetch(env.REDIS_URL, {
        method: "POST",
        headers: { authorization: "Bearer " + env.REDIS_TOKEN, "content-type": "application/json" },
        body: '["PING"]',
      });
      await res.json();
    }
    return new Response("ok");
  },
};`;

function capnpConfig(opts: {
  bundle: string;
  compatibilityDate: string;
  compatibilityFlags: string[];
  vars: Record<string, string>;
  apiPort: number;
  emptyPort: number;
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
    # Loopback allowed: the local cloud stands in for every vendor.
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [
    (name = "api", address = "127.0.0.1:${opts.apiPort}", http = (), service = "api"),
    (name = "empty", address = "127.0.0.1:${opts.emptyPort}", http = (), service = "empty"),
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

const empty :Workerd.Worker = (
  modules = [(name = "index.js", esModule = ${JSON.stringify(EMPTY_WORKER)})],
  compatibilityDate = ${JSON.stringify(opts.compatibilityDate)},
  bindings = [
    (name = "REDIS_URL", text = ${JSON.stringify(opts.vars.UPSTASH_REDIS_REST_URL ?? "")}),
    (name = "REDIS_TOKEN", text = ${JSON.stringify(opts.vars.UPSTASH_REDIS_REST_TOKEN ?? "")}),
  ],
  globalOutbound = "internet",
);
`;
}

async function waitForServer(url: string, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
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
      await res.arrayBuffer();
      if (res.status !== ep.status)
        throw new Error(`${ep.label}: ${res.status} (expected ${ep.status})`);
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

interface CpuRow {
  label: string;
  requests: number;
  cpu_ms_per_request: number;
  above_floor_ms: number;
  requests_per_second: number;
  /** Neon and Upstash requests per request (whatever the Worker awaited or not). */
  vendor_calls_per_request: number;
  /** Answers that failed the endpoint's check (e.g. a cache miss among the hits). */
  failed_checks: number;
}

interface ProfileEntry {
  function: string;
  url: string;
  line: number;
  self_ms: number;
  self_percent: number;
}

/** Chrome DevTools protocol over the workerd inspector: one profile around `work`. */
async function profile(
  inspectorPort: number,
  work: () => Promise<void>,
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
  return { profile, top: topSelfTime(profile, 15) };
}

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function (samples at the node itself), summed over nodes of the same frame. */
function topSelfTime(p: CpuProfile, n: number): ProfileEntry[] {
  const byNode = new Map(p.nodes.map((node) => [node.id, node]));
  const self = new Map<string, { entry: Omit<ProfileEntry, "self_percent">; us: number }>();
  let total = 0;
  p.samples.forEach((nodeId, i) => {
    // A sample's time is the delta to the next sample (Chrome DevTools' attribution).
    const us = p.timeDeltas[i + 1] ?? 0;
    const frame = byNode.get(nodeId)?.callFrame;
    // Idle is the isolate waiting (for I/O): not CPU.
    if (!frame || frame.functionName === "(idle)") return;
    total += us;
    const key = `${frame.functionName}|${frame.url}|${frame.lineNumber}`;
    const row = self.get(key) ?? {
      entry: {
        function: frame.functionName || "(anonymous)",
        url: frame.url,
        line: frame.lineNumber + 1,
        self_ms: 0,
      },
      us: 0,
    };
    row.us += us;
    self.set(key, row);
  });
  return [...self.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, n)
    .map(({ entry, us }) => ({
      ...entry,
      self_ms: Number((us / 1000).toFixed(1)),
      self_percent: Number(((us / total) * 100).toFixed(1)),
    }));
}

export async function runCpuBench(opts: {
  requests: number;
  connections: number;
  json?: string;
}): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), "bench-cpu-"));
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
    const apiPort = await freePort();
    const emptyPort = await freePort();
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
      }),
    );
    let log = "";
    workerd = spawn(
      bin("workerd"),
      ["serve", join(work, "config.capnp"), `--inspector-addr=127.0.0.1:${inspectorPort}`],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    workerd.stdout?.on("data", (d) => {
      log = (log + String(d)).slice(-4000);
    });
    workerd.stderr?.on("data", (d) => {
      log = (log + String(d)).slice(-4000);
    });
    const pid = workerd.pid as number;
    await waitForServer(`http://127.0.0.1:${emptyPort}/`, workerd, () => log);
    await waitForServer(`${apiUrl}/no-such-route`, workerd, () => log);

    const target: Target = { baseUrl: apiUrl };
    const session = await createSession(target);
    await createChatroom(target, session.token, "cpu bench");
    // Fills the list cache (written back under waitUntil), so the measured GET /chatroom
    // requests are hits.
    for (let i = 0; ; i++) {
      const res = await fetch(`${apiUrl}/chatroom`, {
        headers: { authorization: `Bearer ${session.token}` },
      });
      await res.arrayBuffer();
      if (res.headers.get("x-cache") === "HIT") break;
      if (i > 100) throw new Error("GET /chatroom never answered from the cache");
      await new Promise((r) => setTimeout(r, 20));
    }

    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
    const rows: CpuRow[] = [];
    for (const ep of ENDPOINTS) {
      const base = ep.server === "empty" ? `http://127.0.0.1:${emptyPort}` : apiUrl;
      await drive(base, ep, session.token, Math.ceil(opts.requests / 10), opts.connections);
      const vendorBefore = await vendorRequests(cloud.url);
      const cpuBefore = processCpuMs(pid, ticks);
      const started = performance.now();
      const failedChecks = await drive(base, ep, session.token, opts.requests, opts.connections);
      const seconds = (performance.now() - started) / 1000;
      const cpu = (processCpuMs(pid, ticks) - cpuBefore) / opts.requests;
      const vendor = ((await vendorRequests(cloud.url)) - vendorBefore) / opts.requests;
      rows.push({
        label: ep.label,
        requests: opts.requests,
        cpu_ms_per_request: cpu,
        above_floor_ms: cpu - (rows[0]?.cpu_ms_per_request ?? cpu),
        requests_per_second: Math.round(opts.requests / seconds),
        vendor_calls_per_request: vendor,
        failed_checks: failedChecks,
      });
      console.log(`${ep.label}: ${cpu.toFixed(3)} ms CPU per request`);
    }

    const profiled = ENDPOINTS.filter((e) => e.server === "api");
    const { profile: cpuProfile, top } = await profile(inspectorPort, async () => {
      for (const ep of profiled) {
        await drive(apiUrl, ep, session.token, Math.ceil(opts.requests / 4), opts.connections);
      }
    });
    const outDir = join(ROOT, "bench-results");
    mkdirSync(outDir, { recursive: true });
    const profileFile = join(
      outDir,
      `cpu-${new Date().toISOString().replace(/[:.]/g, "-")}.cpuprofile`,
    );
    writeFileSync(profileFile, JSON.stringify(cpuProfile));

    console.log(
      `\nCPU per request: built Worker in plain workerd ${date}, ${opts.connections} connections, ${opts.requests} requests per endpoint, each alone\n${table(
        ["endpoint", "CPU ms/request", "above floor", "vendor calls", "req/s", "failed checks"],
        rows.map((r) => [
          r.label,
          r.cpu_ms_per_request.toFixed(3),
          r.above_floor_ms.toFixed(3),
          r.vendor_calls_per_request.toFixed(2),
          r.requests_per_second,
          r.failed_checks,
        ]),
      )}`,
    );
    console.log(
      `\nprofile (${profiled.map((e) => e.label.split(" (")[0]).join(", ")}; ${Math.ceil(opts.requests / 4)} requests each), top self time:\n${table(
        ["function", "where", "self ms", "%"],
        top.map((t) => [
          t.function,
          `${t.url.replace(/^.*\//, "")}:${t.line}`,
          t.self_ms.toFixed(1),
          t.self_percent.toFixed(1),
        ]),
      )}\nprofile saved: ${profileFile}`,
    );
    if (opts.json) {
      writeFileSync(
        opts.json,
        JSON.stringify(
          { compatibility_date: date, ...opts, rows, profile_top: top, profile_file: profileFile },
          null,
          2,
        ),
      );
    }
  } finally {
    workerd?.kill();
    await cloud?.close();
    rmSync(work, { recursive: true, force: true });
  }
}
