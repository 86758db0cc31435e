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
    port: Number(env.LOCAL_CLOUD_PORT ?? new URL(required("UPSTASH_REDIS_REST_URL")).port ?? 8788),
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
  };
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
