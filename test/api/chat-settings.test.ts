import { describe, expect, it } from "vitest";
import { call, control, workerUrl } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { createProSession, marker, newChatroom, sendPrompt, settledReply } from "./chat-support.ts";

interface RecordedCall {
  model: string;
  method: string;
  generationConfig: Record<string, unknown> | null;
  systemInstruction: string | null;
  tools: unknown[] | null;
  status: number;
}

async function recordedCalls(match: string): Promise<RecordedCall[]> {
  const res = await control(`gemini/calls?match=${encodeURIComponent(match)}`);
  return res.body.calls as RecordedCall[];
}

async function createRoom(session: TestSession, body: Record<string, unknown>) {
  return call("POST", "/chatroom", { token: session.token, body });
}

describe("GET /models", () => {
  it("serves the one catalogue, cacheable for an hour, to a signed-in caller", async () => {
    const session = await createSession();
    const res = await call("GET", "/models", { token: session.token });
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("public, max-age=3600");
    const ids = res.body.models.map((m: { id: string }) => m.id);
    expect(ids).toContain("gemini-3.8-flash");
    const pro = res.body.models.find((m: { id: string }) => m.id === "gemini-3.1-pro-preview");
    expect(pro).toEqual({
      id: "gemini-3.1-pro-preview",
      display_name: expect.any(String),
      tiers: ["pro"],
      input_token_limit: expect.any(Number),
      output_token_limit: expect.any(Number),
      supports: { thinking: true, search: true },
    });
    expect((await call("GET", "/models")).status).toBe(401);
  });
});

describe("chatroom title, description and settings", () => {
  it("defaults the title to an auto 'New chat'; a given title is the user's", async () => {
    const session = await createSession();
    const untitled = await createRoom(session, {});
    expect(untitled.status).toBe(201);
    expect(untitled.body.chatroom).toMatchObject({
      title: "New chat",
      title_source: "auto",
      description: null,
      settings: {},
    });
    const titled = await createRoom(session, { title: "Trip", description: "June trip" });
    expect(titled.status).toBe(201);
    expect(titled.body.chatroom).toMatchObject({
      title: "Trip",
      title_source: "user",
      description: "June trip",
    });
    const renamed = await call("PATCH", `/chatroom/${untitled.body.chatroom.id}`, {
      token: session.token,
      body: { title: "Mine now" },
    });
    expect(renamed.status).toBe(200);
    expect(renamed.body.chatroom).toMatchObject({ title: "Mine now", title_source: "user" });
  });

  it("keeps descriptions to 500 characters and lets PATCH change or clear one", async () => {
    const session = await createSession();
    expect((await createRoom(session, { description: "x".repeat(501) })).status).toBe(400);
    const room = await newChatroom(session);
    const set = await call("PATCH", `/chatroom/${room.id}`, {
      token: session.token,
      body: { description: "d".repeat(500) },
    });
    expect(set.status).toBe(200);
    expect(set.body.chatroom.description).toHaveLength(500);
    expect(set.body.chatroom.title).toBe(room.title);
    const cleared = await call("PATCH", `/chatroom/${room.id}`, {
      token: session.token,
      body: { description: null },
    });
    expect(cleared.body.chatroom.description).toBeNull();
    const detail = await call("GET", `/chatroom/${room.id}`, { token: session.token });
    expect(detail.body.chatroom.description).toBeNull();
    const empty = await call("PATCH", `/chatroom/${room.id}`, { token: session.token, body: {} });
    expect(empty.status).toBe(400);
  });

  it("refuses a model the plan does not include (422) and out-of-range settings (400)", async () => {
    const basic = await createSession();
    const notInPlan = await createRoom(basic, { settings: { model: "gemini-3.1-pro-preview" } });
    expect(notInPlan.status).toBe(422);
    expect(notInPlan.body.error.code).toBe("model_not_allowed");
    const unknown = await createRoom(basic, { settings: { model: "gemini-2.5-pro" } });
    expect(unknown.status).toBe(422);
    expect(unknown.body.error.code).toBe("model_not_allowed");
    for (const settings of [
      { system_instruction: "é".repeat(4097) }, // 8194 bytes
      { temperature: 2.01 },
      { temperature: -0.1 },
      { max_output_tokens: 0 },
      { max_output_tokens: 1_000_000 },
      { google_search: true },
      { unknown_field: 1 },
    ]) {
      const res = await createRoom(basic, { settings });
      expect(res.status, JSON.stringify(settings)).toBe(400);
      expect(res.body.error.code).toBe("invalid_request");
    }
    const fits = await createRoom(basic, { settings: { system_instruction: "é".repeat(4096) } });
    expect(fits.status).toBe(201);

    // PATCH checks the same rules, and a refused PATCH changes nothing.
    const room = await newChatroom(basic);
    const patch = await call("PATCH", `/chatroom/${room.id}`, {
      token: basic.token,
      body: { title: "never", settings: { model: "gemini-3.5-flash" } },
    });
    expect(patch.status).toBe(422);
    const detail = await call("GET", `/chatroom/${room.id}`, { token: basic.token });
    expect(detail.body.chatroom.title).toBe(room.title);

    const pro = await createProSession();
    const allowed = await createRoom(pro, {
      settings: { model: "gemini-3.1-pro-preview", google_search: true },
    });
    expect(allowed.status).toBe(201);
    expect(allowed.body.chatroom.settings).toEqual({
      model: "gemini-3.1-pro-preview",
      google_search: true,
    });
  });

  it("merges PATCHed settings; null puts a field back to the default", async () => {
    const pro = await createProSession();
    const created = await createRoom(pro, {
      settings: { model: "gemini-3.5-flash", temperature: 0.5 },
    });
    const id = created.body.chatroom.id;
    const patched = await call("PATCH", `/chatroom/${id}`, {
      token: pro.token,
      body: { settings: { temperature: null, system_instruction: "Be brief." } },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.chatroom.settings).toEqual({
      model: "gemini-3.5-flash",
      system_instruction: "Be brief.",
    });
    expect(patched.body.chatroom.title_source).toBe("auto");
  });

  it("puts the chatroom's settings into every Gemini request, queued and streamed", async () => {
    const pro = await createProSession();
    const sys = marker("sys");
    const created = await createRoom(pro, {
      title: "settings",
      settings: {
        model: "gemini-3.5-flash",
        system_instruction: `You are ${sys}.`,
        temperature: 0.3,
        max_output_tokens: 700,
        google_search: true,
      },
    });
    expect(created.status).toBe(201);
    const roomId = created.body.chatroom.id;

    const queued = await sendPrompt(pro, roomId, marker("queued"));
    expect(queued.status).toBe(202);
    expect((await settledReply(pro, roomId, queued.body.reply.id)).status).toBe("complete");
    // Search was on: the sources Gemini used are saved on the reply.
    const queuedReply = await call("GET", `/chatroom/${roomId}/messages/${queued.body.reply.id}`, {
      token: pro.token,
    });
    expect(queuedReply.body.message.grounding).toEqual({
      queries: [expect.stringContaining("mk-queued")],
      sources: [{ uri: expect.stringMatching(/^https:\/\//), title: "example.com" }],
    });

    const streamed = await fetch(`${workerUrl}/chatroom/${roomId}/message`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${pro.token}`,
        "content-type": "application/json",
        accept: "text/event-stream",
      },
      body: JSON.stringify({ content: marker("streamed") }),
    });
    expect(streamed.status).toBe(200);
    const sse = await streamed.text();
    expect(sse).toContain("event: done");
    const done = sse.split("\n\n").find((b) => b.includes("event: done")) ?? "";
    const doneReply = JSON.parse(done.slice(done.indexOf("data: ") + 6)).reply;
    expect(doneReply.grounding).toEqual({
      queries: [expect.stringContaining("mk-streamed")],
      sources: [{ uri: expect.stringMatching(/^https:\/\//), title: "example.com" }],
    });

    const calls = await recordedCalls(sys);
    expect(calls.map((c) => c.method).sort()).toEqual(["generateContent", "streamGenerateContent"]);
    for (const c of calls) {
      expect(c.status).toBe(200);
      expect(c.model).toBe("gemini-3.5-flash");
      expect(c.systemInstruction).toBe(`You are ${sys}.`);
      expect(c.generationConfig).toMatchObject({ temperature: 0.3, maxOutputTokens: 700 });
      expect(c.tools).toEqual([{ googleSearch: {} }]);
    }
  });

  it("falls back to the default model and no search when the plan no longer includes them", async () => {
    const pro = await createProSession();
    const sys = marker("downgraded");
    const created = await createRoom(pro, {
      settings: { model: "gemini-3.1-pro-preview", system_instruction: sys, google_search: true },
    });
    const roomId = created.body.chatroom.id;
    const { sql } = await import("./chat-support.ts");
    await sql().query("update users set tier = 'basic' where id = $1", [pro.user.id]);
    const queued = await sendPrompt(pro, roomId, marker("q"));
    expect(queued.status).toBe(202);
    await settledReply(pro, roomId, queued.body.reply.id);
    const [c] = await recordedCalls(sys);
    const saved = await call("GET", `/chatroom/${roomId}/messages/${queued.body.reply.id}`, {
      token: pro.token,
    });
    expect(saved.body.message.grounding).toBeNull();
    expect(c?.model).not.toBe("gemini-3.1-pro-preview");
    expect(c?.tools).toBeNull();
    expect(c?.systemInstruction).toBe(sys);
  });
});
