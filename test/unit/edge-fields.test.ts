import { describe, expect, it } from "vitest";
import { ValidationError } from "../../src/errors/index.ts";
import { closestField, normaliseFields } from "../../src/routes/shared/fields.ts";

const SIGNUP = ["mobile_number", "name", "email", "password"];

describe("closestField", () => {
  it("finds typos, prefixes and near-misses of aliases among the route's fields", () => {
    expect(closestField("mobil", SIGNUP)).toBe("mobile_number");
    expect(closestField("Mobile-Number", SIGNUP)).toBe("mobile_number");
    expect(closestField("phon", SIGNUP)).toBe("mobile_number");
    expect(closestField("pasword", SIGNUP)).toBe("password");
    expect(closestField("emial", SIGNUP)).toBe("email");
    expect(closestField("titel", ["title"])).toBe("title");
    expect(closestField("fullname", SIGNUP)).toBe("name");
  });

  it("suggests nothing far off, nothing from another route, nothing for an empty name", () => {
    expect(closestField("tier", SIGNUP)).toBeNull();
    expect(closestField("title", SIGNUP)).toBeNull();
    expect(closestField("is_admin", ["title"])).toBeNull();
    expect(closestField("", SIGNUP)).toBeNull();
    expect(closestField("__proto__", SIGNUP)).toBeNull();
  });
});

describe("normaliseFields", () => {
  it("renames an alias only where the route has its field and not the alias", () => {
    expect(normaliseFields({ phone: "+1", full_name: "A" }, SIGNUP)).toEqual({
      mobile_number: "+1",
      name: "A",
    });
    expect(normaliseFields({ name: "Trip" }, ["title"])).toEqual({ title: "Trip" });
    const own = { mobile_number: "+1", name: "Ada" };
    expect(normaliseFields(own, SIGNUP)).toBe(own);
  });

  it("leaves a body that is not an object to the schema", () => {
    for (const body of [null, 1, "x", [1]]) expect(normaliseFields(body, SIGNUP)).toBe(body);
  });

  it("refuses a field with its alias, two aliases of one field, and unknown fields", () => {
    const refused = (body: object, fields = SIGNUP) => {
      try {
        normaliseFields(body, fields);
      } catch (err) {
        expect(err).toBeInstanceOf(ValidationError);
        return (err as ValidationError).details;
      }
      throw new Error("not refused");
    };
    expect(refused({ mobile_number: "+1", mobile: "+1" })).toEqual([
      {
        path: "mobile",
        message: 'Send "mobile_number" once: "mobile" and "mobile_number" name the same field.',
        location: "json",
      },
    ]);
    expect(refused({ code: "1", otp_code: "1" }, ["otp"])).toHaveLength(1);
    expect(refused({ mobil: "+1", tier: "pro" })).toEqual([
      {
        path: "mobil",
        message: 'Unknown field "mobil"; did you mean "mobile_number"?',
        location: "json",
      },
      {
        path: "tier",
        message: 'Unknown field "tier"; accepted fields: mobile_number, name, email, password.',
        location: "json",
      },
    ]);
    expect(refused(JSON.parse('{"__proto__": {"tier": "pro"}}'))).toHaveLength(1);
  });
});
