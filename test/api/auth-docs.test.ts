import { describe, expect, it } from "vitest";
import { call } from "../support/api.ts";

const ROUTES: [string, string, boolean][] = [
  ["post", "/auth/signup", false],
  ["post", "/auth/send-otp", false],
  ["post", "/auth/verify-otp", false],
  ["post", "/auth/login", false],
  ["post", "/auth/refresh", false],
  // The refresh token alone is enough (an expired access token must not strand a session).
  ["post", "/auth/logout", false],
  ["post", "/auth/forgot-password", false],
  ["post", "/auth/reset-password", false],
  ["post", "/auth/change-password", true],
  ["get", "/user/me", true],
  ["patch", "/user/me", true],
];

describe("OpenAPI document for accounts", () => {
  it.each(ROUTES)(
    "documents %s %s with its security requirement",
    async (method, path, secured) => {
      const doc = (await call("GET", "/openapi.json")).body;
      const op = doc.paths[path]?.[method];
      expect(op).toBeDefined();
      expect(Boolean(op.security?.length)).toBe(secured);
      expect(Object.keys(op.responses)).toContain(
        method === "post" && path === "/auth/signup"
          ? "201"
          : method === "post" && path === "/auth/logout"
            ? "204"
            : "200",
      );
    },
  );

  it("describes mobile_number as a string with the E.164 rule and never exposes password hashes", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const signup = doc.components.schemas.SignupRequest;
    expect(signup.properties.mobile_number.type).toBe("string");
    expect(signup.properties.mobile_number.description).toMatch(/E\.164/);
    expect(signup.additionalProperties).toBe(false);
    expect(Object.keys(doc.components.schemas.User.properties).sort()).toEqual([
      "created_at",
      "email",
      "has_password",
      "id",
      "mobile_number",
      "name",
      "tier",
    ]);
  });
});
