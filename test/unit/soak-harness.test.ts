import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { chatroomCopies, promptCopies } from "../../scripts/soak/audit.ts";
import {
  clientFor,
  newHttpRecord,
  retryingFetch,
  type WriteSends,
} from "../../scripts/soak/client.ts";

let server: Server | undefined;

afterEach(async () => {
  await new Promise((r) => server?.close(r) ?? r(undefined));
  server = undefined;
});

/**
 * A stand-in Worker that answers each request with the next of `answers` (then the last), and
 * keeps each request's headers.
 */
async function serve(answers: { status: number; body: unknown; headers?: object }[]) {
  let i = 0;
  const requests: { method?: string; url?: string; headers: Record<string, unknown> }[] = [];
  server = createServer((req, res) => {
    requests.push({ method: req.method, url: req.url, headers: { ...req.headers } });
    req.resume();
    const a = answers[Math.min(i++, answers.length - 1)] as (typeof answers)[number];
    res.writeHead(a.status, { "content-type": "application/json", ...a.headers });
    res.end(JSON.stringify(a.body));
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    sent: () => i,
    requests,
  };
}

const inProgress = {
  status: 409,
  body: { error: { code: "idempotency_in_progress", message: "retry shortly" } },
  headers: { "retry-after": "1" },
};
const accepted = { status: 202, body: { reply: { id: "r1" } } };
const unavailable = { status: 503, body: { error: { code: "dependency_unavailable" } } };
const roomCreated = { status: 201, body: { chatroom: { id: "c1" } } };

function postPrompt(f: typeof fetch, url: string, content: string, key?: string) {
  return f(`${url}/chatroom/c1/message`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
    body: JSON.stringify({ content }),
  });
}

describe("soak client", () => {
  it("resends a 409 idempotency_in_progress until the write settles, and counts the resends", async () => {
    const stub = await serve([inProgress, inProgress, accepted]);
    const record = newHttpRecord();
    const res = await postPrompt(retryingFetch(record), stub.url, "t u1 p0: hi", "k1");
    expect(res.status).toBe(202);
    expect(stub.sent()).toBe(3);
    expect(record.resentInProgress).toBe(2);
    expect(record.inProgressOutlasted).toEqual([]);
  });

  it("does not resend any other 409", async () => {
    const stub = await serve([{ status: 409, body: { error: { code: "reply_in_progress" } } }]);
    const record = newHttpRecord();
    const res = await postPrompt(retryingFetch(record), stub.url, "t u1 p0: hi");
    expect(res.status).toBe(409);
    expect(stub.sent()).toBe(1);
    expect(record.resentInProgress).toBe(0);
  });

  it("records each prompt's key and its resends after a 503 (a keyless resend may be stored again)", async () => {
    const stub = await serve([unavailable, unavailable, accepted, accepted]);
    const record = newHttpRecord();
    const f = retryingFetch(record);
    expect((await postPrompt(f, stub.url, "t u1 p0: hi")).status).toBe(202);
    expect((await postPrompt(f, stub.url, "t u1 p1: hi", "k2")).status).toBe(202);
    expect(record.prompts.get("t u1 p0: hi")).toEqual({ keyed: false, resentAfter503: 2 });
    expect(record.prompts.get("t u1 p1: hi")).toEqual({ keyed: true, resentAfter503: 0 });
  });

  it("records each chatroom create by its title: its key, and its resends after a 503", async () => {
    const stub = await serve([unavailable, roomCreated, unavailable, unavailable, roomCreated]);
    const record = newHttpRecord();
    const f = retryingFetch(record);
    const create = (title: string, key?: string) =>
      f(`${stub.url}/chatroom`, {
        method: "POST",
        headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
        body: JSON.stringify({ title }),
      });
    expect((await create("t u1 r0")).status).toBe(201);
    expect((await create("t u1 r1", "k3")).status).toBe(201);
    expect(record.chatrooms.get("t u1 r0")).toEqual({ keyed: false, resentAfter503: 1 });
    expect(record.chatrooms.get("t u1 r1")).toEqual({ keyed: true, resentAfter503: 2 });
    expect(record.prompts.size).toBe(0);
  });

  it("sends a create's key through the typed client's headers, beside its token, and records it keyed", async () => {
    const stub = await serve([unavailable, roomCreated]);
    const record = newHttpRecord();
    const api = clientFor(stub.url, record, "10.1.2.3", "the-token");
    const res = await api.chatroom.$post(
      { json: { title: "t u2 r0" } },
      { headers: { "idempotency-key": "k4" } },
    );
    expect(res.status).toBe(201);
    // The resend after the 503 is the same request: the same key, the same token.
    expect(stub.requests).toHaveLength(2);
    for (const r of stub.requests) {
      expect(r.method).toBe("POST");
      expect(r.url).toBe("/chatroom");
      expect(r.headers["idempotency-key"]).toBe("k4");
      expect(r.headers.authorization).toBe("Bearer the-token");
      expect(r.headers["cf-connecting-ip"]).toBe("10.1.2.3");
    }
    expect(record.chatrooms.get("t u2 r0")).toEqual({ keyed: true, resentAfter503: 1 });
  });
});

describe("soak audit: prompts stored more than once", () => {
  const sent = new Map<string, WriteSends>([
    ["keyed resent", { keyed: true, resentAfter503: 1 }],
    ["keyless resent once", { keyed: false, resentAfter503: 1 }],
    ["keyless sent once", { keyed: false, resentAfter503: 0 }],
  ]);

  it("holds a keyed prompt to one copy even when it was resent after a 503", () => {
    const r = promptCopies(["keyed resent", "keyed resent"], sent);
    expect(r.keyedTwice).toEqual([`"keyed resent" ×2`]);
  });

  it("allows a keyless prompt one copy per resend after a 503, and counts it", () => {
    const r = promptCopies(["keyless resent once", "keyless resent once", "keyed resent"], sent);
    expect(r.keyedTwice).toEqual([]);
    expect(r.keylessUnexplained).toEqual([]);
    expect(r.counts).toEqual({
      keyless_prompts_resent_after_503: 1,
      keyed_prompts_resent_after_503: 1,
      keyless_prompts_stored_more_than_once: 1,
      keyless_extra_copies: 1,
    });
  });

  it("flags a keyless prompt with more copies than sends, or never resent", () => {
    const r = promptCopies(
      ["keyless resent once", "keyless resent once", "keyless resent once"].concat([
        "keyless sent once",
        "keyless sent once",
      ]),
      sent,
    );
    expect(r.keylessUnexplained).toEqual([
      `"keyless resent once" ×3 after 1 resend(s)`,
      `"keyless sent once" ×2 after 0 resend(s)`,
    ]);
    expect(r.counts.keyless_prompts_stored_more_than_once).toBe(0);
  });

  it("flags a copy of a prompt the client never sent", () => {
    expect(promptCopies(["ghost", "ghost"], sent).keyedTwice).toEqual([
      `"ghost" ×2 (the client record has no such send)`,
    ]);
  });
});

describe("soak audit: chatrooms stored more than once", () => {
  const sent = new Map<string, WriteSends>([
    ["keyed resent", { keyed: true, resentAfter503: 2 }],
    ["keyed sent once", { keyed: true, resentAfter503: 0 }],
    ["keyless resent once", { keyed: false, resentAfter503: 1 }],
    ["keyless sent once", { keyed: false, resentAfter503: 0 }],
  ]);

  it("holds a keyed create to one room, however often it was resent or repeated", () => {
    const r = chatroomCopies(
      ["keyed resent", "keyed resent", "keyed sent once", "keyed sent once", "keyless sent once"],
      sent,
    );
    expect(r.keyedTwice).toEqual([`"keyed resent" ×2`, `"keyed sent once" ×2`]);
    expect(r.keylessUnexplained).toEqual([]);
  });

  it("allows a keyless create a room per resend after a 503, and counts the extra rooms", () => {
    const r = chatroomCopies(
      ["keyless resent once", "keyless resent once", "keyed resent", "keyless sent once"],
      sent,
    );
    expect(r.keyedTwice).toEqual([]);
    expect(r.keylessUnexplained).toEqual([]);
    expect(r.counts).toEqual({
      keyless_creates_resent_after_503: 1,
      keyed_creates_resent_after_503: 1,
      keyless_creates_stored_more_than_once: 1,
      keyless_extra_rooms: 1,
    });
  });

  it("flags a keyless create with more rooms than sends, and a room no create was sent for", () => {
    const r = chatroomCopies(
      ["keyless resent once", "keyless resent once", "keyless resent once", "ghost", "ghost"],
      sent,
    );
    expect(r.keylessUnexplained).toEqual([`"keyless resent once" ×3 after 1 resend(s)`]);
    expect(r.keyedTwice).toEqual([`"ghost" ×2 (the client record has no such send)`]);
    expect(r.counts.keyless_creates_stored_more_than_once).toBe(0);
  });
});
