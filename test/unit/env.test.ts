import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { ConfigError, parseEnv, qstashRetryChainSeconds } from "../../src/env.ts";

const valid = {
  ENVIRONMENT: "production",
  APP_URL: "https://api.example.com",
  DATABASE_URL: "postgres://user:pass@ep-x.neon.tech/db",
  UPSTASH_REDIS_REST_URL: "https://eu1-x.upstash.io",
  UPSTASH_REDIS_REST_TOKEN: "token",
  QSTASH_TOKEN: "qstash",
  QSTASH_CURRENT_SIGNING_KEY: "sig_current",
  QSTASH_NEXT_SIGNING_KEY: "sig_next",
  GEMINI_API_KEY: "gemini",
  STRIPE_SECRET_KEY: "sk_test_x",
  STRIPE_WEBHOOK_SECRET: "whsec_x",
  STRIPE_PRO_PRICE_ID: "price_x",
  JWT_SECRET: "a".repeat(32),
  OTP_SECRET: "b".repeat(32),
};

function configErrorOf(bindings: Record<string, unknown>): string {
  try {
    parseEnv(bindings);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("expected parseEnv to throw");
}

describe("parseEnv", () => {
  it("accepts a complete production configuration and fills the documented defaults", () => {
    const env = parseEnv(valid);
    expect(env.GEMINI_MODEL).toBe("gemini-3.8-flash");
    expect(env.GEMINI_MAX_OUTPUT_TOKENS_BASIC).toBeLessThan(env.GEMINI_MAX_OUTPUT_TOKENS_PRO);
    expect(env.BASIC_DAILY_LIMIT).toBe(5);
    expect(env.PRO_DAILY_LIMIT).toBe(1000);
    expect(env.ACCESS_TOKEN_TTL_SECONDS).toBe(900);
    expect(env.CHATROOM_CACHE_TTL_SECONDS).toBe(600);
    expect(env.OTP_DELIVERY).toBe("log");
  });

  it("refuses a shut-down Gemini model, naming its replacement", () => {
    expect(configErrorOf({ ...valid, GEMINI_MODEL: "gemini-2.5-flash" })).toMatch(
      /GEMINI_MODEL: gemini-2\.5-flash was shut down by Google on 2026-12-01; use gemini-3\.5-flash-lite/,
    );
    expect(configErrorOf({ ...valid, GEMINI_MODEL: "gemini-2.5-pro" })).toMatch(
      /gemini-3\.8-flash/,
    );
    expect(configErrorOf({ ...valid, GEMINI_MODEL: "gemini-1.5-flash" })).toMatch(/shut down/);
    expect(parseEnv({ ...valid, GEMINI_MODEL: "gemini-2.5-flash-lite" }).GEMINI_MODEL).toBe(
      "gemini-2.5-flash-lite",
    );
  });

  it("refuses a thinking budget that leaves no room for the answer", () => {
    expect(
      configErrorOf({
        ...valid,
        GEMINI_MAX_OUTPUT_TOKENS_BASIC: "512",
        GEMINI_THINKING_BUDGET_BASIC: "512",
      }),
    ).toMatch(/GEMINI_THINKING_BUDGET_BASIC/);
    expect(configErrorOf({ ...valid, GEMINI_THINKING_LEVEL_PRO: "EXTREME" })).toMatch(
      /GEMINI_THINKING_LEVEL_PRO/,
    );
    // gemini-3.8-flash documents LOW, MEDIUM and HIGH only.
    expect(configErrorOf({ ...valid, GEMINI_THINKING_LEVEL_BASIC: "MINIMAL" })).toMatch(
      /GEMINI_THINKING_LEVEL_BASIC: gemini-3\.8-flash takes thinking levels LOW, MEDIUM, HIGH/,
    );
    expect(
      parseEnv({
        ...valid,
        GEMINI_MODEL: "gemini-3.5-flash-lite",
        GEMINI_THINKING_LEVEL_BASIC: "MINIMAL",
      }).GEMINI_THINKING_LEVEL_BASIC,
    ).toBe("MINIMAL");
  });

  it("names a missing secret", () => {
    const { STRIPE_WEBHOOK_SECRET: _, ...rest } = valid;
    expect(configErrorOf(rest)).toMatch(/STRIPE_WEBHOOK_SECRET/);
  });

  it("refuses a JWT secret under 32 bytes and names it", () => {
    const message = configErrorOf({ ...valid, JWT_SECRET: "x".repeat(31) });
    expect(message).toMatch(/JWT_SECRET: JWT_SECRET must be at least 32 bytes/);
  });

  it("counts bytes, not characters, for secrets", () => {
    // 16 two-byte characters are 32 bytes.
    expect(() => parseEnv({ ...valid, OTP_SECRET: "é".repeat(16) })).not.toThrow();
    expect(configErrorOf({ ...valid, OTP_SECRET: "é".repeat(15) })).toMatch(/OTP_SECRET/);
  });

  it("lists every bad variable at once", () => {
    const message = configErrorOf({ ...valid, APP_URL: "not a url", DATABASE_URL: "mysql://x" });
    expect(message).toMatch(/APP_URL/);
    expect(message).toMatch(/DATABASE_URL/);
  });

  it("echoes OTP codes only in development and test", () => {
    expect(configErrorOf({ ...valid, OTP_DELIVERY: "response" })).toMatch(/OTP_DELIVERY/);
    // No ENVIRONMENT at all defaults to production: refused too.
    const { ENVIRONMENT: _unset, ...unnamed } = valid;
    expect(configErrorOf({ ...unnamed, OTP_DELIVERY: "response" })).toMatch(/OTP_DELIVERY/);
    expect(configErrorOf({ ...valid, ENVIRONMENT: "staging", OTP_DELIVERY: "response" })).toMatch(
      /ENVIRONMENT|OTP_DELIVERY/,
    );
    for (const ENVIRONMENT of ["development", "test"]) {
      expect(parseEnv({ ...valid, ENVIRONMENT, OTP_DELIVERY: "response" }).OTP_DELIVERY).toBe(
        "response",
      );
    }
  });

  it("refuses non-numeric or non-positive limits", () => {
    expect(configErrorOf({ ...valid, BASIC_DAILY_LIMIT: "five" })).toMatch(/BASIC_DAILY_LIMIT/);
    expect(configErrorOf({ ...valid, PRO_DAILY_LIMIT: "0" })).toMatch(/PRO_DAILY_LIMIT/);
  });

  it("caps the access-token lifetime at an hour (stateless routes honour it until then)", () => {
    expect(configErrorOf({ ...valid, ACCESS_TOKEN_TTL_SECONDS: "3601" })).toMatch(
      /ACCESS_TOKEN_TTL_SECONDS/,
    );
    expect(parseEnv({ ...valid, ACCESS_TOKEN_TTL_SECONDS: "3600" }).ACCESS_TOKEN_TTL_SECONDS).toBe(
      3600,
    );
  });

  it("never puts a secret's value in the error message", () => {
    const message = configErrorOf({ ...valid, JWT_SECRET: "short-but-secret" });
    expect(message).not.toContain("short-but-secret");
  });

  it("refuses a reply deadline shorter than QStash's retry chain", () => {
    // 3 retries: 12 s + 2 min 28 s + 30 min 8 s, about 33 minutes.
    expect(Math.round(qstashRetryChainSeconds(3))).toBe(1969);
    expect(configErrorOf({ ...valid, REPLY_DEADLINE_SECONDS: "1800" })).toMatch(
      /REPLY_DEADLINE_SECONDS must exceed QStash's retry chain for QSTASH_RETRIES=3 \(1969 s\)/,
    );
    expect(
      parseEnv({ ...valid, REPLY_DEADLINE_SECONDS: "1800", QSTASH_RETRIES: "2" })
        .REPLY_DEADLINE_SECONDS,
    ).toBe(1800);
  });
});

describe("loaded outside the bundler", () => {
  it("imports in plain Node, as npm run dev's runner (local/dev.ts) loads it", () => {
    // Node resolves no extensionless relative import: one in src/env.ts's graph broke npm run dev
    // while every bundled test passed.
    const root = fileURLToPath(new URL("../..", import.meta.url));
    const out = execFileSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        "const { parseEnv } = await import('./src/env.ts'); console.log(typeof parseEnv);",
      ],
      { cwd: root, encoding: "utf8" },
    );
    expect(out.trim()).toBe("function");
  });
});
