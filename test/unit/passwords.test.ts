import { pbkdf2Sync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  constantTimeEqual,
  hashPassword,
  needsRehash,
  PBKDF2_ITERATIONS,
  PBKDF2_MAX_ITERATIONS,
  passwordProblem,
  SALT_BYTES,
  verifyAgainstDummy,
  verifyPassword,
} from "../../src/lib/passwords.ts";

const FORMAT = /^pbkdf2-sha256\$(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$/;
const b64 = (s: string) => Buffer.from(s, "base64");

describe("hashing parameters", () => {
  it("uses exactly 100,000 PBKDF2 iterations: the production Workers cap (local workerd has none)", () => {
    expect(PBKDF2_ITERATIONS).toBe(100_000);
    expect(PBKDF2_ITERATIONS).toBeLessThanOrEqual(100_000);
    expect(PBKDF2_MAX_ITERATIONS).toBe(100_000);
  });

  it("stores scheme, iterations, a random 16-byte salt and a 32-byte hash", async () => {
    const stored = await hashPassword("correct horse battery");
    const m = FORMAT.exec(stored);
    expect(m).not.toBeNull();
    expect(Number(m?.[1])).toBe(100_000);
    expect(SALT_BYTES).toBe(16);
    expect(b64(m?.[2] ?? "")).toHaveLength(16);
    expect(b64(m?.[3] ?? "")).toHaveLength(32);
  });

  it("derives exactly what an independent PBKDF2-HMAC-SHA256 implementation derives", async () => {
    const stored = await hashPassword("known answer check");
    const [, , salt, hash] = stored.split("$");
    const expected = pbkdf2Sync("known answer check", b64(salt ?? ""), 100_000, 32, "sha256");
    expect(b64(hash ?? "").equals(expected)).toBe(true);
  });

  it("salts: the same password twice gives two different hashes", async () => {
    const [a, b] = await Promise.all([
      hashPassword("same password"),
      hashPassword("same password"),
    ]);
    expect(a).not.toBe(b);
  });
});

describe("verifyPassword", () => {
  it("accepts the right password and rejects a wrong one", async () => {
    const stored = await hashPassword("correct horse battery");
    expect(await verifyPassword("correct horse battery", stored)).toBe(true);
    expect(await verifyPassword("correct horse batterY", stored)).toBe(false);
  });

  it("never truncates: an 80-character password does not match its first 72 characters", async () => {
    const password = "a1".repeat(40);
    const stored = await hashPassword(password);
    expect(await verifyPassword(password.slice(0, 72), stored)).toBe(false);
    expect(await verifyPassword(`${password}x`, stored)).toBe(false);
    expect(await verifyPassword(password, stored)).toBe(true);
  });

  it("does not fold case", async () => {
    const stored = await hashPassword("MixedCase-password");
    expect(await verifyPassword("mixedcase-password", stored)).toBe(false);
    expect(await verifyPassword("MIXEDCASE-PASSWORD", stored)).toBe(false);
  });

  it("applies NFKC: an NFD spelling matches the NFC password it was set with", async () => {
    const nfc = "pässwörd-ü😀-long-enough".normalize("NFC");
    const nfd = nfc.normalize("NFD");
    expect(nfd).not.toBe(nfc);
    const stored = await hashPassword(nfc);
    expect(await verifyPassword(nfd, stored)).toBe(true);
  });

  it("answers false (never throws) for a tampered or unreadable stored value", async () => {
    const stored = await hashPassword("correct horse battery");
    const [scheme, iter, salt, hash] = stored.split("$") as [string, string, string, string];
    const flipped = `${hash.slice(0, -2)}${hash.endsWith("AA") ? "BB" : "AA"}`;
    for (const bad of [
      `${scheme}$${iter}$${salt}$${flipped}`,
      `${scheme}$99999$${salt}$${hash}`,
      `${scheme}$200000$${salt}$${hash}`, // above the production cap: never derivable there
      `bcrypt$${iter}$${salt}$${hash}`,
      `${scheme}$${iter}$${salt}`,
      `${scheme}$${iter}$${salt}$${hash}$extra`,
      `${scheme}$0100000$${salt}$${hash}`,
      "",
    ]) {
      expect(await verifyPassword("correct horse battery", bad)).toBe(false);
    }
  });

  it("the dummy check for unknown users always answers false", async () => {
    expect(await verifyAgainstDummy("anything at all")).toBe(false);
  });

  it("needsRehash is false for today's parameters and true for weaker ones", async () => {
    const stored = await hashPassword("correct horse battery");
    expect(needsRehash(stored)).toBe(false);
    const [scheme, , salt] = stored.split("$");
    const weaker = Buffer.from(pbkdf2Sync("x", b64(salt ?? ""), 10_000, 32, "sha256")).toString(
      "base64",
    );
    expect(needsRehash(`${scheme}$10000$${salt}$${weaker.replace(/=+$/, "")}`)).toBe(true);
  });
});

describe("passwordProblem", () => {
  it.each([
    ["7 characters", "a".repeat(7), true],
    ["8 characters", "a".repeat(8), false],
    ["64 characters", "a".repeat(64), false],
    ["65 characters", "a".repeat(65), false],
    ["128 characters", "a".repeat(128), false],
    ["129 characters", "a".repeat(129), true],
    ["8 emoji (16 UTF-16 units)", "😀".repeat(8), false],
    ["128 emoji (256 UTF-16 units)", "😀".repeat(128), false],
    ["lone surrogate", "abcdefgh\ud800", true],
    ["all spaces", " ".repeat(10), false],
  ])("%s → rejected: %s", (_name, password, rejected) => {
    expect(passwordProblem(password) !== null).toBe(rejected);
  });

  it("measures length after NFKC (a ligature counts as the letters it stands for)", () => {
    // "ﬃ" (U+FB03) is one code point that NFKC turns into "ffi".
    expect(passwordProblem("ab\ufb03def")).toBeNull();
  });
});

describe("constantTimeEqual", () => {
  it("compares bytes and lengths", () => {
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3]))).toBe(true);
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4]))).toBe(false);
    expect(constantTimeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2]))).toBe(false);
    expect(constantTimeEqual(new Uint8Array([]), new Uint8Array([0]))).toBe(false);
  });
});
