import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { Hono } from "hono";
import type { LocalCloudConfig, LocalService } from "./types.ts";

export interface LocalCloud {
  url: string;
  port: number;
  close(): Promise<void>;
}

type ServiceFactory = (config: LocalCloudConfig) => Promise<LocalService>;

/**
 * Starts every vendor stand-in in this process behind one loopback port:
 *   /neon/sql        Neon SQL over HTTP        /redis[/pipeline|/multi-exec]  Upstash Redis REST
 *   /qstash/v2/...   QStash                    /gemini/v1beta/...             Gemini
 *   /v1/...          Stripe API                /stripe/checkout/...           Stripe Checkout pages
 *   /_control/<name>/...  fault switches and inspection for tests
 *   /_control/usage       what each vendor would bill (POST /_control/usage/reset zeroes it)
 */
export async function startLocalCloud(
  config: LocalCloudConfig,
  factories: ServiceFactory[],
): Promise<LocalCloud> {
  const services = await Promise.all(factories.map((f) => f(config)));
  const root = new Hono();
  let latencyMs = config.latencyMs;

  root.get("/_control/health", (c) => c.json({ ok: true, services: services.map((s) => s.name) }));
  root.post("/_control/latency", async (c) => {
    const body = (await c.req.json()) as { ms?: number };
    latencyMs = Math.max(0, Number(body.ms ?? 0));
    return c.json({ latency_ms: latencyMs });
  });
  // What each vendor would bill, since start or the last reset (docs/local-cloud.md).
  root.get("/_control/usage", (c) => {
    const usage: Record<string, unknown> = {};
    for (const s of services) if (s.usage) usage[s.name] = s.usage.snapshot();
    return c.json(usage);
  });
  root.post("/_control/usage/reset", (c) => {
    for (const s of services) s.usage?.reset();
    return c.body(null, 204);
  });
  for (const s of services) {
    if (s.control) root.route(`/_control/${s.name}`, s.control);
  }
  root.use("*", async (c, next) => {
    if (latencyMs > 0 && !c.req.path.startsWith("/_control")) {
      await new Promise((r) => setTimeout(r, latencyMs));
    }
    await next();
  });
  for (const s of services) root.route(s.prefix, s.app);
  root.notFound((c) =>
    c.json({ error: `local cloud: no route for ${c.req.method} ${c.req.path}` }, 404),
  );
  root.onError((err, c) => {
    console.error("[local-cloud]", err);
    return c.json({ error: String(err) }, 500);
  });

  const server = serve({ fetch: root.fetch, port: config.port, hostname: "127.0.0.1" });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  const url = `http://127.0.0.1:${port}`;
  for (const s of services) s.onListen?.(url);

  return {
    url,
    port,
    // Services first: their timers (slow faults, retries) would otherwise hold requests open.
    close: async () => {
      await Promise.all(services.map((s) => s.close()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
