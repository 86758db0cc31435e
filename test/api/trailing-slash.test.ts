// Issue 16 item 4: clients written against the same spec send `/chatroom/` and `/user/me/`; a
// trailing slash reaches the same route, and a 405 never names a method that would then 404.
import { beforeAll, describe, expect, it } from "vitest";
import { call } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";

let me: TestSession;
let roomId: string;
let paths: { template: string; methods: Set<string> }[];

beforeAll(async () => {
  me = await createSession({ name: "Slash" });
  const room = await call("POST", "/chatroom", { token: me.token, body: { title: "Slashes" } });
  expect(room.status).toBe(201);
  roomId = room.body.chatroom.id;
  const doc = await call("GET", "/openapi.json");
  paths = Object.entries(doc.body.paths as Record<string, Record<string, unknown>>).map(
    ([template, item]) => ({
      template,
      methods: new Set(Object.keys(item).map((m) => m.toUpperCase())),
    }),
  );
});

const concrete = (template: string) =>
  template.replace("{id}", roomId).replace(/\{[a-z_]+\}/g, "00000000-0000-7000-8000-000000000000");

describe("a trailing slash reaches the same route", () => {
  it("answers GET and HEAD on public and authenticated paths as without the slash", async () => {
    for (const path of [
      "/health",
      "/user/me",
      "/chatroom",
      `/chatroom/${roomId}`,
      "/openapi.json",
    ]) {
      for (const method of ["GET", "HEAD"]) {
        const bare = await call(method, path, { token: me.token });
        const slashed = await call(method, `${path}/`, { token: me.token });
        expect(bare.status, `${method} ${path}`).toBe(200);
        expect(slashed.status, `${method} ${path}/`).toBe(200);
      }
    }
    const list = await call("GET", "/chatroom/", { token: me.token });
    expect(list.body.chatrooms.map((r: { id: string }) => r.id)).toContain(roomId);
    const profile = await call("GET", "/user/me/", { token: me.token });
    expect(profile.body.user.id).toBe(me.user.id);
  });

  it("takes a POST with a trailing slash without a redirect (the body is not lost)", async () => {
    const res = await call("POST", "/chatroom/", { token: me.token, body: { title: "Slashed" } });
    expect(res.status).toBe(201);
    expect(res.body.chatroom.title).toBe("Slashed");
  });

  it("still refuses an unauthenticated slashed path with 401, not a 404", async () => {
    const res = await call("GET", "/chatroom/");
    expect(res.status).toBe(401);
  });

  it("does not strip more than one slash or invent routes", async () => {
    expect((await call("GET", "/health//")).status).toBe(404);
    expect((await call("GET", "/no-such-route/")).status).toBe(404);
  });
});

describe("a 405 never points at a URL that would 404", () => {
  it("names only methods that the same URL answers (with and without a trailing slash)", async () => {
    const failures: string[] = [];
    for (const { template, methods } of paths) {
      for (const url of [concrete(template), `${concrete(template)}/`]) {
        for (const method of ["GET", "POST", "PUT", "PATCH", "DELETE"]) {
          if (methods.has(method)) continue;
          const refused = await call(method, url);
          if (refused.status !== 405) {
            failures.push(`${method} ${url}: ${refused.status}, expected 405`);
            continue;
          }
          const allow = (refused.headers.get("allow") ?? "").split(/,\s*/).filter(Boolean);
          if (allow.length === 0) failures.push(`${method} ${url}: 405 without Allow`);
          for (const allowed of allow) {
            // No token and an empty JSON body: nothing is changed, but the route must be found.
            const body = ["POST", "PUT", "PATCH"].includes(allowed) ? {} : undefined;
            const res = await call(allowed, url, { body });
            if (res.status === 404 && res.body?.error?.code === "not_found") {
              failures.push(`${method} ${url} allows ${allowed}, which answers 404`);
            }
            if (res.status === 405) failures.push(`${method} ${url} allows ${allowed}: 405`);
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });
});
