import type { UsageMeter } from "../usage.ts";
import type { MessageKind } from "./engine.ts";

/**
 * QStash bills per message delivered: every delivery attempt to the destination counts, retries
 * included, and "messages created by callbacks are charged as any other message"
 * (https://upstash.com/docs/qstash/features/callbacks, https://upstash.com/pricing/qstash).
 * So `messages` = `deliveries` + `callbacks`, each counting attempts; `publishes` are the accepted
 * publish calls (a deduplicated publish is counted under `deduplicated`, not as a publish).
 */
export class QStashUsage implements UsageMeter {
  publishes = 0;
  deduplicated = 0;
  /** Attempts to publish destinations (first tries, retries and duplicate redeliveries). */
  deliveries = 0;
  /** Attempts to callback and failure-callback URLs. */
  callbacks = 0;
  /** Attempts, of either kind, that were retries (Upstash-Retried > 0). */
  retries = 0;
  cancels = 0;

  attempted(kind: MessageKind, retried: number): void {
    if (kind === "publish") this.deliveries++;
    else this.callbacks++;
    if (retried > 0) this.retries++;
  }

  snapshot() {
    return {
      publishes: this.publishes,
      deliveries: this.deliveries,
      callbacks: this.callbacks,
      retries: this.retries,
      cancels: this.cancels,
      messages: this.deliveries + this.callbacks,
      deduplicated: this.deduplicated,
    };
  }

  reset(): void {
    this.publishes = 0;
    this.deduplicated = 0;
    this.deliveries = 0;
    this.callbacks = 0;
    this.retries = 0;
    this.cancels = 0;
  }
}
