// The Postman collection is generated from the document and runs end to end: newman drives it
// against the test Worker, exactly as "Run collection" would against `npm run dev`.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import newman, { type NewmanRunOptions, type NewmanRunSummary } from "newman";
import { beforeAll, describe, expect, it } from "vitest";
import { buildPostman } from "../../scripts/postman.ts";
import { call, workerUrl } from "../support/api.ts";
import { uniqueClientIp } from "../support/session.ts";

// biome-ignore lint/suspicious/noExplicitAny: the OpenAPI document is plain JSON.
let doc: any;

beforeAll(async () => {
  doc = (await call("GET", "/openapi.json")).body;
});

const root = resolve(import.meta.dirname, "../..");
const committed = (name: string) =>
  JSON.parse(readFileSync(resolve(root, "postman", name), "utf8")) as unknown;

function runCollection(options: NewmanRunOptions): Promise<NewmanRunSummary> {
  return new Promise((resolveRun, reject) => {
    newman.run(options, (err, summary) => (err ? reject(err) : resolveRun(summary)));
  });
}

describe("Postman collection", () => {
  it("is committed as the generator makes it from the current document (npm run postman)", () => {
    const { collection, environment } = buildPostman(doc);
    expect(committed("collection.json")).toEqual(collection);
    expect(committed("environment.json")).toEqual(environment);
  });

  it("has a folder per tag, collection-level bearer auth and one request per operation", () => {
    const { collection } = buildPostman(doc);
    expect(collection.info.schema).toBe(
      "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
    );
    expect(collection.auth).toEqual({
      type: "bearer",
      bearer: [{ key: "token", value: "{{token}}", type: "string" }],
    });
    expect(collection.item.map((f) => f.name)).toEqual(
      doc.tags.map((t: { name: string }) => t.name),
    );
    const operations = Object.values(doc.paths).flatMap((item) => Object.keys(item as object));
    expect(collection.item.flatMap((f) => f.item)).toHaveLength(operations.length);
  });

  it("runs end to end with newman: signup → OTP → token → chatroom → message → poll → status", async () => {
    const { collection, environment } = buildPostman(doc, { baseUrl: workerUrl });
    const summary = await runCollection({
      // Plain v2.1 JSON, as in the committed file; postman-collection's types are stricter than it.
      collection: collection as unknown as NewmanRunOptions["collection"],
      environment,
      // Cloudflare sets CF-Connecting-IP; here each run gets its own per-IP send budget.
      envVar: [{ key: "client_ip", value: uniqueClientIp() }],
      reporters: [],
      timeoutRequest: 20_000,
    });
    const failures = summary.run.failures.map(
      (f) => `${f.source?.name ?? "?"}: ${f.error?.name} ${f.error?.message}`,
    );
    expect(failures).toEqual([]);
    expect(summary.run.stats.assertions.failed).toBe(0);
    // Every request ran and asserted (the poll may repeat, never skip).
    expect(summary.run.stats.requests.total).toBeGreaterThanOrEqual(27);
    const env = Object.fromEntries((summary.environment.values ?? []).map((v) => [v.key, v.value]));
    expect(env.reply_status).toBe("complete");
    expect(env.chatroom_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(String(env.checkout_url)).toMatch(/^http/);
  });
});
