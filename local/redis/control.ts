import { Hono } from "hono";

export type FaultMode = "down" | "error" | "slow";

export interface Fault {
  mode: FaultMode;
  /** Delay for `slow`. */
  ms: number;
  /** Applies only to requests whose raw JSON body (or GET path) contains this; "" = all. */
  match: string;
}

/**
 * Switchable failures. A fault with `match` hits only requests mentioning that string (a key
 * prefix or user id), so test files sharing one local cloud don't break each other; a fault
 * without it is global and stays until reset with mode "none".
 */
export class Faults {
  #byMatch = new Map<string, Fault>();

  set(fault: Fault): void {
    this.#byMatch.set(fault.match, fault);
  }

  clear(match?: string): void {
    if (match === undefined) this.#byMatch.clear();
    else this.#byMatch.delete(match);
  }

  find(requestText: string): Fault | undefined {
    const global = this.#byMatch.get("");
    if (global) return global;
    for (const f of this.#byMatch.values()) {
      if (requestText.includes(f.match)) return f;
    }
    return undefined;
  }

  list(): Fault[] {
    return [...this.#byMatch.values()];
  }
}

export class Stats {
  requests = { single: 0, pipeline: 0, multi_exec: 0 };
  commands: Record<string, number> = {};
  errors = 0;
  unauthorized = 0;
  faults_triggered = 0;

  count(commands: string[][]): void {
    for (const [name = ""] of commands) {
      const key = name.toUpperCase();
      this.commands[key] = (this.commands[key] ?? 0) + 1;
    }
  }

  reset(): void {
    this.requests = { single: 0, pipeline: 0, multi_exec: 0 };
    this.commands = {};
    this.errors = 0;
    this.unauthorized = 0;
    this.faults_triggered = 0;
  }
}

const MODES = new Set(["down", "error", "slow", "none"]);

/**
 * `/_control/redis`:
 *   POST /fault  {"mode":"down"|"error"|"slow"|"none","ms"?:number,"match"?:string}
 *   GET  /stats  command counts per name, requests per endpoint, errors, faults
 *   POST /stats/reset
 */
export function createControlApp(backend: string, faults: Faults, stats: Stats): Hono {
  const control = new Hono();
  control.post("/fault", async (c) => {
    const body = (await c.req.json().catch(() => ({}))) as {
      mode?: unknown;
      ms?: unknown;
      match?: unknown;
    };
    if (typeof body.mode !== "string" || !MODES.has(body.mode)) {
      return c.json({ error: 'mode must be one of "down", "error", "slow", "none"' }, 400);
    }
    const match = typeof body.match === "string" ? body.match : undefined;
    if (body.mode === "none") faults.clear(match);
    else {
      const ms = typeof body.ms === "number" && body.ms >= 0 ? body.ms : 2000;
      faults.set({ mode: body.mode as FaultMode, ms, match: match ?? "" });
    }
    return c.json({ faults: faults.list() });
  });
  control.get("/stats", (c) =>
    c.json({
      backend,
      requests: stats.requests,
      commands: stats.commands,
      errors: stats.errors,
      unauthorized: stats.unauthorized,
      faults_triggered: stats.faults_triggered,
      faults: faults.list(),
    }),
  );
  control.post("/stats/reset", (c) => {
    stats.reset();
    return c.json({ ok: true });
  });
  return control;
}
