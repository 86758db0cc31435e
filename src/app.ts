import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "./context";
import { AppError, errorBody, handleError } from "./errors";
import { requestId } from "./middleware/request-id";
import { requestLog } from "./middleware/request-log";
import { services } from "./middleware/services";
import { authRoutes } from "./routes/auth";
import { chatroomRoutes } from "./routes/chatrooms";
import { docsPage } from "./routes/docs";
import { playgroundPage } from "./routes/playground";
import { withExplicitPublicOperations, withJsonSuccessFirst } from "./routes/router";
import { subscriptionRoutes } from "./routes/subscriptions";
import { systemRoutes } from "./routes/system";
import { userRoutes } from "./routes/users";
import { qstashWebhookRoutes } from "./routes/webhooks/qstash";
import { stripeWebhookRoutes } from "./routes/webhooks/stripe";

/** Documented body limits: JSON API 64 KiB, Stripe webhooks 1 MiB, QStash callbacks 4 MiB. */
export const BODY_LIMITS = {
  api: 64 * 1024,
  stripeWebhook: 1024 * 1024,
  qstashCallback: 4 * 1024 * 1024,
} as const;

const WEBHOOK_PREFIXES = ["/webhook/"];

function limitFor(path: string): number {
  if (path.startsWith("/webhook/stripe")) return BODY_LIMITS.stripeWebhook;
  if (path.startsWith("/webhook/qstash")) return BODY_LIMITS.qstashCallback;
  return BODY_LIMITS.api;
}

const limitBody = createMiddleware<AppEnv>((c, next) =>
  bodyLimit({
    maxSize: limitFor(c.req.path),
    onError: () => {
      throw new AppError(
        413,
        "payload_too_large",
        `The body exceeds ${limitFor(c.req.path)} bytes.`,
      );
    },
  })(c, next),
);

/** API bodies are JSON; webhooks verify their raw bodies themselves. */
const requireJson = createMiddleware<AppEnv>(async (c, next) => {
  const hasBody =
    c.req.header("content-length") !== undefined
      ? c.req.header("content-length") !== "0"
      : c.req.header("transfer-encoding") !== undefined;
  const isWebhook = WEBHOOK_PREFIXES.some((p) => c.req.path.startsWith(p));
  if (hasBody && !isWebhook && ["POST", "PUT", "PATCH"].includes(c.req.method)) {
    const [type, ...params] = (c.req.header("content-type") ?? "").toLowerCase().split(";");
    // JSON is UTF-8 (RFC 8259 §8.1) and bodies are read as such: refuse another declared charset
    // or a content coding we would not decode, rather than misread the bytes.
    const charset = params
      .map((p) => p.trim())
      .find((p) => p.startsWith("charset="))
      ?.slice("charset=".length)
      .replace(/"/g, "");
    const encoding = (c.req.header("content-encoding") ?? "identity").trim().toLowerCase();
    if (
      type?.trim() !== "application/json" ||
      (charset !== undefined && charset !== "utf-8" && charset !== "utf8") ||
      encoding !== "identity"
    ) {
      throw new AppError(
        415,
        "unsupported_media_type",
        "Send the body as application/json in UTF-8, without Content-Encoding.",
      );
    }
    // Request.json() would turn invalid bytes into U+FFFD and store them; refuse them instead.
    // (bodyLimit already buffered the body, and Hono caches it for the validator.)
    try {
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(await c.req.arrayBuffer());
    } catch {
      throw new AppError(400, "invalid_request", "The body is not valid UTF-8.");
    }
  }
  await next();
});

/** The document's tags, in the order /docs shows them. */
const TAGS = [
  { name: "System", description: "Health of the Worker and its dependencies" },
  { name: "Auth", description: "Sign up, OTP and password login, token refresh and logout" },
  { name: "User", description: "The caller's profile" },
  { name: "Chat", description: "Chatrooms, prompts and Gemini replies (polled or streamed)" },
  { name: "Subscriptions", description: "Stripe Checkout for Pro, status, cancel and portal" },
  {
    name: "Webhooks",
    description: "Signed callbacks from Stripe and QStash (not for clients)",
  },
];

/** Builds the whole API; the Worker entry and the tests build it the same way. */
export function createApp() {
  // strict: false routes `/chatroom/` like `/chatroom` for every method (one trailing slash, no
  // redirect, so a POST keeps its body): clients of this spec commonly send either form.
  const app = new OpenAPIHono<AppEnv>({ strict: false });

  app.use("*", requestId, requestLog, limitBody, requireJson);
  // JSON is never to be sniffed into something a browser would run (issue 12).
  app.use("*", async (c, next) => {
    await next();
    if (c.res.headers.get("content-type")?.startsWith("application/json")) {
      c.res.headers.set("X-Content-Type-Options", "nosniff");
    }
  });
  app.use("*", async (c, next) => {
    if (/^\/(openapi\.json|docs)\/?$/.test(c.req.path)) return next();
    return services(c, next);
  });

  // Chained so the route groups' types merge into AppType (the hono/client RPC type).
  const api = app
    .route("/", systemRoutes)
    .route("/", authRoutes)
    .route("/", userRoutes)
    .route("/", subscriptionRoutes)
    .route("/", stripeWebhookRoutes)
    .route("/", chatroomRoutes)
    .route("/", qstashWebhookRoutes);

  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description: "Access token from /auth/verify-otp, /auth/login or /auth/refresh.",
  });
  // Bearer auth is the default at the root; public operations say `security: []` explicitly
  // (Redocly's security-defined rule, and clients that apply the root default everywhere).
  app.get("/openapi.json", (c) =>
    c.json(
      withJsonSuccessFirst(
        withExplicitPublicOperations(
          app.getOpenAPI31Document({
            openapi: "3.1.0",
            info: {
              title: "Gemini Chat API",
              version: "1.0.0",
              // Not open source (package.json is private); LicenseRef- is SPDX's form for such terms.
              license: {
                name: "Proprietary",
                identifier: "LicenseRef-Proprietary",
              } as { name: string },
              description:
                "Phone-number OTP login, chatrooms answered by Gemini through QStash, Stripe subscriptions. Every error body is {error:{code,message,request_id,details?}}. Every response carries X-Request-Id (a well-formed one sent by the client is kept). JSON bodies are limited to 64 KiB.",
            },
            // The origin this document was fetched from: the deployment itself, or npm run dev.
            servers: [{ url: new URL(c.req.url).origin, description: "This deployment" }],
            security: [{ bearerAuth: [] }],
            tags: TAGS,
          }),
        ),
      ),
    ),
  );
  app.get("/docs", docsPage);
  app.get("/", playgroundPage);

  const routes = () => app.routes.filter((r) => r.method !== "ALL");
  app.notFound((c) => {
    const allowed = routes()
      .filter((r) => matchesPath(r.path, c.req.path))
      .map((r) => r.method);
    const methods = [...new Set([...allowed, ...(allowed.includes("GET") ? ["HEAD"] : [])])];
    // 405 only when the path (with or without one trailing slash, which routes the same) is
    // served by another method, so the methods in Allow answer at this very URL.
    if (allowed.length > 0 && !methods.includes(c.req.method)) {
      const allow = methods.join(", ");
      return c.json(
        errorBody(c, "method_not_allowed", `${c.req.method} is not allowed here; use ${allow}.`),
        405,
        { Allow: allow },
      );
    }
    return c.json(errorBody(c, "not_found", `No route for ${c.req.method} ${c.req.path}.`), 404);
  });
  app.onError(handleError);
  return api;
}

function matchesPath(pattern: string, path: string): boolean {
  const escaped = pattern
    .split("/")
    .map((seg) => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${escaped}/?$`).test(path);
}

export type AppType = ReturnType<typeof createApp>;
