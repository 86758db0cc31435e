import type { Keyspace } from "../keyspace.ts";
import type { Reply } from "../reply.ts";

/** What the scripting commands need from the Lua engine. */
export interface ScriptHost {
  /** Compiles `body` (syntax check), remembers it and returns its SHA-1. */
  load(body: string): string;
  exists(sha: string): boolean;
  flush(): void;
  run(body: string, keys: string[], args: string[]): Reply;
  runSha(sha: string, keys: string[], args: string[]): Reply;
}

export interface CommandContext {
  keyspace: Keyspace;
  scripts: ScriptHost;
}

export interface CommandSpec {
  /** Redis convention, counting the name: n = exactly n arguments, -n = at least n. */
  arity: number;
  /** Refused inside EVAL (scripting and transaction commands). */
  noScript?: boolean;
  /** `args` excludes the command name. */
  run(ctx: CommandContext, args: string[]): Reply;
}

export type CommandTable = Record<string, CommandSpec>;
