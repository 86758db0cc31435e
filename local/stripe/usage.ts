import { Tally, type UsageMeter } from "../usage.ts";

/**
 * Stripe does not bill per API call, but its rate limits count them (100 read and 100 write
 * operations per second in live mode). Counted per operation, `METHOD /v1/resource/:id`, once the
 * request is authenticated and routed; idempotent replays count, as they do against the limit.
 */
export class StripeUsage implements UsageMeter {
  calls = 0;
  readonly byOperation = new Tally();

  call(operation: string): void {
    this.calls++;
    this.byOperation.add(operation);
  }

  snapshot() {
    return { calls: this.calls, by_operation: this.byOperation.toJSON() };
  }

  reset(): void {
    this.calls = 0;
    this.byOperation.clear();
  }
}
