import { resolve } from "node:path";
import { startLocalCloud } from "./cloud.ts";
import { ensureDevVars } from "./dev-vars.ts";
import { ALL_SERVICES } from "./services.ts";
import type { LocalCloudConfig } from "./types.ts";

/** Local cloud settings from the Worker's development variables plus LOCAL_* overrides. */
export function cloudConfigFromVars(
  vars: Record<string, string>,
  env: NodeJS.ProcessEnv = process.env,
): LocalCloudConfig {
  const required = (name: string): string => {
    const v = vars[name];
    if (!v) throw new Error(`${name} is missing from .dev.vars`);
    return v;
  };
  return {
    port: localCloudPort(vars, env),
    latencyMs: Number(env.LOCAL_LATENCY_MS ?? 0),
    qstashTimeScale: Number(env.LOCAL_QSTASH_TIME_SCALE ?? 1),
    ...(env.LOCAL_DATABASE_URL
      ? { databaseUrl: env.LOCAL_DATABASE_URL }
      : { pgliteDir: env.LOCAL_PGLITE_DIR ?? ".local-cloud/pglite" }),
    ...(env.LOCAL_REDIS_URL ? { redisUrl: env.LOCAL_REDIS_URL } : {}),
    redisToken: required("UPSTASH_REDIS_REST_TOKEN"),
    qstashToken: required("QSTASH_TOKEN"),
    qstashCurrentSigningKey: required("QSTASH_CURRENT_SIGNING_KEY"),
    qstashNextSigningKey: required("QSTASH_NEXT_SIGNING_KEY"),
    geminiApiKey: required("GEMINI_API_KEY"),
    stripeSecretKey: required("STRIPE_SECRET_KEY"),
    stripeWebhookSecret: required("STRIPE_WEBHOOK_SECRET"),
    stripeProPriceId: required("STRIPE_PRO_PRICE_ID"),
    stripeWebhookUrl: `${required("APP_URL")}/webhook/stripe`,
    // Dev seed: the portal works out of the box (a real account must save its settings once).
    stripePortalSettingsSaved: true,
  };
}

/** The development variables that point at the local cloud's vendor stand-ins. */
const LOCAL_CLOUD_URL_VARS = [
  "UPSTASH_REDIS_REST_URL",
  "QSTASH_URL",
  "NEON_FETCH_ENDPOINT",
  "GEMINI_BASE_URL",
  "STRIPE_API_BASE",
];

/**
 * LOCAL_CLOUD_PORT, else the port the development URLs point at on 127.0.0.1 (some may already
 * be real vendors' https URLs, which carry no port), else 8788.
 */
function localCloudPort(vars: Record<string, string>, env: NodeJS.ProcessEnv): number {
  if (env.LOCAL_CLOUD_PORT) return Number(env.LOCAL_CLOUD_PORT);
  for (const name of LOCAL_CLOUD_URL_VARS) {
    const value = vars[name] ?? "";
    if (!URL.canParse(value)) continue;
    const url = new URL(value);
    if (url.hostname === "127.0.0.1" && url.port) return Number(url.port);
  }
  return 8788;
}

export async function startFromVars(vars: Record<string, string>) {
  return startLocalCloud(cloudConfigFromVars(vars), ALL_SERVICES);
}

// `npm run local-cloud`: only the stand-ins, configured from .dev.vars (created if absent).
if (import.meta.main) {
  const root = resolve(import.meta.dirname, "..");
  const { vars } = ensureDevVars(resolve(root, ".dev.vars"), resolve(root, ".dev.vars.example"));
  const cloud = await startFromVars(vars);
  console.log(
    `Local cloud on ${cloud.url} (Neon, Upstash Redis, QStash, Gemini, Stripe). Ctrl-C stops it.`,
  );
  const stop = () => void cloud.close().then(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}
