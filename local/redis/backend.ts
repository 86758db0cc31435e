import type { RestResult } from "./reply.ts";

/**
 * What the REST layer needs from a Redis: the embedded store or a real server. Commands arrive
 * as strings (name first, any case); answers come back in the REST shape, not yet encoded.
 */
export interface RedisBackend {
  readonly kind: "embedded" | "redis";
  run(command: string[]): Promise<RestResult>;
  /** In order, not atomic; one failing command does not stop the others. */
  pipeline(commands: string[][]): Promise<RestResult[]>;
  /** Atomic (MULTI/EXEC). Throws RedisError (EXECABORT) when a command is rejected up front. */
  multiExec(commands: string[][]): Promise<RestResult[]>;
  close(): Promise<void>;
}
