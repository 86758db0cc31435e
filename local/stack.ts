// The whole stack on loopback: the local cloud plus the real Worker in workerd, each on a free
// port. The API test harness, the load run and the benchmark all start it the same way.
import { createServer } from "node:net";
import { resolve } from "node:path";
import { unstable_startWorker } from "wrangler";
import { startLocalCloud } from "./cloud.ts";
import { ALL_SERVICES } from "./services.ts";
import { testCloudConfig } from "./test-config.ts";
import { workerVarsFor } from "./worker-vars.ts";

type WorkerInput = Parameters<typeof unstable_startWorker>[0];
type DevOptions = NonNullable<WorkerInput["dev"]>;

export interface Stack {
  workerUrl: string;
  cloudUrl: string;
  /** The variables the Worker runs with (secrets included), to sign tokens and webhooks. */
  vars: Record<string, string>;
  close(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

/**
 * Starts the local cloud (embedded PGlite and Redis unless LOCAL_DATABASE_URL / LOCAL_REDIS_URL
 * are set) and the Worker. The Worker listens on a real port so QStash callbacks and Stripe
 * webhooks from the local cloud reach it. `vars` are added to the Worker's variables; `dev`
 * options go to wrangler's `unstable_startWorker`.
 */
export async function startStack(
  opts: { vars?: Record<string, string>; dev?: Partial<DevOptions> } = {},
): Promise<Stack> {
  // Loopback only: no fetch of Cloudflare's Request.cf data from the internet.
  process.env.CLOUDFLARE_CF_FETCH_ENABLED ??= "false";
  const workerPort = await freePort();
  const workerUrl = `http://127.0.0.1:${workerPort}`;
  const config = testCloudConfig({ stripeWebhookUrl: `${workerUrl}/webhook/stripe` });
  const cloud = await startLocalCloud(config, ALL_SERVICES);
  const vars: Record<string, string> = {
    APP_URL: workerUrl,
    ALLOWED_REDIRECT_ORIGINS: "http://localhost:3000",
    OTP_DELIVERY: "response",
    BASIC_DAILY_LIMIT: "5",
    PRO_DAILY_LIMIT: "1000",
    ...workerVarsFor(cloud.url, config),
    ...opts.vars,
  };
  try {
    const worker = await unstable_startWorker({
      config: resolve(import.meta.dirname, "../wrangler.jsonc"),
      bindings: Object.fromEntries(
        Object.entries(vars).map(([k, v]) => [k, { type: "plain_text" as const, value: v }]),
      ),
      dev: {
        server: { hostname: "127.0.0.1", port: workerPort },
        inspector: false,
        watch: false,
        liveReload: false,
        ...opts.dev,
      },
    } as WorkerInput);
    await worker.ready;
    return {
      workerUrl,
      cloudUrl: cloud.url,
      vars,
      close: async () => {
        await worker.dispose();
        await cloud.close();
      },
    };
  } catch (err) {
    await cloud.close();
    throw err;
  }
}
