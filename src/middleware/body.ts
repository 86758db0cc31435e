import { bodyLimit } from "hono/body-limit";
import { createMiddleware } from "hono/factory";
import type { AppEnv } from "../context";
import { PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError } from "../errors";

/** Documented body limits: JSON API 64 KiB, Stripe webhooks 1 MiB, QStash callbacks 4 MiB. */
export const BODY_LIMITS = {
  api: 64 * 1024,
  stripeWebhook: 1024 * 1024,
  qstashCallback: 4 * 1024 * 1024,
} as const;

/** Refuses a body over `maxSize` bytes (Content-Length or counted while streaming) with 413. */
export const limitBody = (maxSize: number) =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw new PayloadTooLargeError(maxSize);
    },
  });

/** API bodies are JSON in UTF-8 (webhooks verify their raw bodies themselves). */
export const requireJson = createMiddleware<AppEnv>(async (c, next) => {
  const hasBody =
    c.req.header("content-length") !== undefined
      ? c.req.header("content-length") !== "0"
      : c.req.header("transfer-encoding") !== undefined;
  if (hasBody && ["POST", "PUT", "PATCH"].includes(c.req.method)) {
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
      throw new UnsupportedMediaTypeError(
        "Send the body as application/json in UTF-8, without Content-Encoding.",
      );
    }
    // Request.json() would turn invalid bytes into U+FFFD and store them; refuse them instead.
    // (bodyLimit already buffered the body, and Hono caches it for the validator.)
    try {
      new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(await c.req.arrayBuffer());
    } catch {
      throw new ValidationError("The body is not valid UTF-8.");
    }
  }
  await next();
});

/** What every JSON API route accepts: at most 64 KiB of UTF-8 JSON. */
export const jsonBody = [limitBody(BODY_LIMITS.api), requireJson] as const;
