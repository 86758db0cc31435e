/**
 * The request edge (issue 16 items 2 and 5): the one place where the field names other clients
 * of this spec send are mapped to ours, unknown fields are refused with the field that was
 * probably meant, and validation issues become sentences a person can act on. `createRouter()`
 * applies it to every route, so no route file carries alias or message code.
 */
import type { z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../../context";
import { ValidationError } from "../../errors";

/**
 * Alias → field. An alias applies only on a route that has the field and not the alias itself
 * (signup's `name` is its own field; the chatroom's `name` is an alias of `title`).
 */
export const FIELD_ALIASES: Readonly<Record<string, string>> = {
  mobile: "mobile_number",
  phone: "mobile_number",
  phone_number: "mobile_number",
  otp_code: "otp",
  code: "otp",
  name: "title",
  full_name: "name",
  message: "content",
  prompt: "content",
  text: "content",
  old_password: "current_password",
};

/** Where a validation issue was found, as `details[].location` names it. */
export type IssueLocation = "json" | "query" | "param" | "header" | "cookie" | "form";

export interface FieldIssue {
  /** Dotted path of the field (`title`, `usage.days`); "" for the body or query as a whole. */
  path: string;
  message: string;
  location: IssueLocation;
}

type AnySchema = z.ZodType;
type Def = {
  type: string;
  innerType?: AnySchema;
  in?: AnySchema;
  shape?: Record<string, AnySchema>;
};

const defOf = (s: AnySchema): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** The schema under optional/nullable/default/pipe wrappers. */
function unwrap(schema: AnySchema): AnySchema {
  let s = schema;
  for (let i = 0; i < 10; i++) {
    const d = defOf(s);
    const next = d.innerType ?? (d.type === "pipe" ? d.in : undefined);
    if (!next) return s;
    s = next;
  }
  return s;
}

/** The fields of an object schema, or null when the schema is not an object. */
export function fieldsOf(schema: AnySchema | undefined): string[] | null {
  if (!schema) return null;
  const d = defOf(unwrap(schema));
  return d.type === "object" && d.shape ? Object.keys(d.shape) : null;
}

function fieldSchema(schema: AnySchema | undefined, path: PropertyKey[]): AnySchema | undefined {
  let s = schema;
  for (const key of path) {
    if (!s) return undefined;
    const d = defOf(unwrap(s));
    s = d.type === "object" && typeof key === "string" ? d.shape?.[key] : undefined;
  }
  return s && unwrap(s);
}

/** Levenshtein distance, for "did you mean". Inputs are field names (short). */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0] as number;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j] as number;
      row[j] = Math.min(
        above + 1,
        (row[j - 1] as number) + 1,
        diagonal + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
      diagonal = above;
    }
  }
  return row[b.length] as number;
}

const squash = (s: string) => s.toLowerCase().replace(/[^a-z0-9]/g, "");

/**
 * The accepted field an unknown one most likely meant: a small edit away (a typo), or a prefix
 * of at least 3 characters (`mobil`), compared with the route's fields and their aliases.
 */
export function closestField(key: string, fields: readonly string[]): string | null {
  const candidates: [name: string, field: string][] = fields.map((f) => [f, f]);
  for (const [alias, field] of Object.entries(FIELD_ALIASES)) {
    if (fields.includes(field) && !fields.includes(alias)) candidates.push([alias, field]);
  }
  const k = squash(key);
  if (k.length === 0) return null;
  let best: { field: string; score: number } | null = null;
  for (const [name, field] of candidates) {
    const n = squash(name);
    const edits = distance(k, n);
    const close =
      edits <= (Math.min(k.length, n.length) <= 4 ? 1 : 2) ||
      (k.length >= 3 && (n.startsWith(k) || k.startsWith(n)));
    if (close && (!best || edits < best.score)) best = { field, score: edits };
  }
  return best?.field ?? null;
}

export function unknownFieldMessage(key: string, fields: readonly string[]): string {
  const near = closestField(key, fields);
  if (near) return `Unknown field "${key}"; did you mean "${near}"?`;
  return fields.length > 0
    ? `Unknown field "${key}"; accepted fields: ${fields.join(", ")}.`
    : `Unknown field "${key}"; this request takes no fields.`;
}

/**
 * Renames aliases to the route's fields and refuses unknown fields and a field sent together
 * with its alias. Returns the body unchanged when it is not a JSON object (the schema says why).
 */
export function normaliseFields(body: unknown, fields: readonly string[]): unknown {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return body;
  const issues: FieldIssue[] = [];
  const renamed = new Map<string, string>();
  for (const key of Object.keys(body)) {
    if (fields.includes(key)) continue;
    const field = Object.hasOwn(FIELD_ALIASES, key) ? FIELD_ALIASES[key] : undefined;
    if (field && fields.includes(field)) {
      const other = Object.hasOwn(body, field) ? field : renamed.get(field);
      if (other !== undefined) {
        issues.push({
          path: key,
          message: `Send "${field}" once: "${key}" and "${other}" name the same field.`,
          location: "json",
        });
      } else {
        renamed.set(field, key);
      }
      continue;
    }
    issues.push({ path: key, message: unknownFieldMessage(key, fields), location: "json" });
  }
  if (issues.length > 0) throw invalid(issues);
  if (renamed.size === 0) return body;
  // Every key written is one of the route's own field names (never `__proto__`).
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (fields.includes(key)) out[key] = value;
  }
  for (const [field, alias] of renamed) out[field] = (body as Record<string, unknown>)[alias];
  return out;
}

/**
 * Middleware for a route with a JSON object body: normalises the parsed body and hands it to the
 * route's validator through Hono's body cache. A body that is not JSON is left to the validator.
 */
export function normaliseJsonBody(fields: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const type = c.req.header("content-type") ?? "";
    if (/^application\/json\s*(;|$)/i.test(type)) {
      // HonoRequest.json() parses the cached text, so a changed body goes there.
      const cache = c.req.bodyCache as { text?: Promise<string> };
      const text = await c.req.text();
      let parsed: unknown;
      let ok = true;
      try {
        parsed = JSON.parse(text);
      } catch {
        ok = false;
      }
      // A body that is not JSON (or no body) is left to the validator's own 400.
      if (ok) {
        const normalised = normaliseFields(parsed, fields);
        if (normalised !== parsed) cache.text = Promise.resolve(JSON.stringify(normalised));
      }
    }
    await next();
  };
}

/** Human text for the expected type of a zod `invalid_type` issue. */
const TYPE_TEXT: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  object: "a JSON object",
  array: "a list",
  null: "null",
};

const FORMAT_TEXT: Record<string, string> = {
  email: "an email address",
  url: "a URL",
  datetime: "an ISO 8601 date-time",
  date: "a date (YYYY-MM-DD)",
  uuid: "a UUID",
};

/** zod's own English messages; a schema's custom message (already a sentence) is kept. */
const ZOD_DEFAULT =
  /^(Invalid input|Invalid option|Invalid (string|email|URL|UUID|ISO|number|date)|Too (small|big)|Unrecognized key)/;

function numberRule(schema: AnySchema): string {
  const n = schema as unknown as {
    minValue?: number | null;
    maxValue?: number | null;
    isInt?: boolean;
  };
  const kind = n.isInt ? "a whole number" : "a number";
  const min = Number.isFinite(n.minValue ?? Number.NaN) ? n.minValue : null;
  const max =
    Number.isFinite(n.maxValue ?? Number.NaN) && (n.maxValue as number) < 2 ** 53 - 1
      ? n.maxValue
      : null;
  if (min !== null && min !== undefined && max !== null && max !== undefined) {
    return `${kind} from ${min} to ${max}`;
  }
  if (min !== null && min !== undefined && min > -(2 ** 53 - 1))
    return `${kind} of at least ${min}`;
  if (max !== null && max !== undefined) return `${kind} of at most ${max}`;
  return kind;
}

type Issue = z.core.$ZodIssue;

function valueAt(data: unknown, path: readonly PropertyKey[]): unknown {
  let v = data;
  for (const key of path) {
    if (v === null || typeof v !== "object") return undefined;
    v = Object.hasOwn(v, key) ? (v as Record<PropertyKey, unknown>)[key] : undefined;
  }
  return v;
}

function issueMessages(
  issue: Issue,
  data: unknown,
  schema: AnySchema | undefined,
  location: IssueLocation,
): FieldIssue[] {
  const path = issue.path.map(String).join(".");
  const whole = location === "json" ? "The body" : `The ${location}`;
  const name = path || whole;
  const at = (message: string, p = path): FieldIssue => ({ path: p, message, location });
  if (issue.code === "unrecognized_keys") {
    const fields = fieldsOf(fieldSchema(schema, issue.path)) ?? [];
    return issue.keys.map((key) =>
      at(unknownFieldMessage(key, fields), path ? `${path}.${key}` : key),
    );
  }
  const field = fieldSchema(schema, issue.path);
  const isNumber = field !== undefined && defOf(field).type === "number";
  if (issue.code === "invalid_type" && path && valueAt(data, issue.path) === undefined) {
    return [at(`${name} is required`)];
  }
  if (
    isNumber &&
    ["invalid_type", "too_small", "too_big", "not_multiple_of"].includes(issue.code) &&
    (issue.code === "invalid_type" || ZOD_DEFAULT.test(issue.message))
  ) {
    return [at(`${name} must be ${numberRule(field)}`)];
  }
  if (!ZOD_DEFAULT.test(issue.message)) return [at(issue.message)];
  switch (issue.code) {
    case "invalid_type":
      return [at(`${name} must be ${TYPE_TEXT[issue.expected] ?? issue.expected}`)];
    case "too_small":
      if (issue.origin === "string") {
        return [
          at(
            Number(issue.minimum) <= 1
              ? `${name} must not be empty`
              : `${name} must be at least ${issue.minimum} characters`,
          ),
        ];
      }
      return [at(`${name} must have at least ${issue.minimum} items`)];
    case "too_big":
      if (issue.origin === "string") {
        return [at(`${name} must be at most ${issue.maximum} characters`)];
      }
      return [at(`${name} must have at most ${issue.maximum} items`)];
    case "invalid_format":
      return [
        at(
          FORMAT_TEXT[issue.format]
            ? `${name} must be ${FORMAT_TEXT[issue.format]}`
            : `${name} is not in the expected format`,
        ),
      ];
    case "invalid_value":
      return [
        at(`${name} must be one of: ${issue.values.map((v) => JSON.stringify(v)).join(", ")}`),
      ];
    default:
      return [at(`${name} is invalid`)];
  }
}

/** The 400 for a list of field issues: the message says what to fix, details say where. */
export function invalid(issues: FieldIssue[]): ValidationError {
  const shown = issues
    .slice(0, 3)
    .map((i) => i.message.replace(/[.?]$/, (m) => (m === "?" ? m : "")));
  const more = issues.length > 3 ? `; and ${issues.length - 3} more (see details)` : "";
  return new ValidationError(`${shown.join("; ")}${more}.`.replace(/\?\.$/, "?"), issues);
}

/**
 * The validation hook of every route: turns zod's issues for `target` into sentences naming the
 * field (`title is required`, `limit must be a whole number from 1 to 100`).
 */
export function validationHook(schemaFor: (target: string) => AnySchema | undefined) {
  return (
    result: { success: boolean; target: string; data?: unknown; error?: z.ZodError },
    _c: Context<AppEnv>,
  ): void => {
    if (result.success || !result.error) return;
    const location = result.target as IssueLocation;
    const schema = schemaFor(result.target);
    throw invalid(
      result.error.issues.flatMap((issue) => issueMessages(issue, result.data, schema, location)),
    );
  };
}

/**
 * Middleware for a write that takes no body (`POST /subscription/cancel`): an empty body or `{}`
 * is fine (clients send either); any field is refused like an unknown field, so a request the
 * route would ignore is never counted as a valid one (rate limits are taken after validation).
 */
export const takesNoBody: MiddlewareHandler<AppEnv> = async (c, next) => {
  const text = (await c.req.text()).trim();
  if (text !== "") {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw invalid([{ path: "", message: "The body is not valid JSON", location: "json" }]);
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw invalid([
        { path: "", message: "The body must be empty or an empty JSON object", location: "json" },
      ]);
    }
    normaliseFields(parsed, []);
  }
  await next();
};
