import { describe, expect, it } from "vitest";
import { httpOf, rateLimitHeaders } from "../../src/errors/http.ts";
import { LimitExceededError } from "../../src/errors/index.ts";
import { dailyLimitError, decideQuota, quotaState, utcDay } from "../../src/services/quota.ts";

const limits = { basic: 5, pro: 1000 };
const now = Date.UTC(2026, 10, 23, 22, 0, 0);
const resetAt = Date.UTC(2026, 10, 24, 0, 0, 0);
const ticket = (count: number) => ({ count, resetAt, day: "2026-11-23" });

describe("decideQuota", () => {
  it("accepts a Basic user's 5th prompt of the day and refuses the 6th", () => {
    expect(decideQuota(ticket(5), "basic", limits)).toEqual({
      accepted: true,
      limit: 5,
      used: 5,
      remaining: 0,
      resetAt,
    });
    expect(decideQuota(ticket(6), "basic", limits)).toMatchObject({
      accepted: false,
      used: 5,
      remaining: 0,
    });
  });

  it("reports at most the limit as used when parallel refused requests inflate the counter", () => {
    expect(decideQuota(ticket(27), "basic", limits).used).toBe(5);
  });

  it("gives a Pro user the Pro limit from the same shared counter", () => {
    expect(decideQuota(ticket(6), "pro", limits)).toMatchObject({
      accepted: true,
      limit: 1000,
      remaining: 994,
    });
    expect(decideQuota(ticket(1001), "pro", limits).accepted).toBe(false);
  });
});

describe("quota headers and errors", () => {
  it("emits RateLimit-Limit/Remaining/Reset with seconds until 00:00 UTC", () => {
    expect(rateLimitHeaders(quotaState(decideQuota(ticket(2), "basic", limits), now))).toEqual({
      "RateLimit-Limit": "5",
      "RateLimit-Remaining": "3",
      "RateLimit-Reset": "7200",
    });
  });

  it("answers 429 daily_limit_reached with Retry-After and limit, used, resets_at", () => {
    const err = dailyLimitError(decideQuota(ticket(6), "basic", limits), now);
    expect(err).toBeInstanceOf(LimitExceededError);
    expect(httpOf(err).status).toBe(429);
    expect(err.code).toBe("daily_limit_reached");
    expect(err.details).toEqual({ limit: 5, used: 5, resets_at: "2026-11-24T00:00:00.000Z" });
    expect(httpOf(err).headers).toMatchObject({
      "Retry-After": "7200",
      "RateLimit-Remaining": "0",
    });
  });

  it("names the UTC day of a window", () => {
    expect(utcDay(resetAt - 86_400_000)).toBe("2026-11-23");
    expect(utcDay(Date.UTC(2026, 10, 23, 23, 59, 59, 999))).toBe("2026-11-23");
  });
});
