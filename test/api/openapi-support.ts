// Reading the OpenAPI document the Worker serves and checking real responses against it. JSON
// schemas are compiled with ajv (JSON Schema 2020-12, the dialect of OpenAPI 3.1) after two
// rewrites: component refs point into $defs, and every object without an explicit
// additionalProperties gets `false`, so a field the document does not mention is an error.
import { Ajv2020 } from "ajv/dist/2020.js";
import addFormats from "ajv-formats";
import type { ApiResponse } from "../support/api.ts";

export { exampleFor } from "../../scripts/support/openapi-examples.ts";

// biome-ignore lint/suspicious/noExplicitAny: the document is plain JSON of many shapes.
export type Json = any;

export const HTTP_METHODS = ["get", "put", "post", "delete", "patch", "head", "options"] as const;

export interface Operation {
  method: string;
  path: string;
  key: string;
  op: Json;
}

export function operations(doc: Json): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries<Json>(doc.paths ?? {})) {
    for (const method of HTTP_METHODS) {
      if (item[method])
        out.push({ method, path, key: `${method.toUpperCase()} ${path}`, op: item[method] });
    }
  }
  return out;
}

/** Resolves a local `#/...` reference. */
export function resolveRef(doc: Json, ref: string): Json {
  if (!ref.startsWith("#/")) throw new Error(`external $ref ${ref}`);
  let node = doc;
  for (const part of ref.slice(2).split("/")) {
    node = node?.[part.replaceAll("~1", "/").replaceAll("~0", "~")];
    if (node === undefined) throw new Error(`unresolved $ref ${ref}`);
  }
  return node;
}

export const deref = (doc: Json, schema: Json): Json =>
  schema && typeof schema.$ref === "string" ? deref(doc, resolveRef(doc, schema.$ref)) : schema;

/** Every `$ref` string anywhere in the document. */
export function allRefs(node: Json, out: string[] = []): string[] {
  if (Array.isArray(node)) for (const n of node) allRefs(n, out);
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else if (k !== "example" && k !== "examples") allRefs(v, out);
    }
  }
  return out;
}

const ANNOTATIONS = new Set(["example", "examples", "default", "const", "enum"]);

const OPEN = "__open";

/**
 * Closes every object schema to unknown fields. A member of an allOf stays open at its top (it
 * cannot see its siblings' fields) and the allOf itself gets `unevaluatedProperties: false`.
 */
function strictSchema(node: Json, open = false): Json {
  if (Array.isArray(node)) return node.map((n) => strictSchema(n));
  if (!node || typeof node !== "object") return node;
  const out: Json = {};
  for (const [k, v] of Object.entries<Json>(node)) {
    if (k === "$ref" && typeof v === "string") {
      out.$ref = `${v.replace("#/components/schemas/", "#/$defs/")}${open ? OPEN : ""}`;
    } else if (k === "properties" && v && typeof v === "object") {
      out.properties = Object.fromEntries(
        Object.entries(v).map(([name, sub]) => [name, strictSchema(sub)]),
      );
    } else if (k === "allOf" && Array.isArray(v)) {
      out.allOf = v.map((member) => strictSchema(member, true));
      if (!open) {
        out.type ??= "object";
        out.unevaluatedProperties = false;
      }
    } else {
      out[k] = ANNOTATIONS.has(k) ? v : strictSchema(v);
    }
  }
  const types = Array.isArray(out.type) ? out.type : [out.type];
  if (types.includes("object") && out.additionalProperties === undefined && !open && !out.allOf) {
    out.additionalProperties = false;
  }
  return out;
}

/** Component schemas as $defs, each also in an open variant for use inside allOf. */
function definitions(doc: Json): Json {
  const $defs: Json = {};
  for (const [name, schema] of Object.entries<Json>(doc.components?.schemas ?? {})) {
    $defs[name] = strictSchema(schema);
    $defs[`${name}${OPEN}`] = strictSchema(schema, true);
  }
  return $defs;
}

const ajv = new Ajv2020({ allErrors: true, strict: true });
addFormats(ajv);
// OpenAPI's own annotation keyword (JSON Schema 2020-12 says `examples`).
ajv.addKeyword("example");

/** A compiled schema: answers the ways a value breaks it (none when it conforms). */
export type SchemaCheck = (value: unknown) => string[];

/** Compiles a schema of the document (a `$ref` or inline) into a strict check, with ajv. */
export function compileSchema(doc: Json, schema: Json): SchemaCheck {
  const validate = ajv.compile({ ...strictSchema(schema), $defs: definitions(doc) });
  return (value) =>
    validate(value)
      ? []
      : (validate.errors ?? []).map(
          (e) => `${e.instancePath || "/"} ${e.message ?? e.keyword} ${JSON.stringify(e.params)}`,
        );
}

/** Leaf fields (path → schema) of a schema, following refs, arrays and anyOf/oneOf/allOf. */
export function leaves(
  doc: Json,
  schema: Json,
  path = "",
  seen = new Set<string>(),
): [string, Json][] {
  const out: [string, Json][] = [];
  if (!schema) return out;
  if (schema.$ref) {
    if (seen.has(schema.$ref)) return out;
    return leaves(doc, resolveRef(doc, schema.$ref), path, new Set([...seen, schema.$ref]));
  }
  for (const k of ["anyOf", "oneOf", "allOf"]) {
    if (schema[k]) return schema[k].flatMap((s: Json) => leaves(doc, s, path, seen));
  }
  const types: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
  if (types.includes("object") && schema.properties) {
    for (const [name, sub] of Object.entries(schema.properties)) {
      out.push(...leaves(doc, sub, path ? `${path}.${name}` : name, seen));
    }
    return out;
  }
  if (types.includes("array")) return leaves(doc, schema.items, `${path}[]`, seen);
  out.push([path, schema]);
  return out;
}

/** A field shows its reader what a value looks like: an example, or a closed set of values. */
export const hasExample = (s: Json) =>
  s.example !== undefined ||
  (Array.isArray(s.examples) && s.examples.length > 0) ||
  Array.isArray(s.enum) ||
  s.const !== undefined ||
  s.type === "boolean" ||
  s.type === "null";

/** The documented operation a concrete request path belongs to. */
export function findOperation(doc: Json, method: string, urlPath: string): Operation | undefined {
  const path = urlPath.split("?")[0] ?? urlPath;
  return operations(doc).find((o) => {
    if (o.method !== method.toLowerCase()) return false;
    const pattern = o.path
      .split("/")
      .map((seg) => (/^\{.+\}$/.test(seg) ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
      .join("/");
    return new RegExp(`^${pattern}$`).test(path);
  });
}

/** Response headers a client acts on: each one the Worker sends must be documented. */
export const NOTABLE_HEADERS = [
  "location",
  "retry-after",
  "ratelimit-limit",
  "ratelimit-remaining",
  "ratelimit-reset",
  "x-cache",
  "www-authenticate",
  "allow",
];

/**
 * Every way `res` disagrees with what the document says `op` answers: an undocumented status,
 * body field, error code or header, or a required header that is missing.
 */
export function responseProblems(doc: Json, op: Json, res: ApiResponse): string[] {
  const problems: string[] = [];
  // An explicit status wins over its range (OAS 3.1: "2XX").
  const documented =
    op.responses?.[String(res.status)] ?? op.responses?.[`${String(res.status)[0]}XX`];
  if (!documented)
    return [`status ${res.status} is not documented (body: ${res.text.slice(0, 200)})`];
  const response = deref(doc, documented);
  const type = (res.headers.get("content-type") ?? "").split(";")[0]?.trim() ?? "";
  const content = response.content ?? {};
  if (Object.keys(content).length === 0) {
    if (res.text !== "")
      problems.push(`a body was sent but none is documented: ${res.text.slice(0, 200)}`);
  } else if (!content[type]) {
    problems.push(`content type "${type}" is not documented (${Object.keys(content).join(", ")})`);
  } else if (type.endsWith("json")) {
    const broken = compileSchema(doc, content[type].schema)(res.body);
    if (broken.length > 0) {
      problems.push(`body does not match the schema: ${broken.join("; ").slice(0, 800)}`);
    }
    if (res.status >= 400) {
      const codes = Object.keys(content[type].examples ?? {});
      const code = res.body?.error?.code;
      if (!codes.includes(code))
        problems.push(`error code ${code} is not documented (${codes.join(", ")})`);
    }
  }
  const headers = Object.fromEntries(
    Object.entries<Json>(response.headers ?? {}).map(([k, v]) => [k.toLowerCase(), deref(doc, v)]),
  );
  for (const [name, h] of Object.entries<Json>(headers)) {
    if (h.required && !res.headers.has(name)) problems.push(`required header ${name} is missing`);
  }
  for (const name of NOTABLE_HEADERS) {
    if (res.headers.has(name) && !headers[name]) problems.push(`header ${name} is not documented`);
  }
  return problems;
}
