// Chatrooms: create, list (cache hit and miss), read, rename, delete.
import type { Reply } from "../../support/http.ts";
import { type Harness, must } from "../harness.ts";
import { type Case, expect, repeat, same } from "./case.ts";

export function chatroomsCases({ call, session, chatroom, exchange }: Harness): Case[] {
  return [
    {
      label: "POST /chatroom",
      target: 1,
      async prepare(n) {
        const s = await session();
        return repeat(
          n,
          (i) => () =>
            expect(
              201,
              "create room",
            )(call("POST", "/chatroom", { token: s.token, body: { title: `bench ${i}` } })),
        );
      },
    },
    {
      label: "GET /chatroom (cache hit)",
      target: 1,
      async prepare(n) {
        const s = await session();
        await chatroom(s);
        await chatroom(s);
        must(await call("GET", "/chatroom", { token: s.token }), 200, "prime the cache");
        await new Promise((r) => setTimeout(r, 300)); // the cache write runs under waitUntil
        const hit = (r: Reply) => (r.headers.get("x-cache") === "HIT" ? null : "not a cache hit");
        return same(n, () =>
          expect(200, "list hit", hit)(call("GET", "/chatroom", { token: s.token })),
        );
      },
    },
    {
      label: "GET /chatroom (cache miss)",
      note: "a different page size each time, so every read misses",
      async prepare(n) {
        const s = await session();
        await chatroom(s);
        const miss = (r: Reply) =>
          r.headers.get("x-cache") === "MISS" ? null : "not a cache miss";
        return repeat(
          n,
          (i) => () =>
            expect(
              200,
              "list miss",
              miss,
            )(call("GET", `/chatroom?limit=${(i % 100) + 1}`, { token: s.token })),
        );
      },
    },
    {
      label: "GET /chatroom/:id",
      target: 1,
      async prepare(n) {
        const s = await session({ pro: true });
        const room = await chatroom(s);
        await exchange(s, room);
        return same(n, () =>
          expect(200, "room")(call("GET", `/chatroom/${room}`, { token: s.token })),
        );
      },
    },
    {
      label: "PATCH /chatroom/:id",
      target: 2,
      async prepare(n) {
        const s = await session();
        const room = await chatroom(s);
        return repeat(
          n,
          (i) => () =>
            expect(
              200,
              "rename",
            )(
              call("PATCH", `/chatroom/${room}`, {
                token: s.token,
                body: { title: `renamed ${i}` },
              }),
            ),
        );
      },
    },
    {
      label: "DELETE /chatroom/:id",
      target: 2,
      async prepare(n) {
        const s = await session();
        const rooms: string[] = [];
        for (let i = 0; i < n; i++) rooms.push(await chatroom(s));
        return rooms.map(
          (room) => () =>
            expect(204, "delete")(call("DELETE", `/chatroom/${room}`, { token: s.token })),
        );
      },
    },
  ];
}
