import { Buffer } from "node:buffer";
import type { RestResult, RestValue } from "./reply.ts";

export class BadRequest extends Error {}

function toArg(v: unknown): string {
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean" || v === null) return String(v);
  throw new BadRequest("ERR command arguments must be strings, numbers, booleans or null");
}

function toCommand(v: unknown): string[] {
  if (!Array.isArray(v) || v.length === 0) {
    throw new BadRequest("ERR a command must be a non-empty JSON array");
  }
  return v.map(toArg);
}

function parseJson(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    throw new BadRequest("ERR failed to parse the request body as JSON");
  }
}

/** `POST /` body: `["SET", "k", "v"]`. */
export function parseCommand(body: string): string[] {
  return toCommand(parseJson(body));
}

/** `POST /pipeline` and `/multi-exec` body: `[["SET","k","v"], ["GET","k"]]`. */
export function parseCommands(body: string): string[][] {
  const v = parseJson(body);
  if (!Array.isArray(v) || v.length === 0) {
    throw new BadRequest("ERR a pipeline must be a non-empty JSON array of commands");
  }
  return v.map(toCommand);
}

/**
 * `Upstash-Encoding: base64`: every string in a result is base64 of its UTF-8 bytes, at any
 * depth. The SDK passes a bare top-level "OK" through undecoded, so the status reply OK is left
 * plain as Upstash does; integers and nulls are never encoded.
 */
export function encodeBase64(value: RestValue, topLevel = true): RestValue {
  if (typeof value === "string") {
    return topLevel && value === "OK" ? value : Buffer.from(value, "utf8").toString("base64");
  }
  if (Array.isArray(value)) return value.map((v) => encodeBase64(v, false));
  return value;
}

export function encodeResult(r: RestResult, base64: boolean): RestResult {
  if ("error" in r || !base64) return r;
  return { result: encodeBase64(r.result) };
}
