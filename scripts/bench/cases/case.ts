// What one measured endpoint is, and the small helpers the cases share.
import type { Reply } from "../../support/http.ts";

/**
 * One measured endpoint. `prepare` builds what `count` requests need (at latency 0) and returns
 * one sender per request, each of which checks its answer.
 */
export interface Case {
  label: string;
  target?: number;
  note?: string;
  samples?: number;
  prepare(count: number): Promise<(() => Promise<Reply>)[]>;
}

/** Valid requests a user may send to each billing write per 10 minutes (BILLING_LIMITS). */
export const BILLING_PER_USER = 10;

export const repeat = <T>(count: number, make: (i: number) => T) =>
  Array.from({ length: count }, (_, i) => make(i));

/** `count` times the same request (for endpoints that change nothing, or change it idempotently). */
export async function same(count: number, send: () => Promise<Reply>) {
  return repeat(count, () => send);
}

export const expect =
  (status: number, label: string, check?: (r: Reply) => string | null) =>
  async (p: Promise<Reply>) => {
    const r = await p;
    if (r.status !== status) {
      throw new Error(`${label}: ${r.status} (expected ${status}) ${r.text.slice(0, 300)}`);
    }
    const problem = check?.(r);
    if (problem) throw new Error(`${label}: ${problem}`);
    return r;
  };
