import type { LocalCloudConfig } from "./types.ts";

/**
 * The Worker variables that point it at a local cloud: the same names as in production, with
 * local URLs and the cloud's keys. Nothing under src/ knows it is talking to a stand-in.
 */
export function workerVarsFor(cloudUrl: string, config: LocalCloudConfig): Record<string, string> {
  const host = new URL(cloudUrl).host;
  return {
    DATABASE_URL: `postgres://neon:local@${host}/neondb`,
    NEON_FETCH_ENDPOINT: `${cloudUrl}/neon/sql`,
    UPSTASH_REDIS_REST_URL: `${cloudUrl}/redis`,
    UPSTASH_REDIS_REST_TOKEN: config.redisToken,
    QSTASH_URL: `${cloudUrl}/qstash`,
    QSTASH_TOKEN: config.qstashToken,
    QSTASH_CURRENT_SIGNING_KEY: config.qstashCurrentSigningKey,
    QSTASH_NEXT_SIGNING_KEY: config.qstashNextSigningKey,
    GEMINI_BASE_URL: `${cloudUrl}/gemini`,
    GEMINI_API_KEY: config.geminiApiKey,
    STRIPE_API_BASE: cloudUrl,
    STRIPE_SECRET_KEY: config.stripeSecretKey,
    STRIPE_WEBHOOK_SECRET: config.stripeWebhookSecret,
    STRIPE_PRO_PRICE_ID: config.stripeProPriceId,
  };
}
