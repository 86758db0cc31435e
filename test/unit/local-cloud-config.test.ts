import { describe, expect, it } from "vitest";
import { cloudConfigFromVars } from "../../local/main.ts";

const vars = {
  UPSTASH_REDIS_REST_URL: "http://127.0.0.1:8790/redis",
  UPSTASH_REDIS_REST_TOKEN: "t",
  QSTASH_URL: "http://127.0.0.1:8790/qstash",
  QSTASH_TOKEN: "q",
  QSTASH_CURRENT_SIGNING_KEY: "c",
  QSTASH_NEXT_SIGNING_KEY: "n",
  GEMINI_API_KEY: "g",
  STRIPE_SECRET_KEY: "sk",
  STRIPE_WEBHOOK_SECRET: "wh",
  STRIPE_PRO_PRICE_ID: "price",
  APP_URL: "http://127.0.0.1:8787",
};

describe("cloudConfigFromVars (npm run dev's local cloud)", () => {
  it("listens where the development URLs point", () => {
    expect(cloudConfigFromVars(vars, {}).port).toBe(8790);
  });

  it("still finds the local port once Redis is a real Upstash https URL", () => {
    const mixed = { ...vars, UPSTASH_REDIS_REST_URL: "https://eu1-example.upstash.io" };
    expect(cloudConfigFromVars(mixed, {}).port).toBe(8790);
  });

  it("prefers LOCAL_CLOUD_PORT, and falls back to 8788", () => {
    expect(cloudConfigFromVars(vars, { LOCAL_CLOUD_PORT: "9000" }).port).toBe(9000);
    const none = { ...vars, UPSTASH_REDIS_REST_URL: "https://x.upstash.io", QSTASH_URL: "" };
    expect(cloudConfigFromVars(none, {}).port).toBe(8788);
  });
});
