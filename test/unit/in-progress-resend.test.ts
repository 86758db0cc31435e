import { describe, expect, it } from "vitest";
import {
  IN_PROGRESS_RESEND_MS,
  InProgressResends,
  inProgressDelayMs,
  isIdempotencyInProgress,
} from "../../scripts/support/in-progress.ts";

// The load run's and the soak's one policy for resending a 409 idempotency_in_progress.

describe("isIdempotencyInProgress", () => {
  it("is a 409 whose error code is idempotency_in_progress, and nothing else", () => {
    const body = (code: string) => ({ error: { code, message: "m", request_id: "r" } });
    expect(isIdempotencyInProgress(409, body("idempotency_in_progress"))).toBe(true);
    expect(isIdempotencyInProgress(409, body("reply_in_progress"))).toBe(false);
    expect(isIdempotencyInProgress(409, body("idempotency_key_reused"))).toBe(false);
    expect(isIdempotencyInProgress(503, body("idempotency_in_progress"))).toBe(false);
    expect(isIdempotencyInProgress(409, null)).toBe(false);
    expect(isIdempotencyInProgress(409, "idempotency_in_progress")).toBe(false);
  });
});

describe("inProgressDelayMs", () => {
  it("honours Retry-After in seconds, capped at 10 s", () => {
    expect(inProgressDelayMs("1", 0)).toBe(1_000);
    expect(inProgressDelayMs("5", 7)).toBe(5_000);
    expect(inProgressDelayMs("2.5", 0)).toBe(2_500);
    expect(inProgressDelayMs("3600", 0)).toBe(10_000);
  });

  it("backs off from 500 ms, doubling to 4 s, without a usable Retry-After", () => {
    for (const header of [null, "", "0", "-3", "soon", "Wed, 21 Oct 2026 07:28:00 GMT"]) {
      expect(
        [0, 1, 2, 3, 4, 9].map((n) => inProgressDelayMs(header, n)),
        String(header),
      ).toEqual([500, 1_000, 2_000, 4_000, 4_000, 4_000]);
    }
  });
});

describe("InProgressResends", () => {
  it("grants resends for IN_PROGRESS_RESEND_MS from the first 409, then answers null", () => {
    let now = 1_000_000;
    const resends = new InProgressResends({ now: () => now });
    expect(resends.next("5")).toBe(5_000);
    now += 5_000;
    expect(resends.next(null)).toBe(1_000); // the second resend's backoff
    now += IN_PROGRESS_RESEND_MS - 5_001;
    expect(resends.next("5")).toBe(5_000);
    now += 1;
    expect(resends.next("5")).toBeNull();
    expect(resends.count).toBe(3);
  });

  it("counts its patience per request: a new request starts a new window", () => {
    let now = 0;
    const first = new InProgressResends({ now: () => now, patienceMs: 1_000 });
    expect(first.next("1")).toBe(1_000);
    now += 1_000;
    expect(first.next("1")).toBeNull();
    const second = new InProgressResends({ now: () => now, patienceMs: 1_000 });
    expect(second.next("1")).toBe(1_000);
  });
});
