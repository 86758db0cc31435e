import { describe, expect, it } from "vitest";
import { call } from "../support/api.ts";
import { createSession } from "../support/session.ts";

describe("GET /user/me", () => {
  it("returns the caller's profile and nothing secret", async () => {
    const s = await createSession({
      name: "Ada",
      email: "ada@example.com",
      password: "correct horse battery",
    });
    const res = await call("GET", "/user/me", { token: s.token });
    expect(res.status).toBe(200);
    expect(res.body.user).toEqual({
      ...s.user,
      name: "Ada",
      email: "ada@example.com",
      has_password: true,
    });
    expect(res.text).not.toMatch(/pbkdf2|password_hash|stripe/);
  });

  it("requires a bearer token", async () => {
    const res = await call("GET", "/user/me");
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Bearer");
  });
});

describe("PATCH /user/me", () => {
  it("updates name and email, and null clears them", async () => {
    const s = await createSession();
    const set = await call("PATCH", "/user/me", {
      token: s.token,
      body: { name: "  Grace  ", email: "grace@example.com" },
    });
    expect(set.status).toBe(200);
    expect(set.body.user).toMatchObject({ name: "Grace", email: "grace@example.com" });
    const cleared = await call("PATCH", "/user/me", { token: s.token, body: { email: null } });
    expect(cleared.body.user).toMatchObject({ name: "Grace", email: null });
    expect((await call("GET", "/user/me", { token: s.token })).body.user.email).toBeNull();
  });

  it.each([
    ["tier", { tier: "pro" }],
    ["mobile_number", { mobile_number: "+15550100000" }],
    ["has_password", { name: "x", has_password: true }],
    ["id", { id: "01936f4e-1c2d-7b3a-9f00-123456789abc" }],
  ])("refuses a client-set %s (mass assignment) with 400", async (_name, body) => {
    const s = await createSession();
    const res = await call("PATCH", "/user/me", { token: s.token, body });
    expect(res.status).toBe(400);
    const me = await call("GET", "/user/me", { token: s.token });
    expect(me.body.user.tier).toBe("basic");
    expect(me.body.user.mobile_number).toBe(s.mobile_number);
  });

  it.each([
    ["an empty body", {}],
    ["a bad email", { email: "nope" }],
    ["a blank name", { name: "  " }],
    ["a long name", { name: "n".repeat(101) }],
    ["a numeric name", { name: 5 }],
    ["an array", [{ name: "x" }]],
  ])("rejects %s with 400", async (_name, body) => {
    const s = await createSession();
    const res = await call("PATCH", "/user/me", { token: s.token, body });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_request");
  });

  it("requires a bearer token", async () => {
    expect((await call("PATCH", "/user/me", { body: { name: "x" } })).status).toBe(401);
  });
});
