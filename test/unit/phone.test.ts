import { describe, expect, it } from "vitest";
import { maskMobileNumber, normalizeMobileNumber } from "../../src/lib/phone.ts";

describe("normalizeMobileNumber", () => {
  it.each([
    ["+15550100000", "+15550100000"],
    ["+1 (555) 010-0000", "+15550100000"],
    ["+1-555-010-0000", "+15550100000"],
    ["  +44 20 7946 0958 ", "+442079460958"],
    ["+91 98765 43210", "+919876543210"],
    ["+49 30 1234567", "+49301234567"],
  ])("normalises %j to %s", (input, expected) => {
    expect(normalizeMobileNumber(input)).toBe(expected);
  });

  it("maps every accepted spelling of one number to the same key", () => {
    const spellings = ["+1 (555) 010-0000", "+15550100000", "+1 555 010 0000", "+1-555-0100000"];
    expect(new Set(spellings.map(normalizeMobileNumber))).toEqual(new Set(["+15550100000"]));
  });

  it.each([
    ["empty", ""],
    ["blank", " "],
    ["plus only", "+"],
    ["too short (7 digits)", "+1555010"],
    ["too long (16 digits)", "+1555010000012345"],
    ["country code starting with 0", "+05550100000"],
    ["no plus", "15550100000"],
    ["00 international prefix", "0015550100000"],
    ["full-width digits", "+１５５５０１０００００"],
    ["full-width plus", "＋15550100000"],
    ["Arabic-Indic digits", "+١٥٥٥٠١٠٠٠٠٠"],
    ["NUL byte", "+15550100000\u0000"],
    ["newline", "+15550100000\n"],
    ["tab", "+1\t5550100000"],
    ["two numbers", "+15550100000,+15550100001"],
    ["letters", "+1555CALLNOW"],
    ["SQL", "' OR 1=1--"],
    ["RTL override", "+1555\u202e0100000"],
    ["zero-width joiner", "+1555\u200d0100000"],
    ["dots", "+1.555.010.0000"],
    ["second plus", "+1+5550100000"],
    ["very long", `+1${"0".repeat(40)}`],
  ])("rejects %s", (_name, input) => {
    expect(normalizeMobileNumber(input)).toBeNull();
  });

  it("drops a parenthesised national trunk prefix: +44 (0)20 and +44 20 are one number", () => {
    const key = normalizeMobileNumber("+44 20 7946 0000");
    expect(key).toBe("+442079460000");
    expect(normalizeMobileNumber("+44 (0)20 7946 0000")).toBe(key);
    expect(normalizeMobileNumber("+44(0)2079460000")).toBe(key);
    expect(normalizeMobileNumber("+44 ( 0 ) 20-7946-0000")).toBe(key);
    // A bare 0 is part of the number in some plans (Italy: +39 06...), so it is kept.
    expect(normalizeMobileNumber("+39 06 1234 5678")).toBe("+390612345678");
    // Only a lone 0 in parentheses is a trunk prefix; other digits in parentheses stay.
    expect(normalizeMobileNumber("+1 (555) 010-0000")).toBe("+15550100000");
  });

  it("accepts exactly 8 and exactly 15 digits", () => {
    expect(normalizeMobileNumber("+12345678")).toBe("+12345678");
    expect(normalizeMobileNumber("+123456789012345")).toBe("+123456789012345");
  });
});

describe("maskMobileNumber", () => {
  it("keeps only the prefix and the last two digits", () => {
    expect(maskMobileNumber("+15550100042")).toBe("+15*******42");
  });
});
