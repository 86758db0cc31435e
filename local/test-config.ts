import type { LocalCloudConfig } from "./types.ts";

/** Deterministic keys for tests; a development machine gets random ones in .dev.vars. */
export const TEST_KEYS = {
  redisToken: "test-redis-token",
  qstashToken: "test-qstash-token",
  qstashCurrentSigningKey: "sig_test_current_0123456789abcdef",
  qstashNextSigningKey: "sig_test_next_fedcba9876543210",
  geminiApiKey: "test-gemini-key",
  stripeSecretKey: "sk_test_local_0123456789",
  stripeWebhookSecret: "whsec_test_local_0123456789abcdef",
  stripeProPriceId: "price_local_pro_monthly",
} as const;

export function testCloudConfig(overrides: Partial<LocalCloudConfig> = {}): LocalCloudConfig {
  return {
    port: 0,
    latencyMs: 0,
    qstashTimeScale: 0.001,
    // The test account is set up like a deployed one; the portal fault test unsaves it.
    stripePortalSettingsSaved: true,
    ...TEST_KEYS,
    ...(process.env.LOCAL_DATABASE_URL ? { databaseUrl: process.env.LOCAL_DATABASE_URL } : {}),
    ...(process.env.LOCAL_REDIS_URL ? { redisUrl: process.env.LOCAL_REDIS_URL } : {}),
    ...overrides,
  };
}
