// CPU use of the processes a run starts, sampled from /proc (Linux only): user + system time of
// each process (fields 14 and 15 of /proc/<pid>/stat) and of its busiest thread
// (/proc/<pid>/task/<tid>/stat), once a second, next to the whole machine's (/proc/stat). A
// JavaScript event loop saturates when its thread nears 100 % of one core, whatever the rest of
// the process does, so the busiest thread is what says which process saturates first.
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { cpus } from "node:os";

export interface CpuTarget {
  label: string;
  pids: number[];
}

export interface CpuRow {
  label: string;
  pids: number[];
  /** CPU seconds over the sampled span (all threads). */
  cpu_seconds: number;
  /** Mean share of one core over the span, all threads (100 = one core busy all along). */
  mean_core_pct: number;
  /** The busiest thread's mean share of one core, and its name. */
  busiest_thread_pct: number;
  busiest_thread: string;
  /** The 1-second samples' 95th percentile of the busiest thread's share of one core. */
  busiest_thread_p95_pct: number;
}

export interface CpuReport {
  seconds: number;
  cores: number;
  /** The whole machine busy, % of all cores (other jobs included). */
  machine_busy_pct: number;
  /** Of that, what the sampled processes do not account for (other jobs on the machine). */
  others_core_pct: number;
  rows: CpuRow[];
}

const TICKS_PER_SECOND = (() => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** utime + stime of a /proc stat line, in ms; null once the process has gone. */
function statCpuMs(path: string): number | null {
  try {
    const stat = readFileSync(path, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After "pid (comm) ", field 3 (state) is index 0: utime is field 14 → index 11, stime 12.
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND;
  } catch {
    return null;
  }
}

function threadsOf(pid: number): { tid: number; name: string; ms: number }[] {
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const out: { tid: number; name: string; ms: number }[] = [];
  for (const t of tids) {
    const ms = statCpuMs(`/proc/${pid}/task/${t}/stat`);
    if (ms === null) continue;
    let name = "?";
    try {
      name = readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim();
    } catch {}
    out.push({ tid: Number(t), name, ms });
  }
  return out;
}

/** Every live process below `root` (children, grandchildren...), with its command name. */
export function descendantsOf(root: number): { pid: number; comm: string }[] {
  const parent = new Map<number, number>();
  const comm = new Map<number, string>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const close = stat.lastIndexOf(")");
      comm.set(Number(entry), stat.slice(stat.indexOf("(") + 1, close));
      parent.set(Number(entry), Number(stat.slice(close + 2).split(" ")[1]));
    } catch {}
  }
  const out: { pid: number; comm: string }[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [pid, ppid] of parent) {
      if (ppid === p) {
        out.push({ pid, comm: comm.get(pid) ?? "?" });
        queue.push(pid);
      }
    }
  }
  return out;
}

/** Pids (among `candidates`) holding the socket that listens on TCP `port`. */
export function listenersOf(port: number, candidates: number[]): number[] {
  const inodes = new Set<string>();
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    if (!existsSync(table)) continue;
    for (const line of readFileSync(table, "utf8").split("\n").slice(1)) {
      const cols = line.trim().split(/\s+/);
      // local_address is ADDR:PORT; st 0A is LISTEN; inode is column 10.
      if (cols[1]?.endsWith(`:${hex}`) && cols[3] === "0A" && cols[9]) inodes.add(cols[9]);
    }
  }
  return candidates.filter((pid) => {
    try {
      return readdirSync(`/proc/${pid}/fd`).some((fd) => {
        try {
          const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
          return inodes.has(link.slice("socket:[".length, -1));
        } catch {
          return false;
        }
      });
    } catch {
      return false;
    }
  });
}

/** busy and total jiffies of the whole machine (first line of /proc/stat). */
function machineJiffies(): { busy: number; total: number } {
  const cols = (readFileSync("/proc/stat", "utf8").split("\n")[0] ?? "")
    .trim()
    .split(/\s+/)
    .slice(1, 9)
    .map(Number);
  const total = cols.reduce((a, b) => a + b, 0);
  const idle = (cols[3] ?? 0) + (cols[4] ?? 0);
  return { busy: total - idle, total };
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? 0;
}

/**
 * Samples `targets` every `intervalMs` until `stop()`, which answers the report. Processes that
 * exit meanwhile keep the CPU they had used at their last sample.
 */
export function sampleCpu(targets: CpuTarget[], intervalMs = 1000): { stop(): CpuReport } {
  const started = performance.now();
  const machineStart = machineJiffies();
  type ThreadTotals = Map<string, { name: string; ms: number }>;
  const read = (t: CpuTarget): ThreadTotals => {
    const m: ThreadTotals = new Map();
    for (const pid of t.pids) {
      for (const th of threadsOf(pid)) m.set(`${pid}/${th.tid}`, { name: th.name, ms: th.ms });
    }
    return m;
  };
  const first = targets.map(read);
  const last = first.map((m) => new Map(m));
  const processMs = targets.map((t) => t.pids.map((pid) => statCpuMs(`/proc/${pid}/stat`) ?? 0));
  const processLast = processMs.map((a) => [...a]);
  const busiestSamples: number[][] = targets.map(() => []);
  const previous = first.map((m) => new Map(m));
  let previousAt = started;

  const tick = () => {
    const now = performance.now();
    const span = now - previousAt;
    targets.forEach((t, i) => {
      const current = read(t);
      let busiest = 0;
      for (const [key, th] of current) {
        const before = previous[i]?.get(key)?.ms ?? th.ms;
        busiest = Math.max(busiest, (th.ms - before) / span);
        last[i]?.set(key, th);
      }
      busiestSamples[i]?.push(busiest * 100);
      previous[i] = current;
      t.pids.forEach((pid, j) => {
        const ms = statCpuMs(`/proc/${pid}/stat`);
        if (ms !== null && processLast[i]) processLast[i][j] = ms;
      });
    });
    previousAt = now;
  };
  const timer = setInterval(tick, intervalMs);
  timer.unref();

  return {
    stop() {
      clearInterval(timer);
      tick();
      const seconds = (performance.now() - started) / 1000;
      const machineEnd = machineJiffies();
      const cores = cpus().length;
      const machineBusy =
        (100 * (machineEnd.busy - machineStart.busy)) /
        Math.max(1, machineEnd.total - machineStart.total);
      const rows: CpuRow[] = targets.map((t, i) => {
        const cpuMs = (processLast[i] ?? []).reduce(
          (sum, ms, j) => sum + ms - (processMs[i]?.[j] ?? 0),
          0,
        );
        // The thread with the most CPU over the whole span.
        let top = { name: "-", ms: 0 };
        for (const [key, th] of last[i] ?? []) {
          const used = th.ms - (first[i]?.get(key)?.ms ?? 0);
          if (used > top.ms) top = { name: th.name, ms: used };
        }
        const samples = [...(busiestSamples[i] ?? [])].sort((a, b) => a - b);
        return {
          label: t.label,
          pids: t.pids,
          cpu_seconds: round(cpuMs / 1000),
          mean_core_pct: round((100 * cpuMs) / 1000 / seconds),
          busiest_thread_pct: round((100 * top.ms) / 1000 / seconds),
          busiest_thread: top.name,
          busiest_thread_p95_pct: round(percentile(samples, 0.95)),
        };
      });
      const ours = rows.reduce((sum, r) => sum + r.mean_core_pct, 0);
      return {
        seconds: round(seconds),
        cores,
        machine_busy_pct: round(machineBusy),
        others_core_pct: round(Math.max(0, machineBusy * cores - ours)),
        rows,
      };
    },
  };
}

function round(n: number): number {
  return Math.round(n * 10) / 10;
}
