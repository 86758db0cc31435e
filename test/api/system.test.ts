import { describe, expect, it } from "vitest";
import { call, workerUrl } from "../support/api.ts";

const ERROR_SHAPE = {
  error: { code: expect.any(String), message: expect.any(String), request_id: expect.any(String) },
};

describe("GET /health", () => {
  it("reports both checks ok with their latency", async () => {
    const res = await call("GET", "/health");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      status: "ok",
      checks: {
        database: { status: "ok", latency_ms: expect.any(Number) },
        redis: { status: "ok", latency_ms: expect.any(Number) },
      },
    });
  });
});

describe("request ids", () => {
  it("gives every response an X-Request-Id, also echoed in error bodies", async () => {
    const ok = await call("GET", "/health");
    expect(ok.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    const missing = await call("GET", "/no-such-route");
    expect(missing.body.error.request_id).toBe(missing.headers.get("x-request-id"));
  });

  it("keeps a well-formed incoming X-Request-Id and replaces a malformed one", async () => {
    const kept = await call("GET", "/health", { headers: { "x-request-id": "trace-abc_123.4" } });
    expect(kept.headers.get("x-request-id")).toBe("trace-abc_123.4");
    const replaced = await call("GET", "/health", { headers: { "x-request-id": "<script>" } });
    expect(replaced.headers.get("x-request-id")).not.toBe("<script>");
  });
});

describe("the one error shape", () => {
  it("answers an unknown route with 404 not_found", async () => {
    const res = await call("GET", "/definitely/not/here");
    expect(res.status).toBe(404);
    expect(res.body).toEqual(ERROR_SHAPE);
    expect(res.body.error.code).toBe("not_found");
  });

  it("answers a known path with the wrong method with 405 and an Allow header", async () => {
    const res = await call("DELETE", "/health");
    expect(res.status).toBe(405);
    expect(res.body.error.code).toBe("method_not_allowed");
    expect(res.headers.get("allow")).toContain("GET");
  });

  it("answers malformed JSON with 400 invalid_request", async () => {
    const res = await call("POST", "/auth/send-otp", {
      rawBody: "{",
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
    expect(res.body).toEqual(ERROR_SHAPE);
    expect(res.body.error.code).toBe("invalid_request");
  });

  it("answers a failed validation with 400 and details naming the field", async () => {
    const res = await call("POST", "/auth/send-otp", { body: { mobile_number: 12 } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect(JSON.stringify(res.body.error.details)).toContain("mobile_number");
  });

  it("answers a non-JSON body with 415", async () => {
    const res = await call("POST", "/auth/send-otp", {
      rawBody: "mobile_number=+15550100000",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expect(res.status).toBe(415);
    expect(res.body.error.code).toBe("unsupported_media_type");
  });

  it("answers a body over the 64 KiB API limit with 413 before any handler runs", async () => {
    const res = await call("POST", "/auth/send-otp", {
      body: { mobile_number: "+15550100000", padding: "x".repeat(70 * 1024) },
    });
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");
  });

  it("gives webhooks their own body limits, not the 64 KiB API limit", async () => {
    // 100 KiB: over the API limit, under Stripe's 1 MiB and QStash's 4 MiB. Unsigned, so the
    // webhook answers its signature error, which it can only do after reading the whole body.
    const padding = "x".repeat(100 * 1024);
    const stripe = await call("POST", "/webhook/stripe", {
      rawBody: JSON.stringify({ padding }),
      headers: { "content-type": "application/json" },
    });
    expect(stripe.status).toBe(400);
    expect(stripe.body.error.code).toBe("invalid_signature");
    const qstash = await call("POST", "/webhook/qstash/reply?reply_id=x", {
      rawBody: JSON.stringify({ padding }),
      headers: { "content-type": "text/plain" },
    });
    expect(qstash.status).toBe(401);
    expect(qstash.body.error.code).toBe("invalid_signature");
  });

  it("answers a chunked body over the limit without Content-Length with 413", async () => {
    const chunk = new TextEncoder().encode("x".repeat(16 * 1024));
    let sent = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent++ < 8) controller.enqueue(chunk);
        else controller.close();
      },
    });
    const res = await fetch(`${workerUrl}/auth/send-otp`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
      duplex: "half",
    } as RequestInit);
    expect(res.status).toBe(413);
    expect((await res.json()).error.code).toBe("payload_too_large");
  });

  it("answers a protected route without a token with 401 and WWW-Authenticate: Bearer", async () => {
    const res = await call("GET", "/user/me");
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
  });
});

describe("API documents", () => {
  it("serves an OpenAPI 3.1 document with the bearer scheme and every route group", async () => {
    const res = await call("GET", "/openapi.json");
    expect(res.status).toBe(200);
    expect(res.body.openapi).toBe("3.1.0");
    expect(res.body.components.securitySchemes.bearerAuth).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    const paths = Object.keys(res.body.paths);
    for (const p of [
      "/health",
      "/auth/signup",
      "/user/me",
      "/chatroom",
      "/subscribe/pro",
      "/webhook/stripe",
    ]) {
      expect(paths).toContain(p);
    }
  });

  it("renders /docs from /openapi.json with a script served by this Worker, no CDN", async () => {
    const res = await call("GET", "/docs");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("text/html");
    expect(res.text).toContain("/openapi.json");
    // No external CDN: the only script source is a static asset on this origin.
    const sources = [...res.text.matchAll(/<script[^>]+src="([^"]+)"/g)].map((m) => m[1]);
    expect(sources).toEqual([expect.stringMatching(/^\/docs\/scalar\//)]);
    expect(res.text).not.toMatch(/<link[^>]+stylesheet|https?:\/\//);
  });
});
