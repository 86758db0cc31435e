/**
 * Billing meters: what each vendor would count on its invoice, kept by the stand-ins and read at
 * `GET /_control/usage` (shape in docs/local-cloud.md). Counting is a few integer increments per
 * call, so it runs always and costs nothing measurable.
 */
export interface UsageMeter {
  /** The vendor's counters as plain JSON (numbers and flat `{label: n}` maps). */
  snapshot(): Record<string, unknown>;
  reset(): void;
}

/**
 * The body of `GET /_control/usage` when every stand-in runs (the one definition of its shape;
 * `npm run cost` and the contract tests read it through this type).
 */
export interface UsageReport {
  neon: {
    requests: number;
    statements: number;
    by_kind: Record<"select" | "insert" | "update" | "delete" | "other", number>;
  };
  redis: { requests: number; commands: number; by_command: Record<string, number> };
  qstash: {
    publishes: number;
    deliveries: number;
    callbacks: number;
    retries: number;
    cancels: number;
    messages: number;
  };
  gemini: {
    calls: number;
    by_method: Record<string, number>;
    input_tokens: number;
    output_tokens: number;
  };
  stripe: { calls: number; by_operation: Record<string, number> };
}

/** Counts per label (a Redis command name, a Stripe operation...). */
export class Tally {
  #counts = new Map<string, number>();

  add(label: string, n = 1): void {
    this.#counts.set(label, (this.#counts.get(label) ?? 0) + n);
  }

  clear(): void {
    this.#counts.clear();
  }

  toJSON(): Record<string, number> {
    return Object.fromEntries(this.#counts);
  }
}
