// `npm run postman`: writes postman/collection.json (Postman v2.1) and postman/environment.json
// from the OpenAPI document the Worker serves. One folder per tag, collection-level bearer auth
// with {{token}}, example bodies from the document, and test scripts that chain a whole session:
// signup → send-otp → verify-otp (token) → chatroom (id) → message (reply id) → poll the reply
// → subscription status. "Run collection" against `npm run dev` passes end to end.
//
//   node scripts/postman.ts                 starts the Worker briefly (no local cloud needed)
//   node scripts/postman.ts --from <url|file>   reads the document from there instead
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

import { exampleFor, type Json } from "./support/openapi-examples.ts";

export const DEFAULT_BASE_URL = "http://127.0.0.1:8787";
const METHODS = ["get", "post", "put", "patch", "delete"] as const;

/** Path parameters → the environment variable holding the id a previous request stored. */
const PATH_VARIABLES: Record<string, string> = { id: "chatroom_id", message_id: "reply_id" };

/** What a step of the chained run sends and checks, beyond what the document says. */
interface Step {
  /** The status this step expects in the chained run (default: the first documented 2xx). */
  expect?: number;
  body?: Record<string, unknown> | null;
  headers?: Record<string, string>;
  query?: Record<string, string>;
  prerequest?: string[];
  test?: string[];
}

const storeSession = [
  "const body = pm.response.json();",
  'pm.environment.set("token", body.token);',
  'pm.environment.set("refresh_token", body.refresh_token);',
];

const randomPassword =
  'pm.environment.set("new_password", "pw-" + Math.random().toString(36).slice(2) + "-" + Date.now());';

/** Cloudflare sets CF-Connecting-IP from the client; a runner may pass its own per-run address. */
const clientIpHeader = [
  'const ip = pm.environment.get("client_ip");',
  'if (ip) pm.request.headers.upsert({ key: "CF-Connecting-IP", value: ip });',
];

/** The chained run, in order: operations not listed here follow, each checked on its own. */
const STEPS: [string, Step][] = [
  ["GET /health", {}],
  [
    "POST /auth/signup",
    {
      body: { mobile_number: "{{mobile_number}}", name: "Ada Lovelace", password: "{{password}}" },
      prerequest: [
        "// A fresh random number in the +1555 range for every run.",
        'let digits = "";',
        "for (let i = 0; i < 10; i++) digits += Math.floor(Math.random() * 10);",
        'pm.environment.set("mobile_number", "+1555" + digits);',
        'pm.environment.set("password", "pw-" + Math.random().toString(36).slice(2) + "-" + Date.now());',
        ...clientIpHeader,
      ],
      test: [
        'pm.environment.set("user_id", pm.response.json().user.id);',
        "// Keeps the signup password at the first verify-otp (without it the password is dropped).",
        'pm.environment.set("signup_token", pm.response.json().signup_token);',
      ],
    },
  ],
  [
    "POST /auth/send-otp",
    {
      body: { mobile_number: "{{mobile_number}}" },
      prerequest: clientIpHeader,
      test: [
        "const body = pm.response.json();",
        'pm.test("the code is echoed (OTP_DELIVERY=response, as in npm run dev)", () => {',
        '  pm.expect(body.otp, "no otp in the response: set OTP_DELIVERY=response or put the code in {{otp}}").to.be.a("string");',
        "});",
        'pm.environment.set("otp", body.otp);',
      ],
    },
  ],
  [
    "POST /auth/verify-otp",
    {
      body: {
        mobile_number: "{{mobile_number}}",
        otp: "{{otp}}",
        signup_token: "{{signup_token}}",
      },
      prerequest: clientIpHeader,
      test: [...storeSession, 'pm.environment.set("otp_refresh_token", body.refresh_token);'],
    },
  ],
  ["POST /auth/refresh", { body: { refresh_token: "{{refresh_token}}" }, test: storeSession }],
  [
    "POST /auth/change-password",
    {
      body: { current_password: "{{password}}", new_password: "{{new_password}}" },
      prerequest: [randomPassword],
      test: [
        ...storeSession,
        'pm.environment.set("password", pm.environment.get("new_password"));',
      ],
    },
  ],
  [
    "POST /auth/forgot-password",
    {
      body: { mobile_number: "{{mobile_number}}" },
      prerequest: clientIpHeader,
      test: ['pm.environment.set("reset_otp", pm.response.json().otp);'],
    },
  ],
  [
    "POST /auth/reset-password",
    {
      body: {
        mobile_number: "{{mobile_number}}",
        otp: "{{reset_otp}}",
        new_password: "{{new_password}}",
      },
      prerequest: [randomPassword, ...clientIpHeader],
      test: [
        "// Every session was revoked: the next request logs in with the new password.",
        'pm.environment.set("password", pm.environment.get("new_password"));',
      ],
    },
  ],
  [
    "POST /auth/login",
    {
      body: { mobile_number: "{{mobile_number}}", password: "{{password}}" },
      prerequest: clientIpHeader,
      test: storeSession,
    },
  ],
  [
    "GET /user/me",
    {
      test: [
        'pm.test("is the signed-up user", () => pm.expect(pm.response.json().user.id).to.eql(pm.environment.get("user_id")));',
      ],
    },
  ],
  ["PATCH /user/me", {}],
  [
    "POST /chatroom",
    {
      body: { title: "Postman run" },
      test: ['pm.environment.set("chatroom_id", pm.response.json().chatroom.id);'],
    },
  ],
  ["GET /chatroom", {}],
  ["GET /chatroom/{id}", {}],
  ["PATCH /chatroom/{id}", { body: { title: "Postman run (renamed)" } }],
  [
    "POST /chatroom/{id}/message",
    {
      expect: 202,
      headers: { "Idempotency-Key": "{{$guid}}" },
      test: [
        "const body = pm.response.json();",
        'pm.environment.set("reply_id", body.reply.id);',
        'pm.environment.set("poll_count", 0);',
        'pm.test("points Location at the pending reply", () => pm.expect(pm.response.headers.get("Location")).to.include(body.reply.id));',
      ],
    },
  ],
  [
    "GET /chatroom/{id}/messages/{message_id}",
    {
      test: [
        "// Poll the reply until Gemini's answer lands (bounded: 30 tries, 500 ms apart).",
        "const message = pm.response.json().message;",
        'const count = Number(pm.environment.get("poll_count") || 0) + 1;',
        'pm.environment.set("poll_count", count);',
        'if (message.status === "pending" && count < 30) {',
        "  const next = pm.execution && pm.execution.setNextRequest",
        "    ? (name) => pm.execution.setNextRequest(name)",
        "    : (name) => postman.setNextRequest(name);",
        "  next(pm.info.requestName);",
        "  setTimeout(() => {}, 500);",
        "} else {",
        '  pm.test("the reply completed", () => pm.expect(message.status).to.eql("complete"));',
        '  pm.environment.set("reply_status", message.status);',
        "}",
      ],
    },
  ],
  // Following a complete reply's stream (resume) answers its one `done` event.
  [
    "GET /chatroom/{id}/messages/{message_id}/stream",
    {
      headers: { Accept: "text/event-stream", "Last-Event-ID": "0" },
      test: [
        'pm.test("ends with done", () => pm.expect(pm.response.text()).to.include("event: done"));',
      ],
    },
  ],
  // The reply is complete: it can no longer be stopped, but it can be asked again.
  [
    "POST /chatroom/{id}/messages/{message_id}/cancel",
    {
      expect: 409,
      test: [
        'pm.test("is reply_finished", () => pm.expect(pm.response.json().error.code).to.eql("reply_finished"));',
      ],
    },
  ],
  [
    "POST /chatroom/{id}/messages/{message_id}/regenerate",
    {
      expect: 202,
      headers: { "Idempotency-Key": "{{$guid}}" },
      test: [
        "const reply = pm.response.json().reply;",
        'pm.test("is a new pending reply", () => pm.expect(reply.id).to.not.eql(pm.environment.get("reply_id")));',
        'pm.test("points Location at it", () => pm.expect(pm.response.headers.get("Location")).to.include(reply.id));',
      ],
    },
  ],
  ["GET /chatroom/{id}/messages", {}],
  ["DELETE /chatroom/{id}", {}],
  [
    "POST /subscribe/pro",
    { body: null, test: ['pm.environment.set("checkout_url", pm.response.json().checkout_url);'] },
  ],
  ["POST /subscription/portal", { body: null }],
  // Checkout was opened but not paid: there is nothing to cancel yet.
  ["POST /subscription/cancel", { expect: 409 }],
  [
    "GET /subscription/status",
    {
      test: [
        'pm.test("counts today\'s prompt", () => pm.expect(pm.response.json().usage.used_today).to.be.at.least(1));',
      ],
    },
  ],
  [
    "POST /auth/logout",
    {
      // With the refresh token alone (no Authorization): ends the verify-otp session, already
      // signed out by the reset (idempotent); the login session used by the next folders stays.
      body: { refresh_token: "{{otp_refresh_token}}" },
    },
  ],
  // Webhooks are for Stripe and QStash; unsigned deliveries are refused.
  ["POST /webhook/stripe", { expect: 400, body: {} }],
  ["POST /webhook/qstash/reply", { expect: 401, body: {}, query: { reply_id: "{{reply_id}}" } }],
  [
    "POST /webhook/qstash/reply-failed",
    { expect: 401, body: {}, query: { reply_id: "{{reply_id}}" } },
  ],
  [
    "POST /webhook/qstash/title",
    { expect: 401, body: {}, query: { chatroom_id: "{{chatroom_id}}" } },
  ],
];

interface Operation {
  key: string;
  method: string;
  path: string;
  op: Json;
}

function operationsOf(doc: Json): Operation[] {
  return Object.entries<Json>(doc.paths).flatMap(([path, item]) =>
    METHODS.filter((m) => item[m]).map((method) => ({
      key: `${method.toUpperCase()} ${path}`,
      method,
      path,
      op: item[method],
    })),
  );
}

function requestItem(doc: Json, { key, method, path, op }: Operation, step: Step | undefined) {
  const segments = path
    .split("/")
    .filter(Boolean)
    .map((seg) => {
      const name = /^\{(.+)\}$/.exec(seg)?.[1];
      return name ? `{{${PATH_VARIABLES[name] ?? name}}}` : seg;
    });
  const query = Object.entries(step?.query ?? {}).map(([k, value]) => ({ key: k, value }));
  const raw = `{{base_url}}/${segments.join("/")}${query.length ? `?${query.map((q) => `${q.key}=${q.value}`).join("&")}` : ""}`;

  const schema = op.requestBody?.content?.["application/json"]?.schema;
  const body =
    step?.body === null
      ? undefined
      : (step?.body ?? (schema ? exampleFor(doc, schema) : undefined));
  const headers = [
    ...(body !== undefined ? [{ key: "Content-Type", value: "application/json" }] : []),
    ...Object.entries(step?.headers ?? {}).map(([k, value]) => ({ key: k, value })),
  ];
  const secured = (op.security ?? []).length > 0;
  const documented = Object.keys(op.responses).map(Number);
  const expected = step?.expect ?? documented.find((s) => s >= 200 && s < 300) ?? 200;

  const test = [
    `pm.test("answers ${expected}", () => pm.response.to.have.status(${expected}));`,
    ...(step?.test ?? []),
  ];
  const events = [
    ...(step?.prerequest?.length
      ? [{ listen: "prerequest", script: { type: "text/javascript", exec: step.prerequest } }]
      : []),
    { listen: "test", script: { type: "text/javascript", exec: test } },
  ];
  return {
    name: op.summary ?? key,
    event: events,
    request: {
      ...(secured ? {} : { auth: { type: "noauth" } }),
      method: method.toUpperCase(),
      header: headers,
      ...(body !== undefined
        ? {
            body: {
              mode: "raw",
              raw: JSON.stringify(body, null, 2),
              options: { raw: { language: "json" } },
            },
          }
        : {}),
      url: { raw, host: ["{{base_url}}"], path: segments, ...(query.length ? { query } : {}) },
      description: [`\`${key}\``, op.description].filter(Boolean).join("\n\n"),
    },
    response: [],
  };
}

/** The collection and environment for `doc`; deterministic, so the committed files diff cleanly. */
export function buildPostman(doc: Json, opts: { baseUrl?: string } = {}) {
  const ops = operationsOf(doc);
  const order = new Map(STEPS.map(([key], i) => [key, i]));
  const steps = new Map(STEPS);
  const sorted = [...ops].sort(
    (a, b) =>
      (order.get(a.key) ?? Number.MAX_SAFE_INTEGER) - (order.get(b.key) ?? Number.MAX_SAFE_INTEGER),
  );
  const tags: { name: string; description?: string }[] = doc.tags ?? [];
  const folders = tags
    .map((tag) => ({
      name: tag.name,
      description: tag.description ?? "",
      item: sorted
        .filter((o) => o.op.tags?.[0] === tag.name)
        .map((o) => requestItem(doc, o, steps.get(o.key))),
    }))
    .filter((f) => f.item.length > 0);

  const collection = {
    info: {
      _postman_id: "6f1c2a4e-0b7d-4c59-9a3e-2d8b5f0c7e11",
      name: doc.info.title,
      description: `${doc.info.description ?? ""}\n\nGenerated from /openapi.json by \`npm run postman\`; do not edit by hand.`,
      schema: "https://schema.getpostman.com/json/collection/v2.1.0/collection.json",
    },
    auth: { type: "bearer", bearer: [{ key: "token", value: "{{token}}", type: "string" }] },
    item: folders,
  };
  const variables = [
    "base_url",
    "token",
    "refresh_token",
    "mobile_number",
    "password",
    "new_password",
    "otp",
    "reset_otp",
    "user_id",
    "chatroom_id",
    "reply_id",
    "poll_count",
    "reply_status",
    "checkout_url",
    "client_ip",
  ];
  const environment = {
    id: "2b7e9c41-5d3a-4f8e-8c6b-1a0d9e7f3c25",
    name: `${doc.info.title} (local)`,
    values: variables.map((key) => ({
      key,
      value: key === "base_url" ? (opts.baseUrl ?? DEFAULT_BASE_URL) : "",
      type: key.includes("token") || key.includes("password") ? "secret" : "default",
      enabled: true,
    })),
    _postman_variable_scope: "environment",
  };
  return { collection, environment };
}

/** Starts the Worker just long enough to read /openapi.json (that route needs no services). */
export async function documentFromWorker(): Promise<Json> {
  const { unstable_startWorker } = await import("wrangler");
  // Loopback only: no fetch of Cloudflare's Request.cf data from the internet.
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
  const root = resolve(import.meta.dirname, "..");
  const { parseDevVars } = await import("../local/dev-vars.ts");
  const vars = parseDevVars(readFileSync(resolve(root, ".dev.vars.example"), "utf8"));
  const bindings = Object.fromEntries(
    Object.entries(vars).map(([k, v]) => [
      k,
      {
        type: "plain_text" as const,
        value: v.replaceAll("<random>", () => randomBytes(32).toString("hex")),
      },
    ]),
  );
  const worker = await unstable_startWorker({
    config: resolve(root, "wrangler.jsonc"),
    bindings,
    dev: {
      server: { hostname: "127.0.0.1", port: 0 },
      inspector: false,
      watch: false,
      logLevel: "warn",
    },
  } as Parameters<typeof unstable_startWorker>[0]);
  try {
    await worker.ready;
    const res = await worker.fetch("http://127.0.0.1/openapi.json");
    if (!res.ok) throw new Error(`/openapi.json answered ${res.status}`);
    return await res.json();
  } finally {
    await worker.dispose();
  }
}

async function main() {
  const i = process.argv.indexOf("--from");
  const from = i >= 0 ? process.argv[i + 1] : undefined;
  const doc = !from
    ? await documentFromWorker()
    : /^https?:/.test(from)
      ? await (await fetch(from)).json()
      : JSON.parse(readFileSync(from, "utf8"));
  const { collection, environment } = buildPostman(doc);
  const dir = resolve(import.meta.dirname, "../postman");
  mkdirSync(dir, { recursive: true });
  writeFileSync(resolve(dir, "collection.json"), `${JSON.stringify(collection, null, 2)}\n`);
  writeFileSync(resolve(dir, "environment.json"), `${JSON.stringify(environment, null, 2)}\n`);
  const count = collection.item.reduce((n, f) => n + f.item.length, 0);
  console.log(`Wrote postman/collection.json (${count} requests) and postman/environment.json.`);
}

if (import.meta.main) await main();
