// Issue 16 item 6: what generated clients and linters (Redocly's recommended ruleset, run by
// `npm run openapi:lint` in CI) need from the document beyond schema validity.
import { beforeAll, describe, expect, it } from "vitest";
import { call, workerUrl } from "../support/api.ts";

// biome-ignore lint/suspicious/noExplicitAny: a parsed JSON document
let doc: any;
const operations = () =>
  Object.entries(doc.paths).flatMap(([path, item]) =>
    // biome-ignore lint/suspicious/noExplicitAny: a parsed JSON document
    Object.entries(item as Record<string, any>).map(([method, op]) => ({
      key: `${method} ${path}`,
      op,
    })),
  );

beforeAll(async () => {
  doc = (await call("GET", "/openapi.json")).body;
});

describe("the OpenAPI document for tools", () => {
  it("gives every operation a unique operationId", () => {
    const ids = operations().map(({ key, op }) => {
      expect(op.operationId, key).toMatch(/^[a-z][A-Za-z]+$/);
      return op.operationId;
    });
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("names the server it was fetched from and a license", () => {
    expect(doc.servers).toEqual([{ url: workerUrl, description: expect.any(String) }]);
    expect(doc.info.license.name).toBeTruthy();
  });

  it("defaults to bearer auth at the root and marks public operations security: []", () => {
    expect(doc.security).toEqual([{ bearerAuth: [] }]);
    for (const { key, op } of operations()) {
      expect(Array.isArray(op.security), key).toBe(true);
    }
    const publicOps = operations().filter(({ op }) => op.security.length === 0);
    expect(publicOps.map((o) => o.key)).toContain("post /auth/send-otp");
    expect(publicOps.map((o) => o.key)).not.toContain("get /user/me");
  });

  it("lists a JSON answer as the first success, so generated clients send Accept: JSON", () => {
    for (const { key, op } of operations()) {
      const first = Object.keys(op.responses).find((s) => s.startsWith("2"));
      const types = Object.keys(op.responses[first as string]?.content ?? {});
      // Following a reply's stream is SSE by nature: there is no JSON form to prefer.
      if (types.length > 0 && key !== "get /chatroom/{id}/messages/{message_id}/stream") {
        expect(types, key).toContain("application/json");
      }
    }
    const prompt = doc.paths["/chatroom/{id}/message"].post.responses;
    expect(Object.keys(prompt)[0]).toBe("202");
    expect(Object.keys(prompt["2XX"].content)).toEqual(["text/event-stream"]);
  });
});
