import { randomInt, randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { GoogleGenAI } from "@google/genai";
import { serve } from "@hono/node-server";
import { Client } from "@upstash/qstash";
import { Redis } from "@upstash/redis/cloudflare";
import { eq, sql } from "drizzle-orm";
import { Hono } from "hono";
import Stripe from "stripe";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { ALL_SERVICES } from "../../local/services.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";
import type { UsageReport } from "../../local/usage.ts";
import { createDatabase } from "../../src/db/client.ts";
import { users } from "../../src/db/schema/index.ts";

// One local cloud of every stand-in, owned by this file, so the counters see only what these
// tests do; each test starts from POST /_control/usage/reset and asserts exact counts. Embedded
// stores only: the counts do not depend on the backend.
const config = testCloudConfig();
delete config.databaseUrl;
delete config.pgliteDir;
delete config.redisUrl;

let cloud: LocalCloud;
let receiver: ReturnType<typeof serve>;
let receiverBase: string;
/** Answers for the QStash destination: one status per delivery attempt, then 200. */
const statuses = new Map<string, number[]>();

async function usage(): Promise<UsageReport> {
  const res = await fetch(`${cloud.url}/_control/usage`);
  expect(res.status).toBe(200);
  return (await res.json()) as UsageReport;
}

beforeAll(async () => {
  const app = new Hono();
  app.all("*", (c) => c.body(null, (statuses.get(c.req.path)?.shift() ?? 200) as 200));
  receiver = serve({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => receiver.once("listening", () => resolve()));
  receiverBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  cloud = await startLocalCloud(config, ALL_SERVICES);
});

beforeEach(async () => {
  const res = await fetch(`${cloud.url}/_control/usage/reset`, { method: "POST" });
  expect(res.status).toBe(204);
});

afterAll(async () => {
  await cloud?.close();
  await new Promise<void>((resolve) => receiver?.close(() => resolve()));
});

describe("GET /_control/usage", () => {
  it("reports every vendor at zero after a reset", async () => {
    expect(await usage()).toEqual({
      neon: {
        requests: 0,
        statements: 0,
        by_kind: { select: 0, insert: 0, update: 0, delete: 0, other: 0 },
      },
      redis: { requests: 0, commands: 0, by_command: {} },
      qstash: {
        publishes: 0,
        deliveries: 0,
        callbacks: 0,
        retries: 0,
        cancels: 0,
        messages: 0,
        deduplicated: 0,
      },
      gemini: {
        calls: 0,
        by_method: { generateContent: 0, streamGenerateContent: 0 },
        input_tokens: 0,
        output_tokens: 0,
        failed: 0,
      },
      stripe: { calls: 0, by_operation: {} },
    });
  });

  it("counts Redis commands, not requests: a pipeline of 3 is 1 request and 3 commands", async () => {
    const redis = new Redis({
      url: `${cloud.url}/redis`,
      token: TEST_KEYS.redisToken,
      enableTelemetry: false,
      enableAutoPipelining: false,
    });
    const key = `usage:${randomUUID()}`;
    await redis.pipeline().set(key, 1).incr(key).get(key).exec();
    expect((await usage()).redis).toEqual({
      requests: 1,
      commands: 3,
      by_command: { SET: 1, INCR: 1, GET: 1 },
    });

    await redis.multi().incr(key).expire(key, 60).exec();
    await redis.eval("redis.call('INCR', KEYS[1]); return redis.call('GET', KEYS[1])", [key], []);
    await redis.get(key);
    // The transaction counts the 2 commands inside it; a script is 1 command whatever it calls.
    expect((await usage()).redis).toEqual({
      requests: 4,
      commands: 7,
      by_command: { SET: 1, INCR: 2, GET: 2, EXPIRE: 1, EVAL: 1 },
    });
  });

  it("does not count a Redis request refused for its token", async () => {
    const wrong = new Redis({
      url: `${cloud.url}/redis`,
      token: "wrong",
      enableTelemetry: false,
      retry: false,
    });
    await expect(wrong.get("k")).rejects.toThrow();
    expect((await usage()).redis.commands).toBe(0);
  });

  it("counts a Neon batch as 1 request of N statements, by kind", async () => {
    const db = createDatabase(
      `postgres://neon:local@127.0.0.1:${cloud.port}/neondb`,
      `${cloud.url}/neon/sql`,
    );
    const id = `usr_${randomUUID()}`;
    const mobileNumber = `+1555${randomInt(0, 1e9).toString().padStart(9, "0")}`;
    await db.batch([
      db.insert(users).values({ id, mobileNumber }),
      db.select({ id: users.id }).from(users).where(eq(users.id, id)),
    ]);
    expect((await usage()).neon).toEqual({
      requests: 1,
      statements: 2,
      by_kind: { select: 1, insert: 1, update: 0, delete: 0, other: 0 },
    });

    await db.update(users).set({ name: "x" }).where(eq(users.id, id));
    await db.delete(users).where(eq(users.id, id));
    // A CTE is "other": its kind is not its first keyword's.
    await db.execute(sql`with t as (select 1 as n) select n from t`);
    expect((await usage()).neon).toEqual({
      requests: 4,
      statements: 5,
      by_kind: { select: 1, insert: 1, update: 1, delete: 1, other: 1 },
    });
  });

  it("counts QStash publishes, every delivery attempt and every callback as billed messages", async () => {
    const qstash = new Client({ baseUrl: `${cloud.url}/qstash`, token: TEST_KEYS.qstashToken });
    const run = randomUUID();
    const dest = `/dest/${run}`;
    statuses.set(dest, [500]);
    await qstash.publishJSON({
      url: `${receiverBase}${dest}`,
      body: { run },
      retries: 2,
      callback: `${receiverBase}/callback/${run}`,
    });
    const flushed = await fetch(`${cloud.url}/_control/qstash/flush`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ match: run, timeout_ms: 15_000 }),
    });
    expect(flushed.status).toBe(200);
    // A 500 then a 200: 2 deliveries (1 a retry), each reported to the callback.
    expect((await usage()).qstash).toMatchObject({
      publishes: 1,
      deliveries: 2,
      callbacks: 2,
      retries: 1,
      cancels: 0,
      messages: 4,
    });

    const later = await qstash.publishJSON({
      url: `${receiverBase}/later/${run}`,
      body: { run },
      delay: 3600,
    });
    await qstash.messages.delete(later.messageId);
    expect((await usage()).qstash).toMatchObject({
      publishes: 2,
      deliveries: 2,
      cancels: 1,
      messages: 4,
    });
  });

  it("counts Gemini calls by method, with the tokens the responses report", async () => {
    const ai = new GoogleGenAI({
      apiKey: TEST_KEYS.geminiApiKey,
      httpOptions: { baseUrl: `${cloud.url}/gemini` },
    });
    const model = "gemini-3.8-flash";
    const one = await ai.models.generateContent({ model, contents: `count me ${randomUUID()}` });
    let streamed: { promptTokenCount?: number; candidatesTokenCount?: number } | undefined;
    for await (const chunk of await ai.models.generateContentStream({
      model,
      contents: `stream me ${randomUUID()}`,
    })) {
      streamed = chunk.usageMetadata ?? streamed;
    }
    const input = (one.usageMetadata?.promptTokenCount ?? 0) + (streamed?.promptTokenCount ?? 0);
    const output =
      (one.usageMetadata?.candidatesTokenCount ?? 0) + (streamed?.candidatesTokenCount ?? 0);
    expect(input).toBeGreaterThan(0);
    expect(output).toBeGreaterThan(0);
    expect((await usage()).gemini).toMatchObject({
      calls: 2,
      by_method: { generateContent: 1, streamGenerateContent: 1 },
      input_tokens: input,
      output_tokens: output,
    });
  });

  it("counts Stripe API calls by METHOD and resource path", async () => {
    const stripe = new Stripe(TEST_KEYS.stripeSecretKey, {
      host: "127.0.0.1",
      port: cloud.port,
      protocol: "http",
      httpClient: Stripe.createFetchHttpClient(),
      maxNetworkRetries: 0,
    });
    const customer = await stripe.customers.create({ email: `${randomUUID()}@example.com` });
    await stripe.customers.retrieve(customer.id);
    await stripe.customers.retrieve(customer.id);
    await stripe.prices.retrieve(TEST_KEYS.stripeProPriceId);
    expect((await usage()).stripe).toEqual({
      calls: 4,
      by_operation: {
        "POST /v1/customers": 1,
        "GET /v1/customers/:id": 2,
        "GET /v1/prices/:id": 1,
      },
    });
  });

  it("resets every counter to zero with POST /_control/usage/reset", async () => {
    const redis = new Redis({
      url: `${cloud.url}/redis`,
      token: TEST_KEYS.redisToken,
      enableTelemetry: false,
    });
    await redis.set(`usage:${randomUUID()}`, 1);
    expect((await usage()).redis.commands).toBe(1);
    await fetch(`${cloud.url}/_control/usage/reset`, { method: "POST" });
    expect((await usage()).redis).toEqual({ requests: 0, commands: 0, by_command: {} });
  });
});
