import { parseInteger, upper } from "../args.ts";
import { Errors, OK, RedisError, type Reply, StatusReply } from "../reply.ts";
import type { CommandContext, CommandTable } from "./command.ts";

/** EXPIRE/PEXPIRE/EXPIREAT/PEXPIREAT with the Redis 7 NX/XX/GT/LT conditions. */
function expire(toUnixMs: (n: number, now: number) => number) {
  return (ctx: CommandContext, [key = "", raw = "", ...opts]: string[]): Reply => {
    const n = parseInteger(raw);
    const flags = new Set<string>();
    for (const o of opts) {
      const flag = upper(o);
      if (!["NX", "XX", "GT", "LT"].includes(flag)) {
        throw new RedisError(`ERR Unsupported option ${o}`);
      }
      flags.add(flag);
    }
    if (flags.has("NX") && (flags.has("XX") || flags.has("GT") || flags.has("LT"))) {
      throw new RedisError("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if (flags.has("GT") && flags.has("LT")) {
      throw new RedisError("ERR GT and LT options at the same time are not compatible");
    }
    const ks = ctx.keyspace;
    const entry = ks.lookup(key);
    if (!entry) return 0;
    const when = toUnixMs(n, ks.now());
    const current = entry.expiresAt; // undefined counts as an infinite TTL for GT/LT
    if (flags.has("NX") && current !== undefined) return 0;
    if (flags.has("XX") && current === undefined) return 0;
    if (flags.has("GT") && (current === undefined || when <= current)) return 0;
    if (flags.has("LT") && current !== undefined && when >= current) return 0;
    ks.setExpiry(key, when);
    return 1;
  };
}

function ttl(inMs: boolean) {
  return (ctx: CommandContext, [key = ""]: string[]): Reply => {
    const entry = ctx.keyspace.lookup(key);
    if (!entry) return -2;
    if (entry.expiresAt === undefined) return -1;
    const left = Math.max(0, entry.expiresAt - ctx.keyspace.now());
    return inMs ? left : Math.floor((left + 500) / 1000);
  };
}

function expireTime(inMs: boolean) {
  return (ctx: CommandContext, [key = ""]: string[]): Reply => {
    const entry = ctx.keyspace.lookup(key);
    if (!entry) return -2;
    if (entry.expiresAt === undefined) return -1;
    return inMs ? entry.expiresAt : Math.floor((entry.expiresAt + 500) / 1000);
  };
}

function scan(ctx: CommandContext, [rawCursor = "", ...opts]: string[]): Reply {
  if (!/^[0-9]+$/.test(rawCursor)) throw new RedisError("ERR invalid cursor");
  let match: string | undefined;
  let count = 10;
  let type: string | undefined;
  for (let i = 0; i < opts.length; i += 2) {
    const o = upper(opts[i]);
    const v = opts[i + 1];
    if (v === undefined) throw new RedisError(Errors.syntax);
    if (o === "MATCH") match = v;
    else if (o === "COUNT") {
      count = parseInteger(v);
      if (count < 1) throw new RedisError(Errors.syntax);
    } else if (o === "TYPE") type = v.toLowerCase();
    else throw new RedisError(Errors.syntax);
  }
  const [next, keys] = ctx.keyspace.scan(Number(rawCursor), count, match, type);
  return [String(next), keys];
}

export const keyCommands: CommandTable = {
  DEL: { arity: -2, run: (ctx, keys) => keys.filter((k) => ctx.keyspace.delete(k)).length },
  UNLINK: { arity: -2, run: (ctx, keys) => keys.filter((k) => ctx.keyspace.delete(k)).length },
  EXISTS: {
    arity: -2,
    run: (ctx, keys) => keys.filter((k) => ctx.keyspace.lookup(k) !== undefined).length,
  },
  EXPIRE: { arity: -3, run: expire((n, now) => now + n * 1000) },
  PEXPIRE: { arity: -3, run: expire((n, now) => now + n) },
  EXPIREAT: { arity: -3, run: expire((n) => n * 1000) },
  PEXPIREAT: { arity: -3, run: expire((n) => n) },
  TTL: { arity: 2, run: ttl(false) },
  PTTL: { arity: 2, run: ttl(true) },
  EXPIRETIME: { arity: 2, run: expireTime(false) },
  PEXPIRETIME: { arity: 2, run: expireTime(true) },
  PERSIST: {
    arity: 2,
    run: (ctx, [key = ""]) => {
      const entry = ctx.keyspace.lookup(key);
      if (!entry || entry.expiresAt === undefined) return 0;
      entry.expiresAt = undefined;
      return 1;
    },
  },
  TYPE: {
    arity: 2,
    run: (ctx, [key = ""]) => new StatusReply(ctx.keyspace.lookup(key)?.type ?? "none"),
  },
  KEYS: { arity: 2, run: (ctx, [pattern = ""]) => ctx.keyspace.keys(pattern) },
  SCAN: { arity: -2, run: scan },
  RENAME: {
    arity: 3,
    run: (ctx, [from = "", to = ""]) => {
      if (!ctx.keyspace.rename(from, to)) throw new RedisError("ERR no such key");
      return OK;
    },
  },
};
