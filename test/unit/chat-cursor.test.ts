import { describe, expect, it } from "vitest";
import { ValidationError } from "../../src/errors/index.ts";
import { decodeChatroomCursor, encodeChatroomCursor } from "../../src/services/chat/chatrooms.ts";

const id = "01936f4e-1c2d-7b3a-9f00-123456789abc";

describe("chatroom list cursor", () => {
  it("round-trips the position (activity time and id)", () => {
    const at = new Date("2026-11-23T10:11:12.345Z");
    const cursor = encodeChatroomCursor({ activityAt: at, id });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeChatroomCursor(cursor)).toEqual({ activityAt: at, id });
  });

  it.each([
    ["not base64url", "a+b/c="],
    ["garbage", "Zm9vYmFy"],
    ["a bad date", Buffer.from(`yesterday|${id}`).toString("base64url")],
    ["a bad id", Buffer.from("2026-11-23T10:11:12.345Z|../../etc").toString("base64url")],
    ["extra fields", Buffer.from(`2026-11-23T10:11:12.345Z|${id}|x`).toString("base64url")],
    ["year 0", Buffer.from(`0000-01-01T00:00:00.000Z|${id}`).toString("base64url")],
    ["a six-digit year", Buffer.from(`+010000-01-01T00:00:00.000Z|${id}`).toString("base64url")],
    ["a negative year", Buffer.from(`-000001-01-01T00:00:00.000Z|${id}`).toString("base64url")],
  ])("rejects %s with a validation error", (_, cursor) => {
    expect(() => decodeChatroomCursor(cursor)).toThrow(ValidationError);
  });
});
