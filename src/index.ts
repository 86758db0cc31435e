import { env } from "cloudflare:workers";
import { createApp } from "./app";
import { rootLogger } from "./log";
import { envFromBindings, serviceContextFromBindings } from "./middleware/context";
import { sweepOverdueWork } from "./services/chat/sweep";

// Validate configuration when the isolate starts, so a missing or weak secret stops the Worker
// with a message naming the variable instead of failing deep inside a request.
envFromBindings(env as unknown as Record<string, unknown>);

const app = createApp();

export default {
  fetch: app.fetch,
  /**
   * Cron trigger: fails overdue replies, republishes replies whose publish failed, settles the
   * quota tokens of prompts whose write outcome the request could not learn (`quota:unsettled`),
   * pays the refunds replies still owe (`refund_owed_at`), and purges expired idempotency records
   * and old webhook events.
   */
  async scheduled(controller, bindings, ctx) {
    const services = serviceContextFromBindings(bindings, rootLogger, (p) => ctx.waitUntil(p));
    const report = await sweepOverdueWork(services, new Date(controller.scheduledTime));
    rootLogger.info("sweep", { cron: controller.cron, ...report });
  },
} satisfies ExportedHandler<Record<string, unknown>>;
