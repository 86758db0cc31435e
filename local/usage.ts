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
