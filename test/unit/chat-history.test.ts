import { describe, expect, it } from "vitest";
import { buildGenerateContentBody } from "../../src/lib/gemini.ts";
import { historyTurns } from "../../src/services/chat/history.ts";

const user = (content: string) => ({ role: "user" as const, content });
const model = (content: string) => ({ role: "model" as const, content });

describe("historyTurns", () => {
  it("returns the conversation oldest first, the newest prompt last", () => {
    expect(historyTurns([user("q2"), model("a1"), user("q1")], 1000)).toEqual([
      { role: "user", text: "q1" },
      { role: "model", text: "a1" },
      { role: "user", text: "q2" },
    ]);
  });

  it("stops at the character budget, keeping the newest messages", () => {
    const turns = historyTurns(
      [user("x".repeat(10)), model("y".repeat(10)), user("z".repeat(10))],
      25,
    );
    expect(turns.map((t) => t.text)).toEqual(["x".repeat(10)]);
  });

  it("always keeps the newest prompt even when it alone exceeds the budget", () => {
    expect(historyTurns([user("x".repeat(50)), model("a")], 10)).toEqual([
      { role: "user", text: "x".repeat(50) },
    ]);
  });

  it("drops model turns at the start so the conversation opens with the user", () => {
    expect(historyTurns([user("q2"), model("a1")], 1000)).toEqual([{ role: "user", text: "q2" }]);
  });
});

describe("buildGenerateContentBody", () => {
  it("merges consecutive turns of one role (a prompt whose reply failed) and adds the system prompt", () => {
    const body = buildGenerateContentBody(
      [
        { role: "user", text: "first" },
        { role: "user", text: "second" },
        { role: "model", text: "answer" },
      ],
      "Be brief.",
    );
    expect(body).toEqual({
      contents: [
        { role: "user", parts: [{ text: "first" }, { text: "second" }] },
        { role: "model", parts: [{ text: "answer" }] },
      ],
      systemInstruction: { parts: [{ text: "Be brief." }] },
    });
  });

  it("omits the system instruction when none is configured", () => {
    expect(buildGenerateContentBody([{ role: "user", text: "q" }], "")).toEqual({
      contents: [{ role: "user", parts: [{ text: "q" }] }],
    });
  });
});
