// Issue 16 items 1–3 and 5: the field names other clients of this spec send are understood at
// the edge (aliases), unknown fields are named with the field probably meant, validation
// messages say what to fix, and token responses speak OAuth 2.0 too.
import { beforeAll, describe, expect, it } from "vitest";
import { call, uniqueClientIp, uniqueMobileNumber } from "../support/api.ts";
import { createSession, requestLoginChallenge, type TestSession } from "../support/session.ts";

let me: TestSession;
let roomId: string;

beforeAll(async () => {
  me = await createSession({ name: "Edge", password: "correct horse battery" });
  const room = await call("POST", "/chatroom", { token: me.token, body: { title: "Edge room" } });
  expect(room.status).toBe(201);
  roomId = room.body.chatroom.id;
});

const expectInvalid = (
  res: { status: number; body: { error: { code: string; message: string; details: unknown } } },
  path: string,
  message: string,
) => {
  expect(res.status, JSON.stringify(res.body)).toBe(400);
  expect(res.body.error.code).toBe("invalid_request");
  expect(res.body.error.details).toContainEqual({ path, message, location: "json" });
  expect(res.body.error.message).toContain(message.replace(/\.$/, ""));
};

describe("field aliases", () => {
  for (const alias of ["mobile", "phone", "phone_number"]) {
    it(`${alias} is mobile_number (signup, send-otp)`, async () => {
      const number = uniqueMobileNumber();
      const signup = await call("POST", "/auth/signup", { body: { [alias]: number } });
      expect(signup.status, signup.text).toBe(201);
      expect(signup.body.user.mobile_number).toBe(number);
      const sent = await call("POST", "/auth/send-otp", { body: { [alias]: number } });
      expect(sent.status, sent.text).toBe(200);
    });
  }

  for (const alias of ["otp_code", "code"]) {
    it(`${alias} is otp (verify-otp)`, async () => {
      const number = uniqueMobileNumber();
      expect((await call("POST", "/auth/signup", { body: { mobile_number: number } })).status).toBe(
        201,
      );
      const { otp, challenge_id } = await requestLoginChallenge(number);
      const res = await call("POST", "/auth/verify-otp", {
        body: { phone: number, [alias]: otp, challenge_id },
      });
      expect(res.status, res.text).toBe(200);
      expect(res.body.user.mobile_number).toBe(number);
    });
  }

  it("name is a chatroom's title (create and rename)", async () => {
    const created = await call("POST", "/chatroom", { token: me.token, body: { name: "Named" } });
    expect(created.status, created.text).toBe(201);
    expect(created.body.chatroom.title).toBe("Named");
    const renamed = await call("PATCH", `/chatroom/${created.body.chatroom.id}`, {
      token: me.token,
      body: { name: "Renamed" },
    });
    expect(renamed.status, renamed.text).toBe(200);
    expect(renamed.body.chatroom.title).toBe("Renamed");
  });

  for (const alias of ["message", "prompt", "text"]) {
    it(`${alias} is a prompt's content`, async () => {
      const room = await call("POST", "/chatroom", { token: me.token, body: { title: alias } });
      const res = await call("POST", `/chatroom/${room.body.chatroom.id}/message`, {
        token: me.token,
        body: { [alias]: `Hello via ${alias}` },
      });
      // 202 when the prompt is accepted; a later alias may meet the daily quota (429), which is
      // answered only after the body validated, so the alias was understood either way.
      expect([202, 429, 409], res.text).toContain(res.status);
      if (res.status === 202) expect(res.body.message.content).toBe(`Hello via ${alias}`);
    });
  }

  it("old_password is current_password (change-password)", async () => {
    const s = await createSession({ password: "correct horse battery" });
    const res = await call("POST", "/auth/change-password", {
      token: s.token,
      body: { old_password: "correct horse battery", new_password: "battery staple horse" },
    });
    expect(res.status, res.text).toBe(200);
  });

  it("full_name is name at signup, stored with email", async () => {
    const res = await call("POST", "/auth/signup", {
      body: { mobile_number: uniqueMobileNumber(), full_name: "A", email: "a@example.com" },
    });
    expect(res.status, res.text).toBe(201);
    expect(res.body.user).toMatchObject({ name: "A", email: "a@example.com" });
  });

  it("a name and its alias together are 400, naming both", async () => {
    const number = uniqueMobileNumber();
    expectInvalid(
      await call("POST", "/auth/signup", { body: { mobile_number: number, phone: number } }),
      "phone",
      'Send "mobile_number" once: "phone" and "mobile_number" name the same field.',
    );
    expectInvalid(
      await call("POST", "/auth/signup", { body: { mobile: number, phone: number } }),
      "phone",
      'Send "mobile_number" once: "phone" and "mobile" name the same field.',
    );
    expectInvalid(
      await call("POST", "/chatroom", { token: me.token, body: { title: "a", name: "b" } }),
      "name",
      'Send "title" once: "name" and "title" name the same field.',
    );
    expectInvalid(
      await call("POST", `/chatroom/${roomId}/message`, {
        token: me.token,
        body: { content: "a", text: "b" },
      }),
      "text",
      'Send "content" once: "text" and "content" name the same field.',
    );
    // Nothing was created by the refused signups.
    const sent = await call("POST", "/auth/send-otp", { body: { mobile_number: number } });
    expect(sent.status).toBe(404);
  });

  it("an alias of a field the route does not have is an unknown field", async () => {
    // `name` is signup's own field (not title); `code` on login is not a field there.
    const res = await call("POST", "/auth/login", {
      body: { mobile_number: me.mobile_number, password: "x", code: "123456" },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0]).toMatchObject({ path: "code", location: "json" });
  });
});

describe("unknown fields", () => {
  it("names the field and the accepted one it is close to", async () => {
    expectInvalid(
      await call("POST", "/auth/signup", { body: { mobil: uniqueMobileNumber() } }),
      "mobil",
      'Unknown field "mobil"; did you mean "mobile_number"?',
    );
    const res = await call("POST", "/auth/signup", { body: { mobil: uniqueMobileNumber() } });
    expect(res.body.error.message).toBe('Unknown field "mobil"; did you mean "mobile_number"?');
    expectInvalid(
      await call("POST", "/auth/verify-otp", {
        body: { mobile_number: me.mobile_number, otpp: "123456" },
      }),
      "otpp",
      'Unknown field "otpp"; did you mean "otp"?',
    );
    expectInvalid(
      await call("POST", "/chatroom", { token: me.token, body: { titel: "x" } }),
      "titel",
      'Unknown field "titel"; did you mean "title"?',
    );
  });

  it("suggests only the route's own fields, else lists them", async () => {
    // `title` is not a signup field, so no suggestion points at it.
    expectInvalid(
      await call("POST", "/auth/signup", {
        body: { mobile_number: uniqueMobileNumber(), title: "x" },
      }),
      "title",
      'Unknown field "title"; accepted fields: mobile_number, name, email, password.',
    );
    expectInvalid(
      await call("PATCH", "/user/me", { token: me.token, body: { tier: "pro" } }),
      "tier",
      'Unknown field "tier"; accepted fields: name, email.',
    );
  });

  it("refuses __proto__ and constructor like any other unknown field", async () => {
    for (const raw of ['{"title":"x","__proto__":{"a":1}}', '{"title":"x","constructor":1}']) {
      const res = await call("POST", "/chatroom", {
        token: me.token,
        rawBody: raw,
        headers: { "content-type": "application/json" },
      });
      expect(res.status, raw).toBe(400);
      expect(res.body.error.message).toMatch(/^Unknown field "(__proto__|constructor)"/);
    }
  });
});

describe("validation messages a person can act on", () => {
  it("a missing field is required, by name", async () => {
    // (A chatroom's title is optional since per-chat settings: "New chat" until one is set.)
    expectInvalid(
      await call("POST", "/auth/send-otp", { body: {} }),
      "mobile_number",
      "mobile_number is required",
    );
    const res = await call("POST", "/auth/send-otp", { body: {} });
    expect(res.body.error.message).toBe("mobile_number is required.");
  });

  it("a query number says its range, never NaN", async () => {
    for (const q of ["abc", "0", "101", "1.5"]) {
      const res = await call("GET", `/chatroom?limit=${q}`, { token: me.token });
      expect(res.status, q).toBe(400);
      expect(res.body.error.details).toEqual([
        { path: "limit", message: "limit must be a whole number from 1 to 100", location: "query" },
      ]);
      expect(res.text).not.toMatch(/NaN|expected number/);
    }
  });

  it("a wrong type names the field and the type", async () => {
    expectInvalid(
      await call("POST", "/chatroom", { token: me.token, body: { title: 5 } }),
      "title",
      "title must be a string",
    );
    expectInvalid(
      await call("PATCH", "/user/me", { token: me.token, body: { email: "not-an-email" } }),
      "email",
      "email must be an email address",
    );
  });

  it("a body that is not an object is about the body, never a root path `json`", async () => {
    const res = await call("POST", "/chatroom", { token: me.token, body: [1] });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { path: "", message: "The body must be a JSON object", location: "json" },
    ]);
  });

  it("keeps a schema's own sentence", async () => {
    expectInvalid(
      await call("POST", "/auth/verify-otp", {
        body: { mobile_number: me.mobile_number, otp: "12" },
      }),
      "otp",
      "The code is 6 digits.",
    );
  });
});

describe("token responses in OAuth 2.0 names", () => {
  it("login, refresh and change-password carry access_token, token_type, expires_in, refresh_token", async () => {
    const s = await createSession({ password: "correct horse battery" });
    const ip = uniqueClientIp();
    const login = await call("POST", "/auth/login", {
      body: { mobile_number: s.mobile_number, password: "correct horse battery" },
      headers: { "cf-connecting-ip": ip },
    });
    const refreshed = await call("POST", "/auth/refresh", {
      body: { refresh_token: login.body.refresh_token },
    });
    const changed = await call("POST", "/auth/change-password", {
      token: refreshed.body.token,
      body: { current_password: "correct horse battery", new_password: "another long secret" },
    });
    for (const res of [login, refreshed, changed]) {
      expect(res.status, res.text).toBe(200);
      expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
      expect(res.body.access_token).toBe(res.body.token);
      expect(typeof res.body.refresh_token).toBe("string");
    }
    const me2 = await call("GET", "/user/me", { token: changed.body.access_token });
    expect(me2.status).toBe(200);
  });

  it("verify-otp carries them too", async () => {
    const number = uniqueMobileNumber();
    await call("POST", "/auth/signup", { body: { mobile_number: number } });
    const { otp, challenge_id } = await requestLoginChallenge(number);
    const res = await call("POST", "/auth/verify-otp", {
      body: { mobile_number: number, otp, challenge_id },
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ token_type: "Bearer", expires_in: 900 });
    expect(res.body.access_token).toBe(res.body.token);
  });
});

describe("the OpenAPI document says so", () => {
  it("lists each operation's aliases and types error.details", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const signup = doc.paths["/auth/signup"].post.description as string;
    expect(signup).toContain("`phone` for `mobile_number`");
    expect(signup).toContain("`full_name` for `name`");
    expect(signup).not.toContain("for `title`");
    expect(doc.paths["/chatroom"].post.description).toContain("`name` for `title`");
    expect(doc.paths["/chatroom/{id}/message"].post.description).toContain("`text` for `content`");
    const details = doc.components.schemas.Error.properties.error.properties.details;
    const refs = JSON.stringify(details);
    for (const name of ["FieldIssue", "AttemptsLeft", "DailyLimitDetails"]) {
      expect(refs).toContain(`#/components/schemas/${name}`);
    }
    expect(doc.components.schemas.FieldIssue.required.sort()).toEqual([
      "location",
      "message",
      "path",
    ]);
    expect(doc.components.schemas.TokenPair.required).toContain("access_token");
  });
});
