import type { ClientResponse, InferRequestType, InferResponseType } from "hono/client";
import { describe, expectTypeOf, it } from "vitest";
import { type ApiClient, createClient } from "../../src/client.ts";

// Type-level checks: `tsc -p test/tsconfig.json` fails if AppType stops carrying route types
// (for instance when a route group is mounted without chaining and its schema is dropped).
type Client = ApiClient;
type SendPrompt = Client["chatroom"][":id"]["message"]["$post"];
type Signup = Client["auth"]["signup"]["$post"];
type Me = Client["user"]["me"]["$get"];
type Status = Client["subscription"]["status"]["$get"];

describe("typed client (hono/client over AppType)", () => {
  it("types request bodies, path params and headers from the route schemas", () => {
    expectTypeOf<InferRequestType<Signup>["json"]>().toHaveProperty("mobile_number");
    expectTypeOf<InferRequestType<Signup>["json"]["mobile_number"]>().toEqualTypeOf<string>();
    expectTypeOf<InferRequestType<SendPrompt>["param"]>().toEqualTypeOf<{ id: string }>();
    expectTypeOf<InferRequestType<SendPrompt>["json"]>().toEqualTypeOf<{ content: string }>();
    expectTypeOf<InferRequestType<SendPrompt>["header"]>().toHaveProperty("idempotency-key");
  });

  it("types JSON responses per status", () => {
    type Accepted = InferResponseType<SendPrompt, 202>;
    expectTypeOf<Accepted["reply"]["status"]>().toEqualTypeOf<
      "pending" | "complete" | "failed" | "cancelled"
    >();
    expectTypeOf<Accepted["message"]["chatroom_id"]>().toEqualTypeOf<string>();
    expectTypeOf<InferResponseType<Me, 200>["user"]["tier"]>().toEqualTypeOf<"basic" | "pro">();
    expectTypeOf<InferResponseType<Signup, 201>["user"]["id"]>().toEqualTypeOf<string>();
    expectTypeOf<InferResponseType<Status, 200>["usage"]["daily_limit"]>().toEqualTypeOf<number>();
  });

  it("narrows the response type by status", () => {
    type Res = Awaited<ReturnType<Me>>;
    expectTypeOf<Extract<Res, { status: 200 }>>().toExtend<ClientResponse<unknown, 200, "json">>();
    expectTypeOf<Res["status"]>().toExtend<number>();
  });

  it("builds a client whose calls exist at runtime for every route group", () => {
    const client = createClient("http://127.0.0.1:8787", "token");
    expectTypeOf(client.chatroom.$get).toBeFunction();
    expectTypeOf(client.auth["verify-otp"].$post).toBeFunction();
    // hc builds calls from a Proxy: the URL helper shows the path is assembled from the names.
    const url = client.chatroom[":id"].messages[":message_id"].$url({
      param: { id: "room", message_id: "msg" },
    });
    expectTypeOf(url).toEqualTypeOf<URL>();
    if (url.pathname !== "/chatroom/room/messages/msg") throw new Error(url.pathname);
  });
});
