import { parseInteger, upper } from "../args.ts";
import { Errors, OK, RedisError, type Reply, StatusReply } from "../reply.ts";
import type { CommandContext, CommandTable } from "./command.ts";

function splitEvalArgs([body = "", rawCount = "", ...rest]: string[]): [
  string,
  string[],
  string[],
] {
  const n = parseInteger(rawCount);
  if (n < 0) throw new RedisError("ERR Number of keys can't be negative");
  if (n > rest.length) {
    throw new RedisError("ERR Number of keys can't be greater than number of args");
  }
  return [body, rest.slice(0, n), rest.slice(n)];
}

function evalScript(ctx: CommandContext, args: string[]): Reply {
  const [body, keys, argv] = splitEvalArgs(args);
  return ctx.scripts.run(body, keys, argv);
}

function evalSha(ctx: CommandContext, args: string[]): Reply {
  const [sha, keys, argv] = splitEvalArgs(args);
  return ctx.scripts.runSha(sha.toLowerCase(), keys, argv);
}

function flush(ctx: CommandContext, [mode, ...extra]: string[]): Reply {
  if (extra.length > 0 || (mode !== undefined && !["ASYNC", "SYNC"].includes(upper(mode)))) {
    throw new RedisError(Errors.syntax);
  }
  ctx.keyspace.flush();
  return OK;
}

export const serverCommands: CommandTable = {
  PING: {
    arity: -1,
    run: (_ctx, args) => {
      if (args.length > 1) throw new RedisError(Errors.wrongArgs("ping"));
      return args[0] ?? new StatusReply("PONG");
    },
  },
  ECHO: { arity: 2, run: (_ctx, [message = ""]) => message },
  DBSIZE: { arity: 1, run: (ctx) => ctx.keyspace.size },
  FLUSHDB: { arity: -1, run: flush },
  FLUSHALL: { arity: -1, run: flush },
  TIME: {
    arity: 1,
    run: (ctx) => {
      const ms = ctx.keyspace.now();
      return [String(Math.floor(ms / 1000)), String((ms % 1000) * 1000)];
    },
  },
  EVAL: { arity: -3, noScript: true, run: evalScript },
  EVAL_RO: { arity: -3, noScript: true, run: evalScript },
  EVALSHA: { arity: -3, noScript: true, run: evalSha },
  EVALSHA_RO: { arity: -3, noScript: true, run: evalSha },
  SCRIPT: {
    arity: -2,
    noScript: true,
    run: (ctx, [sub = "", ...rest]) => {
      switch (upper(sub)) {
        case "LOAD":
          if (rest.length !== 1) throw new RedisError(Errors.wrongArgs("script|load"));
          return ctx.scripts.load(rest[0]!);
        case "EXISTS":
          if (rest.length === 0) throw new RedisError(Errors.wrongArgs("script|exists"));
          return rest.map((sha) => (ctx.scripts.exists(sha.toLowerCase()) ? 1 : 0));
        case "FLUSH":
          ctx.scripts.flush();
          return OK;
        default:
          throw new RedisError(`ERR unknown subcommand '${sub}'. Try SCRIPT HELP.`);
      }
    },
  },
};
