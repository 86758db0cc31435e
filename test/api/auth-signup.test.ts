import { describe, expect, it } from "vitest";
import { call, uniqueClientIp, uniqueMobileNumber, withinOneWindow } from "../support/api.ts";

const USER_KEYS = ["created_at", "email", "has_password", "id", "mobile_number", "name", "tier"];

describe("POST /auth/signup", () => {
  it("creates a basic-tier user with the number normalised to E.164", async () => {
    const e164 = uniqueMobileNumber();
    const spaced = `${e164.slice(0, 2)} (${e164.slice(2, 5)}) ${e164.slice(5, 8)}-${e164.slice(8)}`;
    const res = await call("POST", "/auth/signup", {
      body: { mobile_number: spaced, name: "Ada", email: "ada@example.com" },
    });
    expect(res.status).toBe(201);
    expect(Object.keys(res.body.user).sort()).toEqual(USER_KEYS);
    expect(res.body.user).toMatchObject({
      mobile_number: e164,
      name: "Ada",
      email: "ada@example.com",
      tier: "basic",
      has_password: false,
    });
    expect(new Date(res.body.user.created_at).toString()).not.toBe("Invalid Date");
  });

  it("hashes an optional password and never returns it or its hash", async () => {
    const res = await call("POST", "/auth/signup", {
      body: { mobile_number: uniqueMobileNumber(), password: "correct horse battery" },
    });
    expect(res.status).toBe(201);
    expect(res.body.user.has_password).toBe(true);
    expect(res.text).not.toContain("correct horse battery");
    expect(res.text).not.toContain("pbkdf2");
  });

  it("answers 409 conflict for a number that exists, however it is written", async () => {
    const e164 = uniqueMobileNumber();
    expect((await call("POST", "/auth/signup", { body: { mobile_number: e164 } })).status).toBe(
      201,
    );
    const again = await call("POST", "/auth/signup", {
      body: { mobile_number: `${e164.slice(0, 2)} ${e164.slice(2)}` },
    });
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("conflict");
  });

  it("gives exactly one 201 for ten parallel signups of one number", async () => {
    const mobile_number = uniqueMobileNumber();
    const results = await Promise.all(
      Array.from({ length: 10 }, () => call("POST", "/auth/signup", { body: { mobile_number } })),
    );
    const statuses = results.map((r) => r.status).sort();
    expect(statuses).toEqual([201, 409, 409, 409, 409, 409, 409, 409, 409, 409]);
  });

  it("limits signups per client IP (20 an hour, taken numbers included) with 429 + Retry-After", () =>
    withinOneWindow(3_600_000, async () => {
      const ip = { "cf-connecting-ip": uniqueClientIp() };
      const signup = (mobile_number: string) =>
        call("POST", "/auth/signup", { body: { mobile_number }, headers: ip });
      const taken = uniqueMobileNumber();
      expect((await signup(taken)).status).toBe(201);
      expect((await signup(taken)).status).toBe(409);
      // Invalid input is refused before the limit and spends nothing.
      expect((await signup("nope")).status).toBe(400);
      for (let i = 0; i < 18; i++) expect((await signup(uniqueMobileNumber())).status).toBe(201);

      const refusedNumber = uniqueMobileNumber();
      const refused = await signup(refusedNumber);
      expect(refused.status).toBe(429);
      expect(refused.body.error.code).toBe("rate_limited");
      const retryAfter = Number(refused.headers.get("retry-after"));
      expect(retryAfter).toBeGreaterThan(0);
      expect(retryAfter).toBeLessThanOrEqual(3600);
      // A refused signup creates nothing: the number is still free for another network.
      const elsewhere = await call("POST", "/auth/signup", {
        body: { mobile_number: refusedNumber },
      });
      expect(elsewhere.status).toBe(201);
    }));

  it("counts IPv6 clients by their /64: another address in it shares the budget", () =>
    withinOneWindow(3_600_000, async () => {
      const [a, b] = crypto.getRandomValues(new Uint16Array(2));
      const prefix = `2001:db8:${(a ?? 0).toString(16)}:${(b ?? 0).toString(16)}`;
      const signup = (ip: string) =>
        call("POST", "/auth/signup", {
          body: { mobile_number: uniqueMobileNumber() },
          headers: { "cf-connecting-ip": ip },
        });
      for (let i = 1; i <= 20; i++)
        expect((await signup(`${prefix}::${i.toString(16)}`)).status).toBe(201);
      expect((await signup(`${prefix}:ffff:ffff:ffff:ffff`)).status).toBe(429);
      // The next /64 is another client.
      expect(
        (await signup(`2001:db8:${(a ?? 0).toString(16)}:${((b ?? 0) ^ 1).toString(16)}::1`))
          .status,
      ).toBe(201);
    }));

  it.each([
    ["missing number", {}],
    ["number as a JSON number", { mobile_number: 15550100000 }],
    ["no plus", { mobile_number: "15550100000" }],
    ["00 prefix", { mobile_number: "0015550100000" }],
    ["too long", { mobile_number: "+1555010000012345" }],
    ["full-width digits", { mobile_number: "+１５５５０１０００００" }],
    ["array", { mobile_number: ["+15550100000"] }],
    ["operator object", { mobile_number: { $ne: null } }],
    ["bad email", { mobile_number: "+15550100000", email: "not-an-email" }],
    ["empty name", { mobile_number: "+15550100000", name: "   " }],
    ["name too long", { mobile_number: "+15550100000", name: "n".repeat(101) }],
    ["7-character password", { mobile_number: "+15550100000", password: "1234567" }],
    ["129-character password", { mobile_number: "+15550100000", password: "p".repeat(129) }],
    ["client-set tier", { mobile_number: "+15550100000", tier: "pro" }],
    ["client-set id", { mobile_number: "+15550100000", id: "x" }],
  ])("rejects %s with 400 invalid_request and details", async (_name, body) => {
    const res = await call("POST", "/auth/signup", { body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
    expect(Array.isArray(res.body.error.details)).toBe(true);
    expect(res.body.error.details.length).toBeGreaterThan(0);
  });

  it("names the broken field and the E.164 rule in the details", async () => {
    const res = await call("POST", "/auth/signup", { body: { mobile_number: "555-0100" } });
    expect(res.body.error.details[0]).toMatchObject({ path: "mobile_number" });
    expect(res.body.error.details[0].message).toMatch(/E\.164/);
  });

  it("rejects invalid JSON with 400 and a non-JSON body with 415", async () => {
    const bad = await call("POST", "/auth/signup", {
      rawBody: "{",
      headers: { "content-type": "application/json" },
    });
    expect(bad.status).toBe(400);
    const text = await call("POST", "/auth/signup", {
      rawBody: JSON.stringify({ mobile_number: "+15550100000" }),
      headers: { "content-type": "text/plain" },
    });
    expect(text.status).toBe(415);
  });

  it("does not echo a rejected password in the error", async () => {
    const res = await call("POST", "/auth/signup", {
      body: { mobile_number: "+15550100000", password: "short1" },
    });
    expect(res.status).toBe(400);
    expect(res.text).not.toContain("short1");
  });
});

describe("POST /auth/signup hostile JSON", () => {
  it("rejects a __proto__ key instead of merging it", async () => {
    const res = await call("POST", "/auth/signup", {
      rawBody: `{"mobile_number":"+15550100000","__proto__":{"tier":"pro"}}`,
      headers: { "content-type": "application/json" },
    });
    expect(res.status).toBe(400);
  });

  it("rejects an array body and a null body", async () => {
    for (const rawBody of ["[]", "null"]) {
      const res = await call("POST", "/auth/signup", {
        rawBody,
        headers: { "content-type": "application/json" },
      });
      expect(res.status).toBe(400);
    }
  });
});
