// The /auth endpoints: codes, passwords, sessions.
import { randomMobileNumber } from "../../support/http.ts";
import { type Harness, must } from "../harness.ts";
import { type Case, expect, repeat } from "./case.ts";

export function authCases({ call, signUp, loginCode, session }: Harness): Case[] {
  return [
    {
      label: "POST /auth/signup",
      prepare: async (n) =>
        repeat(
          n,
          () => () =>
            expect(
              201,
              "signup",
            )(
              call("POST", "/auth/signup", {
                body: { mobile_number: randomMobileNumber() },
              }),
            ),
        ),
    },
    {
      label: "POST /auth/send-otp",
      async prepare(n) {
        const numbers = await Promise.all(repeat(n, () => signUp()));
        return numbers.map(
          (mobile) => () =>
            expect(
              200,
              "send-otp",
            )(
              call("POST", "/auth/send-otp", {
                body: { mobile_number: mobile },
              }),
            ),
        );
      },
    },
    {
      label: "POST /auth/verify-otp",
      target: 2,
      async prepare(n) {
        const codes = await Promise.all(
          repeat(n, async () => {
            const mobile = await signUp();
            return { mobile, code: await loginCode(mobile) };
          }),
        );
        return codes.map(
          ({ mobile, code }) =>
            () =>
              expect(
                200,
                "verify-otp",
              )(
                call("POST", "/auth/verify-otp", {
                  body: { mobile_number: mobile, ...code },
                }),
              ),
        );
      },
    },
    {
      label: "POST /auth/login",
      note: "includes one PBKDF2 verification (CPU, the same at both latencies)",
      async prepare(n) {
        // 10 password attempts per number per 15 minutes: 8 logins per user stay clear of it.
        const password = "bench password 123";
        const numbers = await Promise.all(repeat(Math.ceil(n / 8), () => signUp(password)));
        return repeat(
          n,
          (i) => () =>
            expect(
              200,
              "login",
            )(
              call("POST", "/auth/login", {
                body: { mobile_number: numbers[Math.floor(i / 8)], password },
              }),
            ),
        );
      },
    },
    {
      label: "POST /auth/refresh",
      async prepare(n) {
        const s = await session();
        let refresh = s.refresh_token;
        return repeat(n, () => async () => {
          const r = await expect(
            200,
            "refresh",
          )(call("POST", "/auth/refresh", { body: { refresh_token: refresh } }));
          refresh = r.body.refresh_token;
          return r;
        });
      },
    },
    {
      label: "POST /auth/logout",
      async prepare(n) {
        const password = "bench password 123";
        const numbers = await Promise.all(repeat(Math.ceil(n / 8), () => signUp(password)));
        const sessions: { token: string; refresh: string }[] = [];
        for (let i = 0; i < n; i++) {
          const r = must(
            await call("POST", "/auth/login", {
              body: { mobile_number: numbers[Math.floor(i / 8)], password },
            }),
            200,
            "login",
          );
          sessions.push({ token: r.body.token, refresh: r.body.refresh_token });
        }
        return sessions.map(
          (s) => () =>
            expect(
              204,
              "logout",
            )(
              call("POST", "/auth/logout", {
                token: s.token,
                body: { refresh_token: s.refresh },
              }),
            ),
        );
      },
    },
    {
      label: "POST /auth/forgot-password",
      async prepare(n) {
        const numbers = await Promise.all(repeat(n, () => signUp("bench password 123")));
        return numbers.map(
          (mobile) => () =>
            expect(
              200,
              "forgot",
            )(
              call("POST", "/auth/forgot-password", {
                body: { mobile_number: mobile },
              }),
            ),
        );
      },
    },
    {
      label: "POST /auth/reset-password",
      note: "includes one PBKDF2 hash",
      async prepare(n) {
        const codes = await Promise.all(
          repeat(n, async () => {
            const mobile = await signUp("bench password 123");
            const r = must(
              await call("POST", "/auth/forgot-password", {
                body: { mobile_number: mobile },
              }),
              200,
              "forgot",
            );
            return {
              mobile,
              otp: r.body.otp as string,
              challenge_id: r.body.challenge_id as string,
            };
          }),
        );
        return codes.map(
          ({ mobile, otp, challenge_id }) =>
            () =>
              expect(
                200,
                "reset",
              )(
                call("POST", "/auth/reset-password", {
                  body: {
                    mobile_number: mobile,
                    otp,
                    challenge_id,
                    new_password: "another bench password",
                  },
                }),
              ),
        );
      },
    },
    {
      label: "POST /auth/change-password",
      note: "includes one PBKDF2 verification and one hash",
      async prepare(n) {
        // Each change spends one of the number's 10 password attempts per 15 minutes (shared with
        // login): 8 changes per user stay clear of it, alternating between two passwords.
        const passwords = ["bench password one", "bench password two"];
        const users = await Promise.all(
          repeat(Math.ceil(n / 8), () => session({ password: passwords[0] })),
        );
        const tokens = users.map((u) => u.token);
        return repeat(n, (i) => async () => {
          const user = Math.floor(i / 8);
          const r = await expect(
            200,
            "change-password",
          )(
            call("POST", "/auth/change-password", {
              token: tokens[user],
              body: { current_password: passwords[i % 2], new_password: passwords[(i + 1) % 2] },
            }),
          );
          tokens[user] = r.body.token;
          return r;
        });
      },
    },
  ];
}
