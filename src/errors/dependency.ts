import { isDatabaseUnavailable } from "../db/client";
import { isRedisUnavailable } from "../lib/redis";
import { DependencyUnavailableError } from "./index";

/**
 * Whether an error that no service wrapped means a vendor is unavailable (503) rather than a
 * bug (500). Each adapter classifies its own failures (`isDatabaseUnavailable`,
 * `isRedisUnavailable`; Stripe and QStash wrap theirs into DependencyUnavailableError); a
 * deadline (AbortSignal.timeout in src/db, src/lib/redis) or a dropped connection is
 * unavailability whichever vendor it was. Apart from src/errors/http.ts (which imports the
 * request context) so a service can ask it too (billing gives an allowance back on it).
 */
export function isDependencyFailure(err: Error): boolean {
  return (
    err instanceof DependencyUnavailableError ||
    isDatabaseUnavailable(err) ||
    isRedisUnavailable(err) ||
    err.name === "TimeoutError" ||
    /fetch failed|network connection lost|ECONNREFUSED/i.test(err.message ?? "") ||
    (err.cause instanceof Error && isDependencyFailure(err.cause))
  );
}
