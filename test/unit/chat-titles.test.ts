import { describe, expect, it } from "vitest";
import { AUTO_TITLE_MAX_CHARS, cleanTitle, wantsAutoTitle } from "../../src/services/chat/titles";

describe("cleanTitle", () => {
  it("keeps the first non-empty line, unquoted, without trailing punctuation", () => {
    expect(cleanTitle('\n  "Naming a new cat."  \nMore text')).toBe("Naming a new cat");
    expect(cleanTitle("**Title:** Trip ideas for June")).toBe("Trip ideas for June");
    expect(cleanTitle("# Cats   and\tdogs")).toBe("Cats and dogs");
  });

  it("answers null for an answer with no usable text", () => {
    expect(cleanTitle("")).toBeNull();
    expect(cleanTitle(' \n "" \n')).toBeNull();
  });

  it("cuts a long suggestion at a word within the bound", () => {
    const long = "word ".repeat(40);
    const title = cleanTitle(long) as string;
    expect(title.length).toBeLessThanOrEqual(AUTO_TITLE_MAX_CHARS);
    expect(title.endsWith("word")).toBe(true);
  });

  it("drops NUL and lone surrogates the API would refuse, keeping real pairs", () => {
    expect(cleanTitle("Cat\0 \uD800names 🐱")).toBe("Cat names 🐱");
  });
});

describe("wantsAutoTitle", () => {
  const room = { titleSource: "auto" as const, title: "New chat", messageCount: 2 };
  it("asks for the first exchange of an untitled chatroom only", () => {
    expect(wantsAutoTitle(room)).toBe(true);
    expect(wantsAutoTitle({ ...room, titleSource: "user" })).toBe(false);
    expect(wantsAutoTitle({ ...room, title: "Cat names" })).toBe(false);
    expect(wantsAutoTitle({ ...room, messageCount: 6 })).toBe(false);
    expect(wantsAutoTitle(undefined)).toBe(false);
  });
});
