// Property-based fuzzing from the route schemas: the test reads /openapi.json, and fast-check
// builds requests that break each operation's schema (wrong types, missing and extra fields,
// strings over their bound, deep nesting, invalid UTF-8, foreign content types, path ids and
// credentials of every shape). Each answer must be a 4xx in the error shape within a bound, and
// no rejected request may change either user's state.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { createSession, type TestSession, uniqueClientIp } from "../support/session.ts";
import {
  boundedCall,
  concretePath,
  expectClientError,
  type Fixture,
  type JsonSchema,
  type Operation,
  useGuardedFixture,
} from "./fuzz-support.ts";

/** Runs per property; FUZZ_RUNS raises it for a longer local session. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 40);
// Each run is an HTTP round trip: shrinking a failure can outlast the test timeout and hide the
// counterexample, so report the first failing input as it is.
fc.configureGlobal({ endOnFailure: true });
const PROPERTY_TIMEOUT_MS = 60_000 + RUNS * 1_000;

let f: Fixture;
let operations: Operation[];
// Every request in this file is refused, so neither user may change in any way (checked after).
useGuardedFixture((fixture, ops) => {
  f = fixture;
  operations = ops;
});

// ---- arbitraries ----------------------------------------------------------------------------

const EDGE_PIECES = [
  "\ud800",
  "\udfff",
  "\u0000",
  "\u202e",
  "\u200d",
  "\u200b",
  "\ufeff",
  "\uffff",
  "👩‍👩‍👧",
  "é",
  "e\u0301",
  "' OR 1=1--",
  "'; drop table users; --",
  "<script>alert(1)</script>",
  "{{7*7}}",
  "$" + "{7*7}",
  '{"$ne":null}',
  "../../etc/passwd",
  "%00",
  "\\",
  '"',
];

/** Any string, weighted towards the pieces that break parsers, databases and renderers. */
const edgyString = fc
  .array(fc.oneof(fc.string({ unit: "binary", maxLength: 12 }), fc.constantFrom(...EDGE_PIECES)), {
    maxLength: 8,
  })
  .map((parts) => parts.join(""));

const anyJson: fc.Arbitrary<unknown> = fc.oneof(
  edgyString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }),
);

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
const wellFormed = (s: string) => !LONE_SURROGATE.test(s);

const typesOf = (s: JsonSchema): string[] =>
  Array.isArray(s?.type) ? s.type : s?.type ? [s.type] : [];

/** A JSON value whose type the field's schema does not allow. */
function wrongTypeFor(field: JsonSchema): fc.Arbitrary<unknown> {
  const allowed = new Set(typesOf(field));
  const options: fc.Arbitrary<unknown>[] = [];
  if (!allowed.has("string")) options.push(edgyString);
  if (!allowed.has("integer") && !allowed.has("number")) {
    options.push(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }));
  }
  if (!allowed.has("boolean")) options.push(fc.boolean());
  if (!allowed.has("null")) options.push(fc.constant(null));
  if (!allowed.has("array")) options.push(fc.array(edgyString, { maxLength: 3 }));
  if (!allowed.has("object")) options.push(fc.dictionary(edgyString, edgyString, { maxKeys: 3 }));
  return fc.oneof(...options);
}

function nest(value: unknown, depth: number, asArray: boolean): string {
  const inner = JSON.stringify(value) ?? "null";
  return asArray
    ? `${"[".repeat(depth)}${inner}${"]".repeat(depth)}`
    : `${'{"a":'.repeat(depth)}${inner}${"}".repeat(depth)}`;
}

interface BadBody {
  kind: string;
  /** The exact bytes sent. */
  raw: string | Uint8Array;
}

/**
 * A body that violates `schema` for certain: the base object fills every field with anything
 * (hostile strings included), then exactly one mutation makes it invalid.
 */
function badBodyFor(schema: JsonSchema): fc.Arbitrary<BadBody> {
  const props = Object.entries((schema.properties ?? {}) as Record<string, JsonSchema>);
  const required = (schema.required ?? []) as string[];
  const names = props.map(([n]) => n);
  const base = fc.record(
    Object.fromEntries(props.map(([n]) => [n, edgyString])) as Record<string, fc.Arbitrary<string>>,
  );
  const json = (v: unknown): BadBody["raw"] => JSON.stringify(v);

  const mutations: fc.Arbitrary<BadBody>[] = [
    // Wrong type in one field.
    fc.tuple(base, fc.constantFrom(...props)).chain(([b, [name, field]]) =>
      wrongTypeFor(field).map((v) => ({
        kind: `wrong type ${name}`,
        raw: json({ ...b, [name]: v }),
      })),
    ),
    // An extra field (every request schema is strict: no mass assignment).
    fc
      .tuple(
        base,
        fc
          .oneof(
            fc.constantFrom("tier", "user_id", "id", "role", "is_admin", "created_at", "__proto__"),
            fc.string({ minLength: 1, maxLength: 12 }),
          )
          .filter((k) => !names.includes(k)),
        anyJson,
      )
      .map(([b, key, v]) => ({
        kind: `extra ${key}`,
        raw: `${JSON.stringify(b).slice(0, -1)}${names.length ? "," : ""}${JSON.stringify(key)}:${JSON.stringify(v) ?? "null"}}`,
      })),
    // Not an object at all, or an object nested 1,000 to 10,000 levels deep.
    fc.oneof(
      anyJson
        .filter((v) => v === null || typeof v !== "object" || Array.isArray(v))
        .map((v) => ({ kind: "not an object", raw: JSON.stringify(v) })),
      fc
        .tuple(base, fc.integer({ min: 1_000, max: 10_000 }), fc.boolean())
        .map(([b, depth, asArray]) => ({ kind: `deep ${depth}`, raw: nest(b, depth, asArray) })),
    ),
    // Invalid UTF-8 bytes inside an otherwise plausible body.
    fc
      .tuple(
        base,
        fc.constantFrom(
          [0xff],
          [0xc3, 0x28],
          [0xed, 0xa0, 0x80],
          [0xc0, 0xaf],
          [0xe2, 0x82],
          [0xf8, 0x88, 0x80, 0x80, 0x80],
        ),
      )
      .map(([b, bytes]) => {
        const text = JSON.stringify({ ...b, [names[0] ?? "x"]: "§" });
        const [head = "", tail = ""] = text.split("§");
        return {
          kind: "invalid UTF-8",
          raw: new Uint8Array([
            ...new TextEncoder().encode(head),
            ...bytes,
            ...new TextEncoder().encode(tail),
          ]),
        };
      }),
  ];
  if (required.length > 0) {
    mutations.push(
      fc.tuple(base, fc.constantFrom(...required)).map(([b, name]) => {
        const { [name]: _dropped, ...rest } = b;
        return { kind: `missing ${name}`, raw: json(rest) };
      }),
    );
  }
  const bounded = props.filter(([, field]) => typeof field.maxLength === "number");
  if (bounded.length > 0) {
    mutations.push(
      fc
        .tuple(base, fc.constantFrom(...bounded), fc.integer({ min: 1, max: 2_000 }), fc.boolean())
        .map(([b, [name, field], over, huge]) => {
          // Either just over the field's bound, or over the 64 KiB body limit (413).
          const length = huge ? 70 * 1024 : (field.maxLength as number) + over;
          return { kind: `oversize ${name}`, raw: json({ ...b, [name]: "x".repeat(length) }) };
        }),
    );
  }
  return fc.oneof(...mutations);
}

async function send(
  op: Operation,
  path: string,
  raw: BodyInit,
  headers: Record<string, string> = {},
) {
  return boundedCall(op.method, path, {
    rawBody: raw,
    headers: {
      "content-type": "application/json",
      "cf-connecting-ip": uniqueClientIp(),
      ...(op.secured ? { authorization: `Bearer ${f.me.token}` } : {}),
      ...headers,
    },
  });
}

// ---- properties ---------------------------------------------------------------------------

describe("schema-derived bad bodies", () => {
  it(
    "every operation with a JSON body refuses each schema violation with 400 or 413",
    async () => {
      const withBodies = operations.filter((op) => op.body);
      expect(withBodies.length).toBeGreaterThanOrEqual(15);
      for (const op of withBodies) {
        await fc.assert(
          fc.asyncProperty(badBodyFor(op.body), async (bad) => {
            const res = await send(op, concretePath(op, f), bad.raw as BodyInit);
            expectClientError(res, `${op.operationId} ${bad.kind}`, [400, 413]);
          }),
          { numRuns: RUNS },
        );
      }
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "the webhooks refuse any unsigned body with 400/401, whatever its bytes",
    async () => {
      const hooks = operations.filter((op) => op.path.startsWith("/webhook/"));
      expect(hooks).toHaveLength(4);
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...hooks),
          fc.oneof(
            anyJson.map((v) => JSON.stringify(v) ?? ""),
            fc.uint8Array({ maxLength: 512 }),
          ),
          fc.option(edgyString.filter((s) => /^[\x21-\x7e]*$/.test(s))),
          async (op, body, signature) => {
            const res = await send(op, `${op.path}?reply_id=${f.messageId}`, body as BodyInit, {
              ...(signature !== null
                ? { "stripe-signature": signature, "upstash-signature": signature }
                : {}),
            });
            expectClientError(res, `${op.operationId} unsigned`, [400, 401]);
          },
        ),
        { numRuns: RUNS * 2 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "refuses any Content-Type other than UTF-8 application/json with 415",
    async () => {
      const withBodies = operations.filter((op) => op.body);
      const contentType = fc
        .oneof(
          fc.constantFrom(
            "text/plain",
            "application/xml",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-16",
            "application/json; charset=latin1",
            "application/json-patch+json",
            "application/problem+json",
            "json",
            "*/*",
          ),
          fc.string({ unit: "grapheme-ascii", maxLength: 40 }),
        )
        .filter((t) => {
          const [type, ...params] = t.toLowerCase().split(";");
          const charset = params.map((p) => p.trim()).find((p) => p.startsWith("charset="));
          return !(type?.trim() === "application/json" && (!charset || /utf-?8/.test(charset)));
        });
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...withBodies), contentType, async (op, type) => {
          const res = await send(op, concretePath(op, f), '{"title":"x"}', {
            "content-type": type,
          });
          expectClientError(res, `${op.operationId} content-type ${JSON.stringify(type)}`, [415]);
        }),
        { numRuns: RUNS * 2 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("paths, queries and credentials of every shape", () => {
  const idArb = fc
    .oneof(
      edgyString.filter(wellFormed).map(encodeURIComponent),
      fc.uuid().map((u) => u.toUpperCase()),
      fc.uuid({ version: 7 }),
      fc.stringMatching(/^[0-9a-fA-F-]{1,80}$/),
      fc.constantFrom("%2e%2e%2f", "..%2f", "%00", "%ff", "-1", "0", "1.0", "null", "undefined"),
      fc.integer({ min: 1, max: 2048 }).map((n) => "z".repeat(n)),
    )
    .filter((id) => !["", ".", "..", "%2e", "%2E"].includes(id));

  it(
    "answers 404 for any chatroom or message id that is not the caller's",
    async () => {
      const withIds = operations.filter((op) => op.pathParams.length > 0);
      expect(withIds.length).toBe(9);
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...withIds),
          idArb,
          fc.boolean(),
          async (op, id, inMessageSlot) => {
            const path =
              inMessageSlot && op.pathParams.includes("message_id")
                ? concretePath(op, f).replace(f.messageId, id)
                : op.path.replace("{id}", id).replace("{message_id}", f.messageId);
            const body = op.path.endsWith("/message") ? { content: "x" } : { title: "x" };
            const res = await boundedCall(op.method, path, {
              token: f.me.token,
              ...(op.body ? { body } : {}),
            });
            expectClientError(res, `${op.method} ${path.slice(0, 100)}`, [404]);
          },
        ),
        { numRuns: RUNS * 3 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "refuses out-of-range or non-numeric limits and forged cursors with 400",
    async () => {
      const notALimit = fc
        .oneof(
          fc.integer({ max: 0 }).map(String),
          fc.integer({ min: 101 }).map(String),
          fc.double({ noNaN: true }).map(String),
          edgyString.filter(wellFormed),
        )
        .filter((s) => {
          const n = Number(s);
          return !(Number.isInteger(n) && n >= 1 && n <= 100 && s.trim() !== "");
        })
        .map((s) => `limit=${encodeURIComponent(s)}`);
      const forged = fc
        .oneof(fc.string({ minLength: 1, maxLength: 80 }), fc.base64String({ minLength: 4 }))
        .map((s) => encodeURIComponent(s));
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            notALimit.map((q) => `/chatroom?${q}`),
            notALimit.map((q) => `/chatroom/${f.roomId}/messages?${q}`),
            forged.map((c) => `/chatroom?cursor=${c}`),
            forged.map((c) => `/chatroom/${f.roomId}/messages?before=${c}`),
          ),
          async (path) => {
            const res = await boundedCall("GET", path, { token: f.me.token });
            expectClientError(res, `GET ${path.slice(0, 100)}`, [400]);
          },
        ),
        { numRuns: RUNS * 2 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );

  it(
    "answers 401 to any Authorization value that is not a valid token of ours",
    async () => {
      const [header, payload] = f.me.token.split(".");
      const b64 = fc.base64String({ maxLength: 64 }).map((s) => s.replace(/=/g, ""));
      const credential = fc.oneof(
        fc.string({ unit: "grapheme-ascii", maxLength: 200 }),
        fc.tuple(b64, b64, b64).map((p) => `Bearer ${p.join(".")}`),
        // Our real header and payload with a forged signature.
        b64.map((sig) => `Bearer ${header}.${payload}.${sig}`),
        fc.constantFrom("Bearer", "Bearer ", "bearer", "Basic YTpi", "Token abc", "Bearer null"),
        fc.integer({ min: 1, max: 16 }).map((kb) => `Bearer ${"A".repeat(kb * 1024)}`),
      );
      const secured = operations.filter((op) => op.secured);
      await fc.assert(
        fc.asyncProperty(fc.constantFrom(...secured), credential, async (op, value) => {
          const res = await boundedCall(op.method, concretePath(op, f), {
            headers: { authorization: value },
            ...(op.body ? { body: { title: "x", content: "x" } } : {}),
          });
          // A body that fails validation may be refused first (400); never anything but 4xx.
          expectClientError(
            res,
            `${op.operationId} authorization ${value.slice(0, 40)}`,
            [400, 401],
          );
        }),
        { numRuns: RUNS * 2 },
      );
    },
    PROPERTY_TIMEOUT_MS,
  );
});

describe("hostile text that is valid is stored verbatim", () => {
  let writer: TestSession;
  beforeAll(async () => {
    writer = await createSession();
  });

  it(
    "a chatroom title is either refused with 400 or read back exactly as sent (trimmed)",
    async () => {
      let created = 0;
      await fc.assert(
        fc.asyncProperty(edgyString, async (title) => {
          const trimmed = title.trim();
          const valid =
            // "1–100 characters": zod and JSON Schema count code points, not UTF-16 units.
            [...trimmed].length >= 1 &&
            [...trimmed].length <= 100 &&
            !title.includes("\0") &&
            wellFormed(title);
          const res = await boundedCall("POST", "/chatroom", {
            token: writer.token,
            body: { title },
          });
          if (!valid) {
            expectClientError(res, `title ${JSON.stringify(title)}`, [400]);
            return;
          }
          expect(res.status, `title ${JSON.stringify(title)} → ${res.text}`).toBe(201);
          created++;
          const read = await boundedCall("GET", `/chatroom/${res.body.chatroom.id}`, {
            token: writer.token,
          });
          expect(read.body.chatroom.title).toBe(trimmed);
        }),
        // At most one page of chatrooms, so the count below reads them all.
        { numRuns: Math.min(RUNS, 90) },
      );
      const list = await boundedCall("GET", "/chatroom?limit=100", { token: writer.token });
      expect(list.body.chatrooms).toHaveLength(created);
    },
    PROPERTY_TIMEOUT_MS,
  );
});
