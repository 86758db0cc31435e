// The load run and the benchmark start the whole stack themselves, like the API test harness,
// so they need no `npm run dev`.
import { type Stack, startStack } from "../../local/stack.ts";

export type SelfHosted = Stack;

/** The variables a self-hosted Worker runs with beyond the stack's own (the bench's CPU mode too). */
export function selfHostVars(): Record<string, string> {
  return {
    ENVIRONMENT: "development",
    JWT_SECRET: "bench-jwt-secret-0123456789abcdef0123456789abcdef",
    OTP_SECRET: "bench-otp-secret-0123456789abcdef0123456789abcdef",
  };
}

/** `logLevel` is wrangler's for the Worker's own output (WORKER_LOG_LEVEL overrides it). */
export function selfHost(
  opts: { vars?: Record<string, string>; logLevel?: string } = {},
): Promise<SelfHosted> {
  return startStack({
    vars: { ...selfHostVars(), ...opts.vars },
    dev: {
      logLevel: (process.env.WORKER_LOG_LEVEL ?? opts.logLevel ?? "error") as "error",
      // /cdn-cgi/handler/scheduled runs the cron sweep on demand: the load run settles with it.
      testScheduled: true,
    },
  } as Parameters<typeof startStack>[0]);
}
