import { appendFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TestProject } from "vitest/node";
import { startStack } from "../../local/stack.ts";

declare module "vitest" {
  export interface ProvidedContext {
    workerUrl: string;
    cloudUrl: string;
    testEnv: Record<string, string>;
    /** Every console line the Worker wrote, one JSON object {level, message} per line. */
    workerLogFile: string;
  }
}

/**
 * Starts the local cloud and the real Worker in workerd once for the whole api suite, capturing
 * the Worker's log lines for the log tests.
 */
export default async function setup(project: TestProject) {
  await notAcrossMidnight();
  // The Worker's console output, captured for the log tests (and still printed as before:
  // warnings and errors, or everything with WORKER_LOG_LEVEL=log|info|debug).
  const workerLogFile = join(tmpdir(), `worker-log-${process.pid}-${Date.now()}.jsonl`);
  writeFileSync(workerLogFile, "");
  const printAll = ["log", "info", "debug"].includes(process.env.WORKER_LOG_LEVEL ?? "");
  const structuredLogsHandler = (log: { level: string; message: string }) => {
    appendFileSync(
      workerLogFile,
      `${JSON.stringify({ level: log.level, message: log.message })}\n`,
    );
    if (printAll || log.level === "warn" || log.level === "error") {
      process.stderr.write(`${log.message}\n`);
    }
  };

  const stack = await startStack({
    vars: {
      ENVIRONMENT: "test",
      JWT_SECRET: "test-jwt-secret-0123456789abcdef0123456789abcdef",
      OTP_SECRET: "test-otp-secret-0123456789abcdef0123456789abcdef",
      QSTASH_RETRIES: "3",
      REPLY_DEADLINE_SECONDS: "3600",
      // Tests send prompts back to back and leave replies pending on purpose; the limit itself
      // is tested on a stack of its own (test/api/chat-pending-limit.test.ts).
      MAX_PENDING_REPLIES_BASIC: "1000",
      MAX_PENDING_REPLIES_PRO: "1000",
      // A client that leaves gets this long to resume before its generation is handed to the
      // queue (production: 20 s); short, so the hand-off itself is testable in seconds.
      STREAM_GRACE_SECONDS: "3",
    },
    dev: {
      testScheduled: true,
      structuredLogsHandler,
      logLevel: (process.env.WORKER_LOG_LEVEL ?? "warn") as "warn",
    },
  } as Parameters<typeof startStack>[0]);

  project.provide("workerUrl", stack.workerUrl);
  project.provide("cloudUrl", stack.cloudUrl);
  project.provide("testEnv", stack.vars);
  project.provide("workerLogFile", workerLogFile);

  return async () => {
    await stack.close();
    rmSync(workerLogFile, { force: true });
  };
}

/** A run takes about two minutes; three is the margin this guard keeps before 00:00 UTC. */
const RUN_MARGIN_MS = 3 * 60_000;

/**
 * The daily prompt quota resets at 00:00 UTC, and the chat tests count prompts within one day:
 * a run that crossed midnight would see its counters reset halfway. Starting less than a run's
 * length before midnight, wait until just after it.
 */
async function notAcrossMidnight(): Promise<void> {
  const now = Date.now();
  const midnight = Math.ceil(now / 86_400_000) * 86_400_000;
  if (midnight - now > RUN_MARGIN_MS) return;
  const wait = midnight - now + 2_000;
  process.stderr.write(`global setup: waiting ${Math.ceil(wait / 1000)} s for 00:00 UTC to pass\n`);
  await new Promise((r) => setTimeout(r, wait));
}
