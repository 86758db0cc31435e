/**
 * The one logger. Every line is one JSON object `{level, msg, request_id?, user_id?, ...fields}`;
 * a request's logger (on the service context, `ctx.log`) stamps its request id, and the user id
 * once the auth middleware knows it. Errors pass through `describeError`/`logSafeStack`, so the
 * redaction of query parameters happens here and nowhere else. This is the only file under `src/`
 * that may call `console.*` (biome.json's noConsole override).
 */

export type LogLevel = "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** An error line: the error and its causes (redacted) and its stack (redacted). */
  failure(msg: string, err: unknown, fields?: LogFields, level?: LogLevel): void;
  /** A logger whose lines also carry `fields` (read when each line is written). */
  with(fields: () => LogFields): Logger;
}

const sinks: Record<LogLevel, (line: string) => void> = {
  info: (line) => console.log(line),
  warn: (line) => console.warn(line),
  error: (line) => console.error(line),
};

/**
 * A logger whose lines carry what `stamp()` returns when each line is written (the request id,
 * the user id once known). Fields of the line itself come last and win.
 */
export function createLogger(stamp: () => LogFields = () => ({})): Logger {
  const write = (level: LogLevel, msg: string, fields: LogFields = {}) =>
    sinks[level](JSON.stringify({ level, msg, ...stamp(), ...fields }));
  return {
    info: (msg, fields) => write("info", msg, fields),
    warn: (msg, fields) => write("warn", msg, fields),
    error: (msg, fields) => write("error", msg, fields),
    failure: (msg, err, fields, level = "error") =>
      write(level, msg, { ...fields, error: describeError(err), stack: logSafeStack(err) ?? "" }),
    with: (more) => createLogger(() => ({ ...stamp(), ...more() })),
  };
}

/** Lines outside any request (the cron sweep, isolate start-up). */
export const rootLogger: Logger = createLogger();

/**
 * An error (and its causes) as one log-safe string. Drizzle's query errors carry the bound
 * parameters in their message ("params: …"), which can be password hashes, token hashes or
 * message text: they are cut out here, so no log line can carry them.
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e: unknown = err, depth = 0; e !== undefined && e !== null && depth < 5; depth++) {
    parts.push(redactParams(e instanceof Error ? `${e.name}: ${e.message}` : String(e)));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(" <- ");
}

/** An error's stack with any query parameters cut out (see describeError). */
export function logSafeStack(err: unknown): string | undefined {
  return err instanceof Error && err.stack ? redactParams(err.stack) : undefined;
}

function redactParams(text: string): string {
  return text.replace(/\bparams: [\s\S]*?(?=\n\s+at |$)/g, "params: [redacted]");
}
