// The account and the model catalogue.
import type { Harness } from "../harness.ts";
import { type Case, expect, repeat, same } from "./case.ts";

export function usersCases({ call, session }: Harness): Case[] {
  return [
    {
      label: "GET /user/me",
      target: 1,
      async prepare(n) {
        const s = await session();
        return same(n, () => expect(200, "me")(call("GET", "/user/me", { token: s.token })));
      },
    },
    {
      label: "PATCH /user/me",
      async prepare(n) {
        const s = await session();
        return repeat(
          n,
          (i) => () =>
            expect(
              200,
              "patch me",
            )(call("PATCH", "/user/me", { token: s.token, body: { name: `bench ${i}` } })),
        );
      },
    },
    {
      label: "GET /models",
      target: 1,
      async prepare(n) {
        const s = await session();
        return same(n, () => expect(200, "models")(call("GET", "/models", { token: s.token })));
      },
    },
  ];
}
