import { afterEach, describe, expect, it } from "vitest";
import { call, control } from "../../support/api.ts";

afterEach(async () => {
  await control("neon/fault", { mode: "none" });
  await control("redis/fault", { mode: "none" });
});

describe("GET /health under faults", () => {
  it("answers 503 naming the database when it is unreachable, and 200 once it is back", async () => {
    await control("neon/fault", { mode: "down" });
    const down = await call("GET", "/health");
    expect(down.status).toBe(503);
    expect(down.body.status).toBe("degraded");
    expect(down.body.checks.database.status).toBe("error");
    expect(down.body.checks.redis.status).toBe("ok");

    await control("neon/fault", { mode: "none" });
    expect((await call("GET", "/health")).status).toBe(200);
  });

  it("answers 503 naming Redis when it is unreachable", async () => {
    await control("redis/fault", { mode: "down" });
    const down = await call("GET", "/health");
    expect(down.status).toBe(503);
    expect(down.body.checks.redis.status).toBe("error");
    expect(down.body.checks.database.status).toBe("ok");
  });

  it("reports a slow database's latency and still answers", async () => {
    await control("neon/fault", { mode: "slow", ms: 300 });
    const slow = await call("GET", "/health");
    expect(slow.status).toBe(200);
    expect(slow.body.checks.database.latency_ms).toBeGreaterThanOrEqual(250);
  });
});
