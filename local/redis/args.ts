import { Errors, RedisError } from "./reply.ts";

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
// Redis' string2ll: optional minus, no leading zeros, no plus sign, no spaces.
const INTEGER = /^(?:0|-?[1-9][0-9]*)$/;

/** Parses a signed 64-bit integer the way Redis does, or throws `message`. */
export function parseInt64(s: string, message: string = Errors.notInteger): bigint {
  if (!INTEGER.test(s) || s.length > 20) throw new RedisError(message);
  const n = BigInt(s);
  if (n < INT64_MIN || n > INT64_MAX) throw new RedisError(message);
  return n;
}

/** An integer argument as a JS number (counts, TTLs, indexes). */
export function parseInteger(s: string, message: string = Errors.notInteger): number {
  return Number(parseInt64(s, message));
}

export function inInt64Range(n: bigint): boolean {
  return n >= INT64_MIN && n <= INT64_MAX;
}

/** Parses a double as Redis does (accepts inf/-inf, rejects NaN, spaces and empty strings). */
export function parseDouble(s: string, message: string = Errors.notFloat): number {
  const lower = s.toLowerCase();
  if (lower === "inf" || lower === "+inf" || lower === "infinity" || lower === "+infinity") {
    return Number.POSITIVE_INFINITY;
  }
  if (lower === "-inf" || lower === "-infinity") return Number.NEGATIVE_INFINITY;
  if (s === "" || /\s/.test(s)) throw new RedisError(message);
  const n = Number(s);
  if (Number.isNaN(n)) throw new RedisError(message);
  return n;
}

/** C's `%.17g`, which Redis 7.0 uses for scores and for Lua numbers passed to commands. */
export function formatG17(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (x === Number.POSITIVE_INFINITY) return "inf";
  if (x === Number.NEGATIVE_INFINITY) return "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0" : "0";
  const [mantissa = "0", exponentText = "0"] = x.toExponential(16).split("e");
  const exponent = Number(exponentText);
  if (exponent < -4 || exponent >= 17) {
    const m = stripZeros(mantissa);
    const sign = exponent < 0 ? "-" : "+";
    return `${m}e${sign}${String(Math.abs(exponent)).padStart(2, "0")}`;
  }
  return stripZeros(x.toFixed(16 - exponent));
}

/** A float result of INCRBYFLOAT/HINCRBYFLOAT: plain decimal notation, no exponent. */
export function formatFloatValue(x: number): string {
  const s = String(x);
  if (!/e/i.test(s)) return s;
  if (Number.isInteger(x)) return BigInt(x).toString();
  return stripZeros(x.toFixed(20));
}

function stripZeros(s: string): string {
  if (!s.includes(".")) return s;
  return s.replace(/\.?0+$/, "");
}

/** Upper-cases an option name; the REST API accepts commands and options in any case. */
export function upper(s: string | undefined): string {
  return (s ?? "").toUpperCase();
}
