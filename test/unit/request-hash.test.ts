// The hash an Idempotency-Key's record holds (requestHashOf), shared by the prompt, regenerate and
// chatroom-create routes. Records live 24 hours across deploys, so the bytes hashed are pinned:
// a repeat sent after a deploy must still match the record its first request wrote.
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { requestHashOf } from "../../src/services/chat/idempotency.ts";

const sha256 = (text: string) => createHash("sha256").update(text).digest("hex");

describe("requestHashOf", () => {
  it("hashes the route, a line break and the body's JSON", async () => {
    expect(await requestHashOf("POST /chatroom/r1/message", { content: "hi" })).toBe(
      sha256('POST /chatroom/r1/message\n{"content":"hi"}'),
    );
  });

  it("hashes a request without a body as the route and a line break", async () => {
    expect(await requestHashOf("POST /chatroom/r1/messages/m1/regenerate")).toBe(
      sha256("POST /chatroom/r1/messages/m1/regenerate\n"),
    );
  });

  it("ignores the order of a body's keys, at every depth, but not their values", async () => {
    const a = await requestHashOf("POST /chatroom", {
      title: "t",
      settings: { temperature: 0.5, model: "m" },
    });
    const b = await requestHashOf("POST /chatroom", {
      settings: { model: "m", temperature: 0.5 },
      title: "t",
    });
    expect(a).toBe(b);
    expect(
      await requestHashOf("POST /chatroom", {
        title: "t",
        settings: { temperature: 0.6, model: "m" },
      }),
    ).not.toBe(a);
  });
});
