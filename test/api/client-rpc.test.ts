import { describe, expect, it } from "vitest";
import { createClient } from "../../src/client.ts";
import { uniqueMobileNumber, workerUrl } from "../support/api.ts";
import { uniqueClientIp } from "../support/session.ts";

describe("typed client (createClient over hono/client)", () => {
  it("signs up, logs in by OTP and chats through typed calls against the Worker", async () => {
    const anonymous = createClient(workerUrl, undefined, {
      headers: { "cf-connecting-ip": uniqueClientIp() },
    });
    const mobile_number = uniqueMobileNumber();
    const signup = await anonymous.auth.signup.$post({ json: { mobile_number, name: "Ada" } });
    expect(signup.status).toBe(201);

    const sent = await anonymous.auth["send-otp"].$post({ json: { mobile_number } });
    if (sent.status !== 200) throw new Error(`send-otp answered ${sent.status}`);
    const { otp, challenge_id } = await sent.json();
    const verified = await anonymous.auth["verify-otp"].$post({
      json: { mobile_number, otp: otp ?? "", challenge_id },
    });
    if (verified.status !== 200) throw new Error(`verify-otp answered ${verified.status}`);
    const session = await verified.json();
    expect(session.user.mobile_number).toBe(mobile_number);

    const api = createClient(workerUrl, session.token);
    const me = await api.user.me.$get();
    if (me.status !== 200) throw new Error(`/user/me answered ${me.status}`);
    expect((await me.json()).user).toMatchObject({ name: "Ada", tier: "basic" });

    const created = await api.chatroom.$post({ json: { title: "Typed" } });
    if (created.status !== 201) throw new Error(`create answered ${created.status}`);
    const { chatroom } = await created.json();
    const prompt = await api.chatroom[":id"].message.$post({
      param: { id: chatroom.id },
      header: {},
      json: { content: "Hello from the typed client" },
    });
    expect(prompt.status).toBe(202);
    if (prompt.status !== 202) return;
    const accepted = await prompt.json();
    expect(accepted.reply.status).toBe("pending");
    expect(prompt.headers.get("location")).toBe(
      `/chatroom/${chatroom.id}/messages/${accepted.reply.id}`,
    );
  });

  it("sends no token when none is given, so protected calls answer 401", async () => {
    const res = await createClient(workerUrl).user.me.$get();
    expect(res.status).toBe(401);
  });
});
