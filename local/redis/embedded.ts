import type { RedisBackend } from "./backend.ts";
import type { CommandContext, CommandSpec, CommandTable } from "./commands/command.ts";
import { hashCommands } from "./commands/hashes.ts";
import { keyCommands } from "./commands/keys.ts";
import { listCommands } from "./commands/lists.ts";
import { serverCommands } from "./commands/server.ts";
import { setCommands } from "./commands/sets.ts";
import { sortedSetCommands } from "./commands/sorted-sets.ts";
import { stringCommands } from "./commands/strings.ts";
import { Keyspace } from "./keyspace.ts";
import { LuaScripting } from "./lua-engine.ts";
import { Errors, RedisError, type Reply, type RestResult, toRestValue } from "./reply.ts";

const COMMANDS = new Map<string, CommandSpec>(
  Object.entries({
    ...stringCommands,
    ...keyCommands,
    ...hashCommands,
    ...setCommands,
    ...sortedSetCommands,
    ...listCommands,
    ...serverCommands,
  } satisfies CommandTable),
);

export interface EmbeddedOptions {
  now?: () => number;
  /** How often expired keys are swept (they are also dropped lazily on access). */
  sweepIntervalMs?: number;
  scriptTimeoutMs?: number;
}

function unknownCommand(name: string, args: string[]): string {
  const shown = args
    .slice(0, 10)
    .map((a) => `'${a.slice(0, 128)}' `)
    .join("");
  return `ERR unknown command '${name}', with args beginning with: ${shown}`;
}

/**
 * The in-process Redis. Every command runs synchronously to completion on the JS thread, so a
 * command, a Lua script or a MULTI/EXEC batch can never interleave with another request.
 */
export class EmbeddedRedis implements RedisBackend {
  readonly kind = "embedded";
  readonly keyspace: Keyspace;
  #scripts: LuaScripting | undefined;
  #sweep: ReturnType<typeof setInterval>;

  private constructor(options: EmbeddedOptions) {
    this.keyspace = new Keyspace(options.now);
    this.#sweep = setInterval(() => this.keyspace.sweep(), options.sweepIntervalMs ?? 1000);
    this.#sweep.unref();
  }

  static async create(options: EmbeddedOptions = {}): Promise<EmbeddedRedis> {
    const store = new EmbeddedRedis(options);
    store.#scripts = await LuaScripting.create(
      (args) => store.execute(args, true),
      options.scriptTimeoutMs,
    );
    return store;
  }

  #context(): CommandContext {
    if (!this.#scripts) throw new Error("embedded Redis used before create() finished");
    return { keyspace: this.keyspace, scripts: this.#scripts };
  }

  /** Checks name, arity and script restrictions without running anything. */
  #resolve(args: string[], fromScript: boolean): CommandSpec {
    const [name = "", ...rest] = args;
    const spec = COMMANDS.get(name.toUpperCase());
    if (!spec) {
      throw new RedisError(
        fromScript ? "ERR Unknown Redis command called from script" : unknownCommand(name, rest),
      );
    }
    const n = args.length;
    if ((spec.arity > 0 && n !== spec.arity) || (spec.arity < 0 && n < -spec.arity)) {
      throw new RedisError(
        fromScript
          ? "ERR Wrong number of args calling Redis command from script"
          : Errors.wrongArgs(name.toLowerCase()),
      );
    }
    if (fromScript && spec.noScript) {
      throw new RedisError("ERR This Redis command is not allowed from script");
    }
    return spec;
  }

  /** Runs one command synchronously; throws RedisError with Redis' message on failure. */
  execute(args: string[], fromScript = false): Reply {
    const spec = this.#resolve(args, fromScript);
    return spec.run(this.#context(), args.slice(1));
  }

  #result(args: string[]): RestResult {
    try {
      return { result: toRestValue(this.execute(args)) };
    } catch (e) {
      if (e instanceof RedisError) return { error: e.message };
      console.error("[local-redis] command crashed", args[0], e);
      return { error: `ERR internal error in the local stand-in: ${String(e)}` };
    }
  }

  async run(command: string[]): Promise<RestResult> {
    return this.#result(command);
  }

  async pipeline(commands: string[][]): Promise<RestResult[]> {
    return commands.map((c) => this.#result(c));
  }

  async multiExec(commands: string[][]): Promise<RestResult[]> {
    // Like Redis, a command rejected while queueing aborts the whole transaction.
    for (const c of commands) {
      try {
        this.#resolve(c, false);
      } catch {
        throw new RedisError(Errors.execAbort);
      }
    }
    return commands.map((c) => this.#result(c));
  }

  async close(): Promise<void> {
    clearInterval(this.#sweep);
    this.#scripts?.close();
  }
}
