import { parseInteger } from "../args.ts";
import { OK, RedisError, type Reply } from "../reply.ts";
import type { CommandContext, CommandTable } from "./command.ts";

function push(left: boolean) {
  return (ctx: CommandContext, [key = "", ...values]: string[]): Reply => {
    const list = ctx.keyspace.readOrCreate(key, "list");
    for (const v of values) {
      if (left) list.unshift(v);
      else list.push(v);
    }
    return list.length;
  };
}

function pop(left: boolean) {
  return (ctx: CommandContext, [key = "", rawCount, ...extra]: string[]): Reply => {
    if (extra.length > 0) throw new RedisError("ERR syntax error");
    const count = rawCount === undefined ? undefined : parseInteger(rawCount);
    if (count !== undefined && count < 0) {
      throw new RedisError("ERR value is out of range, must be positive");
    }
    const list = ctx.keyspace.read(key, "list");
    if (!list) return null;
    const n = count ?? 1;
    const taken = left ? list.splice(0, n) : list.splice(Math.max(0, list.length - n)).reverse();
    ctx.keyspace.dropIfEmpty(key);
    return count === undefined ? (taken[0] ?? null) : taken;
  };
}

function normalise(len: number, startRaw: string, stopRaw: string): [number, number] {
  let start = parseInteger(startRaw);
  let stop = parseInteger(stopRaw);
  if (start < 0) start += len;
  if (stop < 0) stop += len;
  if (start < 0) start = 0;
  if (stop >= len) stop = len - 1;
  return [start, stop];
}

export const listCommands: CommandTable = {
  LPUSH: { arity: -3, run: push(true) },
  RPUSH: { arity: -3, run: push(false) },
  LPOP: { arity: -2, run: pop(true) },
  RPOP: { arity: -2, run: pop(false) },
  LLEN: { arity: 2, run: (ctx, [key = ""]) => ctx.keyspace.read(key, "list")?.length ?? 0 },
  LRANGE: {
    arity: 4,
    run: (ctx, [key = "", start = "", stop = ""]) => {
      const list = ctx.keyspace.read(key, "list") ?? [];
      const [s, e] = normalise(list.length, start, stop);
      return s > e ? [] : list.slice(s, e + 1);
    },
  },
  LINDEX: {
    arity: 3,
    run: (ctx, [key = "", index = ""]) => {
      const list = ctx.keyspace.read(key, "list") ?? [];
      let i = parseInteger(index);
      if (i < 0) i += list.length;
      return list[i] ?? null;
    },
  },
  LTRIM: {
    arity: 4,
    run: (ctx, [key = "", start = "", stop = ""]) => {
      const list = ctx.keyspace.read(key, "list");
      if (list) {
        const [s, e] = normalise(list.length, start, stop);
        const kept = s > e ? [] : list.slice(s, e + 1);
        list.splice(0, list.length, ...kept);
        ctx.keyspace.dropIfEmpty(key);
      }
      return OK;
    },
  },
};
