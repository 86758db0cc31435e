// The floor and authentication alone: no vendor I/O, or one health check.
import type { Harness } from "../harness.ts";
import { type Case, expect, same } from "./case.ts";

export function systemCases({ call, session }: Harness): Case[] {
  return [
    {
      label: "GET /openapi.json",
      note: "no vendor I/O at all: the floor",
      prepare: (n) => same(n, () => expect(200, "openapi")(call("GET", "/openapi.json"))),
    },
    {
      label: "authentication (valid token, GET /chatroom/{malformed id})",
      target: 0,
      note: "requireAuth verifies the JWT, then the handler answers 404 before any I/O",
      async prepare(n) {
        const s = await session();
        return same(n, () =>
          expect(404, "auth")(call("GET", "/chatroom/not-an-id", { token: s.token })),
        );
      },
    },
    {
      label: "authentication refused (bad token, GET /user/me)",
      target: 0,
      note: "401 from requireAuth",
      prepare: (n) =>
        same(n, () => expect(401, "auth refused")(call("GET", "/user/me", { token: "a.b.c" }))),
    },
    {
      label: "GET /health",
      note: "database and Redis checked concurrently",
      prepare: (n) => same(n, () => expect(200, "health")(call("GET", "/health"))),
    },
  ];
}
