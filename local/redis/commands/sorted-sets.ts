import { formatG17, parseDouble, parseInteger, upper } from "../args.ts";
import { globMatch } from "../glob.ts";
import { Errors, RedisError, type Reply } from "../reply.ts";
import type { CommandContext, CommandTable } from "./command.ts";
import { parseCollectionScan } from "./hashes.ts";

type Pair = [member: string, score: number];

function sorted(zset: Map<string, number>): Pair[] {
  return [...zset].sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

interface Bound<T> {
  value: T;
  exclusive: boolean;
}

function scoreBound(raw: string): Bound<number> {
  const exclusive = raw.startsWith("(");
  const value = parseDouble(exclusive ? raw.slice(1) : raw, "ERR min or max is not a float");
  return { value, exclusive };
}

/** A lex bound: "-" and "+" are the extremes, "[x" inclusive, "(x" exclusive. */
function lexBound(raw: string): Bound<string | "-" | "+"> {
  if (raw === "-" || raw === "+") return { value: raw, exclusive: false };
  if (raw.startsWith("[") || raw.startsWith("(")) {
    return { value: raw.slice(1), exclusive: raw.startsWith("(") };
  }
  throw new RedisError("ERR min or max not valid string range item");
}

function aboveMin(v: number, min: Bound<number>): boolean {
  return min.exclusive ? v > min.value : v >= min.value;
}
function belowMax(v: number, max: Bound<number>): boolean {
  return max.exclusive ? v < max.value : v <= max.value;
}
function lexAboveMin(m: string, min: Bound<string>): boolean {
  if (min.value === "-") return true;
  if (min.value === "+") return false;
  return min.exclusive ? m > min.value : m >= min.value;
}
function lexBelowMax(m: string, max: Bound<string>): boolean {
  if (max.value === "+") return true;
  if (max.value === "-") return false;
  return max.exclusive ? m < max.value : m <= max.value;
}

interface RangeQuery {
  by: "rank" | "score" | "lex";
  rev: boolean;
  start: string;
  stop: string;
  limit: [offset: number, count: number] | undefined;
}

function rankSlice(pairs: Pair[], startRaw: string, stopRaw: string): Pair[] {
  const len = pairs.length;
  let start = parseInteger(startRaw);
  let stop = parseInteger(stopRaw);
  if (start < 0) start += len;
  if (stop < 0) stop += len;
  if (start < 0) start = 0;
  if (start > stop || start >= len) return [];
  return pairs.slice(start, Math.min(stop, len - 1) + 1);
}

function range(zset: Map<string, number> | undefined, q: RangeQuery): Pair[] {
  // Bounds are parsed even for a missing key so bad input errors the same way.
  let pairs = zset ? sorted(zset) : [];
  if (q.rev) pairs.reverse();
  let out: Pair[];
  if (q.by === "rank") {
    out = rankSlice(pairs, q.start, q.stop);
  } else if (q.by === "score") {
    const [min, max] = q.rev
      ? [scoreBound(q.stop), scoreBound(q.start)]
      : [scoreBound(q.start), scoreBound(q.stop)];
    out = pairs.filter(([, s]) => aboveMin(s, min) && belowMax(s, max));
  } else {
    const [min, max] = q.rev
      ? [lexBound(q.stop), lexBound(q.start)]
      : [lexBound(q.start), lexBound(q.stop)];
    out = pairs.filter(([m]) => lexAboveMin(m, min) && lexBelowMax(m, max));
  }
  pairs = out;
  if (q.limit) {
    const [offset, count] = q.limit;
    if (offset < 0) return [];
    pairs = pairs.slice(offset, count < 0 ? undefined : offset + count);
  }
  return pairs;
}

function flatten(pairs: Pair[], withScores: boolean): Reply {
  return withScores ? pairs.flatMap(([m, s]) => [m, formatG17(s)]) : pairs.map(([m]) => m);
}

/** ZRANGE with BYSCORE/BYLEX/REV/LIMIT/WITHSCORES; legacy forms preset `by`/`rev`. */
function zrange(preset: Partial<RangeQuery>) {
  return (ctx: CommandContext, [key = "", start = "", stop = "", ...opts]: string[]): Reply => {
    const q: RangeQuery = { by: "rank", rev: false, start, stop, limit: undefined, ...preset };
    let withScores = false;
    for (let i = 0; i < opts.length; i++) {
      const o = upper(opts[i]);
      if (o === "WITHSCORES") withScores = true;
      else if (o === "BYSCORE" && preset.by === undefined) q.by = "score";
      else if (o === "BYLEX" && preset.by === undefined) q.by = "lex";
      else if (o === "REV" && preset.rev === undefined) q.rev = true;
      else if (o === "LIMIT" && i + 2 < opts.length) {
        q.limit = [parseInteger(opts[i + 1]!), parseInteger(opts[i + 2]!)];
        i += 2;
      } else throw new RedisError(Errors.syntax);
    }
    if (q.limit && q.by === "rank") {
      throw new RedisError(
        "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
      );
    }
    if (withScores && q.by === "lex") {
      throw new RedisError("ERR syntax error, WITHSCORES not supported in combination with BYLEX");
    }
    return flatten(range(ctx.keyspace.read(key, "zset"), q), withScores);
  };
}

function zadd(ctx: CommandContext, [key = "", ...rest]: string[]): Reply {
  const flags = new Set<string>();
  let i = 0;
  for (; i < rest.length; i++) {
    const o = upper(rest[i]);
    if (!["NX", "XX", "GT", "LT", "CH", "INCR"].includes(o)) break;
    flags.add(o);
  }
  const pairs = rest.slice(i);
  if (flags.has("NX") && flags.has("XX")) {
    throw new RedisError("ERR XX and NX options at the same time are not compatible");
  }
  if (
    (flags.has("GT") && flags.has("LT")) ||
    (flags.has("NX") && (flags.has("GT") || flags.has("LT")))
  ) {
    throw new RedisError("ERR GT, LT, and/or NX options at the same time are not compatible");
  }
  if (pairs.length === 0 || pairs.length % 2 !== 0) throw new RedisError(Errors.syntax);
  if (flags.has("INCR") && pairs.length > 2) {
    throw new RedisError("ERR INCR option supports a single increment-element pair");
  }
  const scores: number[] = [];
  for (let j = 0; j < pairs.length; j += 2) scores.push(parseDouble(pairs[j]!));

  const existing = ctx.keyspace.read(key, "zset");
  if (!existing && flags.has("XX")) return flags.has("INCR") ? null : 0;
  const zset = existing ?? ctx.keyspace.readOrCreate(key, "zset");
  let added = 0;
  let changed = 0;
  let incrResult: number | null = null;
  for (let j = 0; j < pairs.length; j += 2) {
    const member = pairs[j + 1]!;
    let score = scores[j / 2]!;
    const current = zset.get(member);
    if (current === undefined) {
      if (flags.has("XX")) continue;
    } else {
      if (flags.has("NX")) continue;
      if (flags.has("INCR")) score = current + score;
      if (Number.isNaN(score)) throw new RedisError("ERR resulting score is not a number (NaN)");
      if (flags.has("GT") && !(score > current)) continue;
      if (flags.has("LT") && !(score < current)) continue;
    }
    incrResult = score;
    if (current === undefined) added++;
    else if (current !== score) changed++;
    zset.set(member, score);
  }
  ctx.keyspace.dropIfEmpty(key);
  if (flags.has("INCR")) return incrResult === null ? null : formatG17(incrResult);
  return flags.has("CH") ? added + changed : added;
}

function rank(rev: boolean) {
  return (ctx: CommandContext, [key = "", member = "", ...opts]: string[]): Reply => {
    const withScore = opts.length === 1 && upper(opts[0]) === "WITHSCORE";
    if (opts.length > 0 && !withScore) throw new RedisError(Errors.syntax);
    const zset = ctx.keyspace.read(key, "zset");
    if (!zset?.has(member)) return null;
    const pairs = sorted(zset);
    if (rev) pairs.reverse();
    const r = pairs.findIndex(([m]) => m === member);
    return withScore ? [r, formatG17(zset.get(member)!)] : r;
  };
}

export const sortedSetCommands: CommandTable = {
  ZADD: { arity: -4, run: zadd },
  ZINCRBY: {
    arity: 4,
    run: (ctx, [key = "", by = "", member = ""]) => {
      const delta = parseDouble(by);
      const zset = ctx.keyspace.readOrCreate(key, "zset");
      const next = (zset.get(member) ?? 0) + delta;
      if (Number.isNaN(next)) {
        ctx.keyspace.dropIfEmpty(key);
        throw new RedisError("ERR resulting score is not a number (NaN)");
      }
      zset.set(member, next);
      return formatG17(next);
    },
  },
  ZSCORE: {
    arity: 3,
    run: (ctx, [key = "", member = ""]) => {
      const score = ctx.keyspace.read(key, "zset")?.get(member);
      return score === undefined ? null : formatG17(score);
    },
  },
  ZMSCORE: {
    arity: -3,
    run: (ctx, [key = "", ...members]) => {
      const zset = ctx.keyspace.read(key, "zset");
      return members.map((m) => {
        const s = zset?.get(m);
        return s === undefined ? null : formatG17(s);
      });
    },
  },
  ZCARD: { arity: 2, run: (ctx, [key = ""]) => ctx.keyspace.read(key, "zset")?.size ?? 0 },
  ZREM: {
    arity: -3,
    run: (ctx, [key = "", ...members]) => {
      const zset = ctx.keyspace.read(key, "zset");
      if (!zset) return 0;
      const removed = members.filter((m) => zset.delete(m)).length;
      ctx.keyspace.dropIfEmpty(key);
      return removed;
    },
  },
  ZRANGE: { arity: -4, run: zrange({}) },
  ZRANGEBYSCORE: { arity: -4, run: zrange({ by: "score", rev: false }) },
  ZREVRANGEBYSCORE: { arity: -4, run: zrange({ by: "score", rev: true }) },
  ZREVRANGE: { arity: -4, run: zrange({ by: "rank", rev: true }) },
  ZCOUNT: {
    arity: 4,
    run: (ctx, [key = "", min = "", max = ""]) =>
      range(ctx.keyspace.read(key, "zset"), {
        by: "score",
        rev: false,
        start: min,
        stop: max,
        limit: undefined,
      }).length,
  },
  ZRANK: { arity: -3, run: rank(false) },
  ZREVRANK: { arity: -3, run: rank(true) },
  ZREMRANGEBYSCORE: {
    arity: 4,
    run: (ctx, [key = "", min = "", max = ""]) => removeRange(ctx, key, "score", min, max),
  },
  ZREMRANGEBYRANK: {
    arity: 4,
    run: (ctx, [key = "", start = "", stop = ""]) => removeRange(ctx, key, "rank", start, stop),
  },
  ZSCAN: {
    arity: -3,
    run: (ctx, [key = "", _cursor, ...opts]) => {
      const match = parseCollectionScan(opts);
      const out: string[] = [];
      for (const [m, s] of ctx.keyspace.read(key, "zset") ?? []) {
        if (match === undefined || globMatch(match, m)) out.push(m, formatG17(s));
      }
      return ["0", out];
    },
  },
};

function removeRange(
  ctx: CommandContext,
  key: string,
  by: "rank" | "score",
  start: string,
  stop: string,
): Reply {
  const zset = ctx.keyspace.read(key, "zset");
  const doomed = range(zset, { by, rev: false, start, stop, limit: undefined });
  for (const [m] of doomed) zset?.delete(m);
  ctx.keyspace.dropIfEmpty(key);
  return doomed.length;
}
