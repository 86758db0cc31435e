import { inInt64Range, parseInt64, upper } from "../args.ts";
import { globMatch } from "../glob.ts";
import { Errors, OK, RedisError, type Reply } from "../reply.ts";
import type { CommandContext, CommandTable } from "./command.ts";
import { incrByFloat } from "./strings.ts";

function hset(name: string, replyOk: boolean) {
  return (ctx: CommandContext, [key = "", ...pairs]: string[]): Reply => {
    if (pairs.length % 2 !== 0) throw new RedisError(Errors.wrongArgs(name));
    const hash = ctx.keyspace.readOrCreate(key, "hash");
    let added = 0;
    for (let i = 0; i < pairs.length; i += 2) {
      if (!hash.has(pairs[i]!)) added++;
      hash.set(pairs[i]!, pairs[i + 1]!);
    }
    return replyOk ? OK : added;
  };
}

/**
 * The MATCH/COUNT part of HSCAN/SSCAN/ZSCAN. Collections here are small, so one call returns
 * every match with cursor 0, which SCAN's contract allows.
 */
export function parseCollectionScan(opts: string[]): string | undefined {
  let match: string | undefined;
  for (let i = 0; i < opts.length; i += 2) {
    const o = upper(opts[i]);
    const v = opts[i + 1];
    if (v === undefined || (o !== "MATCH" && o !== "COUNT")) throw new RedisError(Errors.syntax);
    if (o === "MATCH") match = v;
  }
  return match;
}

export const hashCommands: CommandTable = {
  HSET: { arity: -4, run: hset("hset", false) },
  HMSET: { arity: -4, run: hset("hmset", true) },
  HSETNX: {
    arity: 4,
    run: (ctx, [key = "", field = "", value = ""]) => {
      const hash = ctx.keyspace.readOrCreate(key, "hash");
      if (hash.has(field)) return 0;
      hash.set(field, value);
      return 1;
    },
  },
  HGET: {
    arity: 3,
    run: (ctx, [key = "", field = ""]) => ctx.keyspace.read(key, "hash")?.get(field) ?? null,
  },
  HMGET: {
    arity: -3,
    run: (ctx, [key = "", ...fields]) => {
      const hash = ctx.keyspace.read(key, "hash");
      return fields.map((f) => hash?.get(f) ?? null);
    },
  },
  HGETALL: {
    arity: 2,
    run: (ctx, [key = ""]) => [...(ctx.keyspace.read(key, "hash") ?? new Map())].flat(),
  },
  HKEYS: {
    arity: 2,
    run: (ctx, [key = ""]) => [...(ctx.keyspace.read(key, "hash")?.keys() ?? [])],
  },
  HVALS: {
    arity: 2,
    run: (ctx, [key = ""]) => [...(ctx.keyspace.read(key, "hash")?.values() ?? [])],
  },
  HLEN: { arity: 2, run: (ctx, [key = ""]) => ctx.keyspace.read(key, "hash")?.size ?? 0 },
  HEXISTS: {
    arity: 3,
    run: (ctx, [key = "", field = ""]) => (ctx.keyspace.read(key, "hash")?.has(field) ? 1 : 0),
  },
  HDEL: {
    arity: -3,
    run: (ctx, [key = "", ...fields]) => {
      const hash = ctx.keyspace.read(key, "hash");
      if (!hash) return 0;
      const removed = fields.filter((f) => hash.delete(f)).length;
      ctx.keyspace.dropIfEmpty(key);
      return removed;
    },
  },
  HINCRBY: {
    arity: 4,
    run: (ctx, [key = "", field = "", by = ""]) => {
      const delta = parseInt64(by);
      const hash = ctx.keyspace.readOrCreate(key, "hash");
      const current = hash.get(field);
      const base =
        current === undefined ? 0n : parseInt64(current, "ERR hash value is not an integer");
      const next = base + delta;
      if (!inInt64Range(next)) throw new RedisError(Errors.overflow);
      hash.set(field, next.toString());
      return Number(next);
    },
  },
  HINCRBYFLOAT: {
    arity: 4,
    run: (ctx, [key = "", field = "", by = ""]) => {
      const hash = ctx.keyspace.readOrCreate(key, "hash");
      try {
        const next = incrByFloat(hash.get(field), by);
        hash.set(field, next);
        return next;
      } finally {
        ctx.keyspace.dropIfEmpty(key);
      }
    },
  },
  HSCAN: {
    arity: -3,
    run: (ctx, [key = "", _cursor, ...opts]) => {
      const match = parseCollectionScan(opts);
      const out: string[] = [];
      for (const [f, v] of ctx.keyspace.read(key, "hash") ?? []) {
        if (match === undefined || globMatch(match, f)) out.push(f, v);
      }
      return ["0", out];
    },
  },
};
