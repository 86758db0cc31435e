import { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "./context";
import { MethodNotAllowedError, NotFoundError } from "./errors";
import { errorResponse, handleError } from "./errors/http";
import { context } from "./middleware/context";
import { requestId } from "./middleware/request-id";
import { requestLog } from "./middleware/request-log";
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

  app.use("*", requestId, requestLog);
  // JSON is never to be sniffed into something a browser would run (issue 12).
  app.use("*", async (c, next) => {
    await next();
    if (c.res.headers.get("content-type")?.startsWith("application/json")) {
      c.res.headers.set("X-Content-Type-Options", "nosniff");
    }
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
  // Registered before the context middleware: the document and its page need no adapters.
  // Everything below gets this request's service context (c.get("ctx")).
  app.use("*", context);

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

  app.get("/", playgroundPage);

  // Compiled on the first unmatched request (every route is registered by then), not per request.
  let patterns: { method: string; path: RegExp }[] | undefined;
  const routes = () => {
    patterns ??= app.routes
      .filter((r) => r.method !== "ALL")
      .map((r) => ({ method: r.method, path: pathPattern(r.path) }));
    return patterns;
  };
  app.notFound((c) => {
    const allowed = routes()
      .filter((r) => r.path.test(c.req.path))
      .map((r) => r.method);
    const methods = [...new Set([...allowed, ...(allowed.includes("GET") ? ["HEAD"] : [])])];
    // 405 only when the path (with or without one trailing slash, which routes the same) is
    // served by another method, so the methods in Allow answer at this very URL.
    if (allowed.length > 0 && !methods.includes(c.req.method)) {
      const allow = methods.join(", ");
      return errorResponse(
        c,
        new MethodNotAllowedError(`${c.req.method} is not allowed here; use ${allow}.`, methods),
      );
    }
    return errorResponse(c, new NotFoundError(`No route for ${c.req.method} ${c.req.path}.`));
  });
  app.onError(handleError);
  return api;
}

/** A route's path as a regular expression that also accepts one trailing slash. */
function pathPattern(pattern: string): RegExp {
  const escaped = pattern
    .split("/")
    .map((seg) => (seg.startsWith(":") ? "[^/]+" : seg.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")))
    .join("/");
  return new RegExp(`^${escaped}/?$`);
}

export type AppType = ReturnType<typeof createApp>;
