// Switches the GLOBAL database fault, so it lives under faults/ and runs alone.
// change-password takes the password budget in its first round, beside the session check and
// the user read (docs/adr/0008-credentials.md, item 10). When the database cannot answer, no
// guess is evaluated: the budget must go back, or an outage would lock the owner out of the
// password attempts it never made.
import { afterEach, describe, expect, it } from "vitest";
import { call, control, withinOneWindow } from "../../support/api.ts";
import { createSession, uniqueClientIp } from "../../support/session.ts";

const PASSWORD = "correct horse battery";

const database = (mode: "down" | "none") => control("neon/fault", { mode });

afterEach(async () => {
  await database("none");
});

describe("change-password during a database outage", () => {
  it("answers 503 without spending the number's password budget, then changes the password", () =>
    withinOneWindow(15 * 60_000, async () => {
      const s = await createSession({ password: PASSWORD });
      const ip = uniqueClientIp();
      const change = (current_password: string) =>
        call("POST", "/auth/change-password", {
          token: s.token,
          body: { current_password, new_password: "a brand new password" },
          headers: { "cf-connecting-ip": ip },
        });
      expect((await database("down")).status).toBe(200);
      try {
        // More than the network's 10 attempts: each is taken, then given back.
        for (let i = 0; i < 12; i++) {
          const res = await change(`wrong-${i}-pass`);
          expect(res.status, res.text).toBe(503);
          expect(res.body.error.code).toBe("dependency_unavailable");
        }
      } finally {
        await database("none");
      }
      // The whole budget is there: 9 wrong guesses, then the right one, from the same network.
      for (let i = 0; i < 9; i++) expect((await change(`again-wrong-${i}`)).status).toBe(401);
      const changed = await change(PASSWORD);
      expect(changed.status, changed.text).toBe(200);
    }));
});
