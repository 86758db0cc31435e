import { invalidRequest, missingParam, unknownParam } from "./errors.ts";

/** A decoded Stripe form body: `a[b][0]=x` becomes `{ a: { b: ["x"] } }`; leaves are strings. */
export type ParamValue = string | Params | ParamValue[];
export interface Params {
  [key: string]: ParamValue;
}

function splitKey(key: string): string[] {
  const open = key.indexOf("[");
  if (open <= 0 || !key.endsWith("]")) return [key];
  const segments = [key.slice(0, open)];
  for (const m of key.slice(open).matchAll(/\[([^[\]]*)\]/g)) segments.push(m[1] ?? "");
  return segments;
}

function isParams(v: ParamValue | undefined): v is Params {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function assign(root: Params, path: string[], value: string): void {
  let node = root;
  for (let i = 0; i < path.length; i++) {
    let seg = path[i] ?? "";
    // `expand[]=a&expand[]=b` appends, like Rack/qs do on Stripe's side.
    if (seg === "") seg = String(Object.keys(node).length);
    if (i === path.length - 1) {
      node[seg] = value;
      return;
    }
    const next = node[seg];
    if (isParams(next)) {
      node = next;
    } else {
      const created: Params = {};
      node[seg] = created;
      node = created;
    }
  }
}

/** Objects keyed 0..n-1 become arrays, except under `metadata` where keys are the user's. */
function withArrays(value: ParamValue, underMetadata: boolean): ParamValue {
  if (!isParams(value)) return value;
  const keys = Object.keys(value);
  const out: Params = {};
  for (const k of keys) out[k] = withArrays(value[k] as ParamValue, k === "metadata");
  if (!underMetadata && keys.length > 0 && keys.every((k) => /^\d+$/.test(k))) {
    return keys
      .map(Number)
      .sort((a, b) => a - b)
      .map((k) => out[String(k)] as ParamValue);
  }
  return out;
}

export function parseFormParams(text: string): Params {
  const root: Params = {};
  for (const [key, value] of new URLSearchParams(text)) assign(root, splitKey(key), value);
  return withArrays(root, false) as Params;
}

/** Rejects top-level parameters the real endpoint does not know, like Stripe does. */
export function checkKnownParams(params: Params, allowed: readonly string[]): void {
  for (const key of Object.keys(params)) {
    if (!allowed.includes(key)) throw unknownParam(key);
  }
}

export function optString(params: Params, name: string, label = name): string | undefined {
  const v = params[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw invalidRequest(`Invalid string: ${label}`, { param: label });
  return v;
}

export function reqString(params: Params, name: string, label = name): string {
  const v = optString(params, name, label);
  if (v === undefined || v === "") throw missingParam(label);
  return v;
}

export function optBool(params: Params, name: string): boolean | undefined {
  const v = optString(params, name);
  if (v === undefined) return undefined;
  if (v === "true") return true;
  if (v === "false") return false;
  throw invalidRequest(`Invalid boolean: ${v}`, { param: name });
}

export function optInt(params: Params, name: string, label = name): number | undefined {
  const v = optString(params, name, label);
  if (v === undefined) return undefined;
  if (!/^-?\d+$/.test(v)) {
    throw invalidRequest(`Invalid integer: ${v}`, {
      code: "parameter_invalid_integer",
      param: label,
    });
  }
  return Number(v);
}

export function optObject(params: Params, name: string, label = name): Params | undefined {
  const v = params[name];
  if (v === undefined) return undefined;
  if (!isParams(v)) throw invalidRequest(`Invalid object`, { param: label });
  return v;
}

export function optArray(params: Params, name: string, label = name): ParamValue[] | undefined {
  const v = params[name];
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) throw invalidRequest(`Invalid array`, { param: label });
  return v;
}

export function asParams(v: ParamValue | undefined, label: string): Params {
  if (!isParams(v)) throw invalidRequest(`Invalid object`, { param: label });
  return v;
}

/**
 * Metadata as Stripe updates it: keys merge into `current`, an empty value deletes its key and
 * `metadata=` (empty string) clears everything. Returns the new map.
 */
export function mergeMetadata(
  params: Params,
  current: Record<string, string> = {},
): Record<string, string> | undefined {
  const v = params.metadata;
  if (v === undefined) return undefined;
  if (v === "") return {};
  if (!isParams(v)) throw invalidRequest("Invalid object", { param: "metadata" });
  const next = { ...current };
  for (const [key, value] of Object.entries(v)) {
    if (typeof value !== "string") {
      throw invalidRequest("Invalid string", { param: `metadata[${key}]` });
    }
    if (key.length > 40) {
      throw invalidRequest(
        `Invalid metadata: metadata keys can have up to 40 characters, but you passed in a key that is ${key.length} characters.`,
        { param: `metadata[${key}]` },
      );
    }
    if (value.length > 500) {
      throw invalidRequest(
        `Invalid metadata: metadata values can have up to 500 characters, but you passed in a value that is ${value.length} characters.`,
        { param: `metadata[${key}]` },
      );
    }
    if (value === "") delete next[key];
    else next[key] = value;
  }
  if (Object.keys(next).length > 50) {
    throw invalidRequest("Invalid metadata: metadata can have up to 50 keys.", {
      param: "metadata",
    });
  }
  return next;
}

/** Canonical form of params for idempotency comparisons (key order must not matter). */
export function canonicalParams(value: ParamValue): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalParams).join(",")}]`;
  const keys = Object.keys(value).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalParams(value[k] as ParamValue)}`).join(",")}}`;
}
