export type CheckResult = { status: "ok" | "error"; latency_ms: number; error?: string };
export type HealthReport = {
  status: "ok" | "degraded";
  checks: { database: CheckResult; redis: CheckResult };
};

const CHECK_TIMEOUT_MS = 3000;

async function runCheck(probe: () => Promise<unknown>): Promise<CheckResult> {
  const started = performance.now();
  const elapsed = () => Math.round((performance.now() - started) * 10) / 10;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)),
          CHECK_TIMEOUT_MS,
        );
      }),
    ]);
    return { status: "ok", latency_ms: elapsed() };
  } catch (err) {
    // Only the error class goes out: messages of vendor errors can carry connection details.
    const reason =
      err instanceof Error && err.message.startsWith("no answer") ? err.message : "unreachable";
    return { status: "error", latency_ms: elapsed(), error: reason };
  } finally {
    if (timer !== undefined) clearTimeout(timer);
  }
}

/** Probes both dependencies concurrently; degraded when either fails. */
export async function checkHealth(probes: {
  database: () => Promise<unknown>;
  redis: () => Promise<unknown>;
}): Promise<HealthReport> {
  const [database, redis] = await Promise.all([runCheck(probes.database), runCheck(probes.redis)]);
  return {
    status: database.status === "ok" && redis.status === "ok" ? "ok" : "degraded",
    checks: { database, redis },
  };
}
