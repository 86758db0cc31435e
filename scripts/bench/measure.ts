// Measuring one case at one vendor latency, and deriving its sequential round trips.
import { summarize } from "../support/http.ts";
import type { Case } from "./cases/index.ts";
import type { Harness } from "./harness.ts";

export interface Measured {
  label: string;
  target: number | undefined;
  note: string | undefined;
  samples: number;
  at: Record<number, { p50: number; p95: number }>;
  rounds: number;
  pass: boolean | null;
}

export interface MeasureOptions {
  samples: number;
  warmup: number;
}

/**
 * Prepares the case's fixtures at latency 0, switches `latency` on, sends the warm-ups and the
 * measured requests one after another, and switches the latency off again.
 */
export async function measureAt(
  h: Harness,
  c: Case,
  latency: number,
  opts: MeasureOptions,
): Promise<{ p50: number; p95: number }> {
  const count = (c.samples ?? opts.samples) + opts.warmup;
  await h.setLatency(0);
  const requests = await c.prepare(count);
  await h.setLatency(latency);
  const times: number[] = [];
  try {
    for (const [i, send] of requests.entries()) {
      const r = await send();
      if (i >= opts.warmup) times.push(r.ms);
    }
  } finally {
    await h.setLatency(0);
  }
  const s = summarize(times);
  return { p50: s.p50, p95: s.p95 };
}

/**
 * The case at latency 0 and at `latency`: an endpoint making N sequential vendor round trips is
 * N × latency slower, so rounds = round((p50@latency − p50@0) / latency).
 */
export async function measureCase(
  h: Harness,
  c: Case,
  latency: number,
  opts: MeasureOptions,
): Promise<Measured> {
  const at: Measured["at"] = {};
  for (const l of [0, latency]) at[l] = await measureAt(h, c, l, opts);
  const zero = at[0] as { p50: number };
  const high = at[latency] as { p50: number };
  const rounds = Math.max(0, Math.round((high.p50 - zero.p50) / latency));
  return {
    label: c.label,
    target: c.target,
    note: c.note,
    samples: c.samples ?? opts.samples,
    at,
    rounds,
    pass: c.target === undefined ? null : rounds <= c.target,
  };
}
