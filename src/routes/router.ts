import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../context";
import { ERROR_CODES, type ErrorCode } from "../errors";
import { DEFAULT_ERROR_CODES } from "../errors/http";
import {
  bearerSecurity,
  requireAuth,
  requireAuthCarried,
  requireAuthDeferred,
} from "../middleware/auth";
import { jsonBody } from "../middleware/body";
import { IN_PROGRESS_RETRY_AFTER_MAX_SECONDS } from "../services/chat/idempotency";
import { FIELD_ALIASES, fieldsOf, normaliseJsonBody, validationHook } from "./shared/fields";

type Route = Parameters<OpenAPIHono<AppEnv>["openapi"]>[0];

/** The JSON body schema a route declares, if any. */
function jsonBodySchema(route: Route): z.ZodType | undefined {
  const content = route.request?.body?.content as
    | Record<string, { schema?: unknown } | undefined>
    | undefined;
  return content?.["application/json"]?.schema as z.ZodType | undefined;
}

const ALIAS_NOTE = "Field names other clients of this spec use are accepted too: ";

/**
 * The edge every route passes (src/routes/shared/fields.ts): a JSON object body has its field
 * aliases renamed and unknown fields refused before the route's validator runs, and the route's
 * description lists the aliases it accepts. Runs after the group's body checks and auth and the
 * route's own middleware.
 */
function atTheEdge(route: Route, group: RouterOptions): Route {
  const own = route.middleware ? [route.middleware].flat() : [];
  const auth =
    group.auth &&
    ![requireAuth, requireAuthDeferred, requireAuthCarried].some((m) => own.includes(m))
      ? [requireAuth]
      : [];
  const grouped = {
    ...route,
    ...(group.auth ? { security: bearerSecurity } : {}),
    middleware: [...group.body, ...auth, ...own],
  } as Route;
  const fields = fieldsOf(jsonBodySchema(route));
  if (!fields) return grouped;
  const aliases = Object.entries(FIELD_ALIASES).filter(
    ([alias, field]) => fields.includes(field) && !fields.includes(alias),
  );
  const note =
    aliases.length > 0
      ? `${ALIAS_NOTE}${aliases.map(([a, f]) => `\`${a}\` for \`${f}\``).join(", ")}. A field sent together with its alias, or any unknown field, is 400 invalid_request (the message names the field and the one you may have meant).`
      : "Any unknown field is 400 invalid_request (the message names the field and the one you may have meant).";
  return {
    ...grouped,
    description: route.description ? `${route.description}\n\n${note}` : note,
    middleware: [...(grouped.middleware as MiddlewareHandler[]), normaliseJsonBody(fields)],
  } as Route;
}

const schemaOf = (route: Route | undefined, target: string): z.ZodType | undefined => {
  if (!route) return undefined;
  if (target === "json") return jsonBodySchema(route);
  return (route.request as Record<string, z.ZodType | undefined> | undefined)?.[target];
};

/** What a route group applies to every route it declares. */
export interface RouterOptions {
  /**
   * The body checks of the group, first in every route's chain: JSON API groups take
   * `jsonBody` (64 KiB of UTF-8 JSON); webhook groups read raw bodies under their own limit.
   */
  body: readonly MiddlewareHandler<AppEnv>[];
  /**
   * Every route requires a bearer token: `requireAuth` (or the route's own
   * `requireAuthDeferred`) and the bearer security requirement in the document.
   */
  auth: boolean;
}

/**
 * Every route group is built with this, so validation failures share one error shape and every
 * request passes the same edge (body checks, auth, field aliases, unknown fields, readable
 * messages). `createRouter({ auth: true })` is the authenticated sub-router.
 */
export function createRouter(options: Partial<RouterOptions> = {}) {
  const group: RouterOptions = { body: jsonBody, auth: false, ...options };
  const router = new OpenAPIHono<AppEnv>({
    defaultHook: validationHook(() => undefined),
  });
  // `openapi` is an arrow property (bound to the router), so it can be wrapped in place.
  const register = router.openapi;
  router.openapi = ((route: Route, handler: never, hook?: never) => {
    const check = hook ?? validationHook((target) => schemaOf(route, target));
    const edged = atTheEdge(route, group);
    const headers = route.request?.headers;
    if (!(headers instanceof z.ZodObject)) return register(edged, handler, check as never);
    // The headers are documented from the route as declared, and validated by declaredHeaders
    // instead of the library's header validator (hence `hide`: the path is registered here).
    const { middleware: _chain, hide, ...documented } = edged;
    if (!hide) router.openAPIRegistry.registerPath(documented);
    return register(
      {
        ...edged,
        hide: true,
        request: { ...edged.request, headers: undefined },
        middleware: [...[edged.middleware ?? []].flat(), declaredHeaders(headers, check)],
      } as Route,
      handler,
      check as never,
    );
  }) as unknown as typeof router.openapi;
  return router;
}

type ValidationHook = (
  result: { success: boolean; target: string; data?: unknown; error?: z.ZodError },
  c: Parameters<MiddlewareHandler<AppEnv>>[0],
) => void;

/**
 * Validates the headers a route declares by reading only those: @hono/zod-openapi's own header
 * validator first copies every request header into an object (`c.req.header()`), which was about
 * 130k instructions (~0.06 ms of CPU) on every POST /chatroom (issue 18 item 8, `npm run bench --
 * --cpu --callgrind`). Same schema, same hook, same validated data (`c.req.valid("header")`).
 */
function declaredHeaders(schema: z.ZodObject, hook: ValidationHook): MiddlewareHandler<AppEnv> {
  const names = Object.keys(schema.shape);
  return async (c, next) => {
    const sent: Record<string, string> = {};
    for (const name of names) {
      const value = c.req.header(name);
      if (value !== undefined) sent[name] = value;
    }
    const result = await schema.safeParseAsync(sent);
    hook({ success: result.success, target: "header", data: sent, error: result.error }, c);
    if (result.success) c.req.addValidatedData("header", result.data as Record<string, string>);
    await next();
  };
}

/** One item of `details` on a 400 invalid_request: which field, what to fix, where it was sent. */
export const FieldIssueSchema = z
  .object({
    path: z.string().openapi({
      example: "title",
      description: "Dotted path of the field; empty for the body (or query) as a whole.",
    }),
    message: z.string().openapi({ example: "title is required" }),
    location: z
      .enum(["json", "query", "param", "header", "cookie", "form"])
      .openapi({ description: "Where the field was sent: json is the body." }),
  })
  .openapi("FieldIssue");

const AttemptsLeftSchema = z
  .object({
    attempts_left: z
      .number()
      .int()
      .openapi({ example: 4, description: "Wrong codes this code still tolerates." }),
  })
  .openapi("AttemptsLeft");

const DailyLimitSchema = z
  .object({
    limit: z.number().int().openapi({ example: 5 }),
    used: z.number().int().openapi({ example: 5 }),
    resets_at: z.string().openapi({ format: "date-time", example: "2025-01-16T00:00:00.000Z" }),
  })
  .openapi("DailyLimitDetails");

export const ErrorResponseSchema = z
  .object({
    error: z.object({
      code: z.enum(ERROR_CODES).openapi({ example: "invalid_request" }),
      message: z.string().openapi({ example: "The request is invalid." }),
      request_id: z.string().openapi({ example: "01936f4e-1c2d-7b3a-9f00-123456789abc" }),
      details: z
        .union([z.array(FieldIssueSchema), AttemptsLeftSchema, DailyLimitSchema])
        .optional()
        .openapi({
          description:
            "400 invalid_request: one FieldIssue per problem. 401 invalid_otp: attempts_left. 429 daily_limit_reached: limit, used, resets_at.",
        }),
    }),
  })
  .openapi("Error");

const STATUS_TEXT = {
  400: "Invalid request (bad JSON or failed validation)",
  401: "Missing or invalid credentials",
  403: "Forbidden",
  404: "Not found",
  405: "Method not allowed",
  409: "Conflict",
  413: "Body larger than the route's limit",
  415: "Content-Type is not application/json",
  422: "Not allowed as asked",
  429: "Too many requests",
  500: "Unexpected error",
  503: "A dependency is unavailable",
} as const;

type ErrorStatus = keyof typeof STATUS_TEXT;

const EXAMPLE_MESSAGE: Record<ErrorCode, string> = {
  invalid_request: "The request is invalid.",
  unauthorized: "A valid bearer token is required.",
  invalid_otp: "The code is wrong, expired or already used.",
  invalid_credentials: "The mobile number or password is wrong.",
  invalid_signature: "The signature is missing or invalid.",
  forbidden: "You are not allowed to do this.",
  reauthentication_required:
    "Setting a first password needs a fresh code: send otp from /auth/forgot-password.",
  not_found: "Not found.",
  user_not_found: "No account uses this mobile number.",
  method_not_allowed: "GET is not allowed here; use POST.",
  conflict: "An account with this mobile number already exists.",
  already_subscribed: "You already have an active Pro subscription.",
  no_subscription: "You have no subscription to cancel.",
  idempotency_key_reused: "This Idempotency-Key was used with another request.",
  idempotency_in_progress: "A request with this Idempotency-Key is still being processed.",
  reply_in_progress:
    "You already have the maximum number of replies pending; wait for one to finish.",
  reply_finished: "The reply is already finished; it cannot be cancelled.",
  model_not_allowed: "gemini-3.1-pro-preview is not available on the basic plan; see GET /models.",
  payload_too_large: "The body exceeds 65536 bytes.",
  unsupported_media_type: "Send the body as application/json.",
  rate_limited: "Too many requests; try again later.",
  daily_limit_reached: "You have used all 5 prompts for today; the limit resets at 00:00 UTC.",
  internal_error: "Something went wrong on our side.",
  dependency_unavailable: "The database is unavailable; try again shortly.",
  billing_portal_unavailable:
    "The billing portal is not set up yet: an operator must save the customer portal settings in the Stripe Dashboard (Settings → Billing → Customer portal). Try again later.",
};

const header = (description: string, required: boolean) => ({
  description,
  required,
  schema: { type: "string" as const },
});

function errorHeaders(status: ErrorStatus, codes: readonly ErrorCode[]) {
  switch (status) {
    case 401:
      return codes.includes("unauthorized")
        ? { "WWW-Authenticate": header("`Bearer` when the token is missing or invalid", false) }
        : undefined;
    case 405:
      return { Allow: header("The methods this path accepts", true) };
    case 409:
      return codes.includes("idempotency_in_progress")
        ? {
            "Retry-After": header(
              `With idempotency_in_progress: seconds (1–${IN_PROGRESS_RETRY_AFTER_MAX_SECONDS}) to wait before sending the same request again`,
              false,
            ),
          }
        : undefined;
    case 429:
      return {
        "Retry-After": header("Seconds to wait before trying again", true),
        ...(codes.includes("daily_limit_reached")
          ? {
              "RateLimit-Limit": header("Prompts allowed per UTC day", false),
              "RateLimit-Remaining": header("Prompts left today", false),
              "RateLimit-Reset": header("Seconds until 00:00 UTC", false),
            }
          : {}),
      };
    case 503:
      return { "Retry-After": header("Seconds to wait before trying again", true) };
    default:
      return undefined;
  }
}

/** A bare status documents its default code; `[status, ...codes]` names the codes it can carry. */
export type ErrorEntry = ErrorStatus | readonly [ErrorStatus, ...ErrorCode[]];

/**
 * OpenAPI response entries for the error statuses a route can answer: the Error schema, one
 * named example per code the status can carry, and the headers that come with it.
 */
export function errorResponses(...entries: ErrorEntry[]) {
  return Object.fromEntries(
    entries.map((entry) => {
      const [status, ...named] = typeof entry === "number" ? [entry] : entry;
      const codes = named.length > 0 ? named : [DEFAULT_ERROR_CODES[status]];
      const headers = errorHeaders(status, codes);
      return [
        status,
        {
          description: `${STATUS_TEXT[status]}. Codes: ${codes.join(", ")}.`,
          ...(headers ? { headers } : {}),
          content: {
            "application/json": {
              schema: ErrorResponseSchema,
              examples: Object.fromEntries(
                codes.map((code) => [
                  code,
                  {
                    value: {
                      error: {
                        code,
                        message: EXAMPLE_MESSAGE[code],
                        request_id: "01936f4e-1c2d-7b3a-9f00-123456789abc",
                      },
                    },
                  },
                ]),
              ),
            },
          },
        },
      ];
    }),
  ) as Record<
    number,
    { description: string; content: { "application/json": { schema: typeof ErrorResponseSchema } } }
  >;
}

export function jsonContent<T extends z.ZodType>(schema: T, description: string) {
  return { description, content: { "application/json": { schema } } };
}

type OpenAPIDocument = ReturnType<OpenAPIHono["getOpenAPI31Document"]>;

/**
 * Writes `security: []` on every operation that declares no security, so the root default
 * (bearer) applies only where a route asks for it and the public ones say so.
 */
export function withExplicitPublicOperations(doc: OpenAPIDocument): OpenAPIDocument {
  for (const item of Object.values(doc.paths ?? {})) {
    for (const method of ["get", "put", "post", "delete", "patch", "head", "options"] as const) {
      const op = item[method];
      if (op && op.security === undefined) op.security = [];
    }
  }
  return doc;
}

/**
 * Makes a JSON success the first documented success of every operation. Tools read the document
 * as JS objects, whose integer keys sort ascending, and generated clients (openapi-to-postman,
 * portman) send the first success's media type as Accept: POST /chatroom/{id}/message would get
 * `text/event-stream` (its 200 stream) instead of its 202 JSON. A non-JSON success listed below a
 * JSON one is documented as its range instead ("2XX"; the explicit 202 wins over it, OAS 3.1
 * §4.8.16.2), which keeps it last. The route declarations, and so AppType, keep the exact 200.
 */
export function withJsonSuccessFirst(doc: OpenAPIDocument): OpenAPIDocument {
  for (const item of Object.values(doc.paths ?? {})) {
    for (const method of ["get", "put", "post", "delete", "patch"] as const) {
      const responses = item[method]?.responses as Record<string, { content?: object }> | undefined;
      if (!responses) continue;
      const successes = Object.keys(responses).filter((s) => /^2\d\d$/.test(s));
      const isJson = (s: string) =>
        Object.keys(responses[s]?.content ?? {}).some((t) => t.endsWith("json"));
      const firstJson = successes.find(isJson);
      for (const status of successes) {
        if (status === firstJson) break;
        if (!firstJson || responses[status]?.content === undefined || "2XX" in responses) break;
        responses["2XX"] = responses[status] as { content?: object };
        delete responses[status];
      }
    }
  }
  return doc;
}
