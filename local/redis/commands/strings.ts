import { Buffer } from "node:buffer";
import {
  formatFloatValue,
  inInt64Range,
  parseDouble,
  parseInt64,
  parseInteger,
  upper,
} from "../args.ts";
import type { Keyspace } from "../keyspace.ts";
import { Errors, OK, RedisError, type Reply } from "../reply.ts";
import type { CommandContext, CommandTable } from "./command.ts";

type ExpiryOption = "EX" | "PX" | "EXAT" | "PXAT";

/** Absolute expiry in Unix ms for SET/GETEX options; `n` must already be validated > 0. */
function expiryFrom(option: ExpiryOption, n: number, now: number): number {
  switch (option) {
    case "EX":
      return now + n * 1000;
    case "PX":
      return now + n;
    case "EXAT":
      return n * 1000;
    case "PXAT":
      return n;
  }
}

function isExpiryOption(o: string): o is ExpiryOption {
  return o === "EX" || o === "PX" || o === "EXAT" || o === "PXAT";
}

function parseExpiry(command: string, option: ExpiryOption, raw: string | undefined, now: number) {
  if (raw === undefined) throw new RedisError(Errors.syntax);
  const n = parseInteger(raw);
  if (n <= 0) throw new RedisError(Errors.invalidExpire(command));
  return expiryFrom(option, n, now);
}

function incrBy(ks: Keyspace, key: string, delta: bigint): number {
  const current = ks.read(key, "string");
  const base = current === undefined ? 0n : parseInt64(current);
  const next = base + delta;
  if (!inInt64Range(next)) throw new RedisError(Errors.overflow);
  ks.writeString(key, next.toString(), true);
  return Number(next);
}

export function incrByFloat(current: string | undefined, increment: string): string {
  const base = current === undefined ? 0 : parseDouble(current);
  const next = base + parseDouble(increment);
  if (!Number.isFinite(next)) throw new RedisError("ERR increment would produce NaN or Infinity");
  return formatFloatValue(next);
}

function set(ctx: CommandContext, args: string[]): Reply {
  const [key = "", value = "", ...opts] = args;
  const ks = ctx.keyspace;
  let nx = false;
  let xx = false;
  let get = false;
  let keepTtl = false;
  let expiresAt: number | undefined;
  for (let i = 0; i < opts.length; i++) {
    const o = upper(opts[i]);
    if (o === "NX" && !xx) nx = true;
    else if (o === "XX" && !nx) xx = true;
    else if (o === "GET") get = true;
    else if (o === "KEEPTTL" && expiresAt === undefined) keepTtl = true;
    else if (isExpiryOption(o) && expiresAt === undefined && !keepTtl) {
      expiresAt = parseExpiry("set", o, opts[++i], ks.now());
    } else throw new RedisError(Errors.syntax);
  }
  const entry = ks.lookup(key);
  if (get && entry && entry.type !== "string") throw new RedisError(Errors.wrongType);
  const old = entry?.type === "string" ? (entry.value as string) : null;
  if ((nx && entry) || (xx && !entry)) return get ? old : null;
  ks.writeString(key, value, keepTtl);
  if (expiresAt !== undefined) ks.setExpiry(key, expiresAt);
  return get ? old : OK;
}

function getex(ctx: CommandContext, args: string[]): Reply {
  const [key = "", ...opts] = args;
  const ks = ctx.keyspace;
  let expiresAt: number | undefined;
  let persist = false;
  for (let i = 0; i < opts.length; i++) {
    const o = upper(opts[i]);
    if (o === "PERSIST" && expiresAt === undefined && !persist) persist = true;
    else if (isExpiryOption(o) && expiresAt === undefined && !persist) {
      expiresAt = parseExpiry("getex", o, opts[++i], ks.now());
    } else throw new RedisError(Errors.syntax);
  }
  const value = ks.read(key, "string");
  if (value === undefined) return null;
  if (persist) ks.setExpiry(key, undefined);
  else if (expiresAt !== undefined) ks.setExpiry(key, expiresAt);
  return value;
}

function mset(name: string, nx: boolean) {
  return (ctx: CommandContext, args: string[]): Reply => {
    if (args.length % 2 !== 0) throw new RedisError(Errors.wrongArgs(name));
    const ks = ctx.keyspace;
    if (nx) {
      for (let i = 0; i < args.length; i += 2) if (ks.lookup(args[i]!)) return 0;
    }
    for (let i = 0; i < args.length; i += 2) ks.writeString(args[i]!, args[i + 1]!);
    return nx ? 1 : OK;
  };
}

function setWithTtl(name: string, unitMs: number) {
  return (ctx: CommandContext, [key = "", ttl = "", value = ""]: string[]): Reply => {
    const n = parseInteger(ttl);
    if (n <= 0) throw new RedisError(Errors.invalidExpire(name));
    ctx.keyspace.writeString(key, value);
    ctx.keyspace.setExpiry(key, ctx.keyspace.now() + n * unitMs);
    return OK;
  };
}

export const stringCommands: CommandTable = {
  GET: { arity: 2, run: (ctx, [key = ""]) => ctx.keyspace.read(key, "string") ?? null },
  SET: { arity: -3, run: set },
  SETNX: {
    arity: 3,
    run: (ctx, [key = "", value = ""]) => {
      if (ctx.keyspace.lookup(key)) return 0;
      ctx.keyspace.writeString(key, value);
      return 1;
    },
  },
  SETEX: { arity: 4, run: setWithTtl("setex", 1000) },
  PSETEX: { arity: 4, run: setWithTtl("psetex", 1) },
  GETDEL: {
    arity: 2,
    run: (ctx, [key = ""]) => {
      const value = ctx.keyspace.read(key, "string");
      if (value === undefined) return null;
      ctx.keyspace.delete(key);
      return value;
    },
  },
  GETEX: { arity: -2, run: getex },
  GETSET: {
    arity: 3,
    run: (ctx, [key = "", value = ""]) => {
      const old = ctx.keyspace.read(key, "string") ?? null;
      ctx.keyspace.writeString(key, value);
      return old;
    },
  },
  MGET: {
    arity: -2,
    run: (ctx, keys) =>
      keys.map((key) => {
        const entry = ctx.keyspace.lookup(key);
        return entry?.type === "string" ? (entry.value as string) : null;
      }),
  },
  MSET: { arity: -3, run: mset("mset", false) },
  MSETNX: { arity: -3, run: mset("msetnx", true) },
  APPEND: {
    arity: 3,
    run: (ctx, [key = "", value = ""]) => {
      const next = (ctx.keyspace.read(key, "string") ?? "") + value;
      ctx.keyspace.writeString(key, next, true);
      return Buffer.byteLength(next);
    },
  },
  STRLEN: {
    arity: 2,
    run: (ctx, [key = ""]) => Buffer.byteLength(ctx.keyspace.read(key, "string") ?? ""),
  },
  INCR: { arity: 2, run: (ctx, [key = ""]) => incrBy(ctx.keyspace, key, 1n) },
  DECR: { arity: 2, run: (ctx, [key = ""]) => incrBy(ctx.keyspace, key, -1n) },
  INCRBY: {
    arity: 3,
    run: (ctx, [key = "", by = ""]) => incrBy(ctx.keyspace, key, parseInt64(by)),
  },
  DECRBY: {
    arity: 3,
    run: (ctx, [key = "", by = ""]) => incrBy(ctx.keyspace, key, -parseInt64(by)),
  },
  INCRBYFLOAT: {
    arity: 3,
    run: (ctx, [key = "", by = ""]) => {
      const next = incrByFloat(ctx.keyspace.read(key, "string"), by);
      ctx.keyspace.writeString(key, next, true);
      return next;
    },
  },
};
