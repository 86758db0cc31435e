// Example values built from an OpenAPI document's own schemas: the Postman generator uses them
// for request bodies, and the OpenAPI contract test checks that they pass the document.

// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is plain JSON of many shapes.
export type Json = any;

/** Follows local `$ref`s (`#/components/...`) until a schema that is not a reference. */
export function deref(doc: Json, node: Json): Json {
  if (!node || typeof node.$ref !== "string") return node;
  let out = doc;
  for (const part of node.$ref.slice(2).split("/")) out = out?.[part];
  return deref(doc, out);
}

/** A value for `schema` from the document's examples (enum/const/default as fallbacks). */
export function exampleFor(doc: Json, schema: Json): Json {
  const s = deref(doc, schema);
  if (!s) return undefined;
  if (s.example !== undefined) return s.example;
  if (Array.isArray(s.examples) && s.examples.length > 0) return s.examples[0];
  if (s.const !== undefined) return s.const;
  if (Array.isArray(s.enum)) return s.enum[0];
  if (s.default !== undefined) return s.default;
  if (s.allOf) return Object.assign({}, ...s.allOf.map((part: Json) => exampleFor(doc, part)));
  for (const k of ["anyOf", "oneOf"]) if (s[k]) return exampleFor(doc, s[k][0]);
  const types: string[] = Array.isArray(s.type) ? s.type : [s.type];
  if (types.includes("object")) {
    return Object.fromEntries(
      Object.entries<Json>(s.properties ?? {}).map(([k, v]) => [k, exampleFor(doc, v)]),
    );
  }
  if (types.includes("array")) return [exampleFor(doc, s.items)];
  if (types.includes("boolean")) return false;
  if (types.includes("null")) return null;
  return undefined;
}
