// Subscriptions: checkout, status, portal, cancel.
import type { Harness, Session } from "../harness.ts";
import { BILLING_PER_USER, type Case, expect, repeat, same } from "./case.ts";

export function billingCases({ call, session, paidUser }: Harness): Case[] {
  return [
    {
      label: "POST /subscribe/pro",
      async prepare(n) {
        // A user may open 10 checkouts per 10 minutes (BILLING_LIMITS): a fresh user every 10.
        const users: Session[] = [];
        for (let i = 0; i < Math.ceil(n / BILLING_PER_USER); i++) users.push(await session());
        return repeat(n, (i) => {
          const s = users[Math.floor(i / BILLING_PER_USER)] as Session;
          return () => expect(200, "subscribe")(call("POST", "/subscribe/pro", { token: s.token }));
        });
      },
    },
    {
      label: "GET /subscription/status",
      async prepare(n) {
        const s = await session();
        return same(n, () =>
          expect(200, "status")(call("GET", "/subscription/status", { token: s.token })),
        );
      },
    },
    {
      label: "POST /subscription/portal",
      samples: 10,
      async prepare(n) {
        const users: Session[] = [];
        for (let i = 0; i < Math.ceil(n / BILLING_PER_USER); i++) users.push(await paidUser());
        return repeat(n, (i) => {
          const u = users[Math.floor(i / BILLING_PER_USER)] as Session;
          return () =>
            expect(200, "portal")(call("POST", "/subscription/portal", { token: u.token }));
        });
      },
    },
    {
      label: "POST /subscription/cancel",
      samples: 10,
      async prepare(n) {
        const users = [];
        for (let i = 0; i < n; i++) users.push(await paidUser());
        return users.map(
          (u) => () =>
            expect(200, "cancel", (r) => (r.body.cancel_at_period_end ? null : r.text))(
              call("POST", "/subscription/cancel", { token: u.token }),
            ),
        );
      },
    },
  ];
}
