import { Hono } from "hono";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AppEnv } from "../../src/context.ts";
import { handleError } from "../../src/errors/http.ts";
import { NotFoundError } from "../../src/errors/index.ts";
import { describeError, logSafeStack } from "../../src/log.ts";

/** A NeonDbError as the neon driver builds it: name, Postgres message and SQLSTATE. */
function neonError(message: string, code?: string): Error {
  const err = new Error(message);
  err.name = "NeonDbError";
  if (code) Object.assign(err, { code });
  return err;
}

/** What Drizzle wraps every failed query in: the SQL plus its bound parameters. */
function drizzleQueryError(cause: Error, params: string[]): Error {
  return new Error(
    `Failed query: insert into "users" values ($1, $2)\nparams: ${params.join(",")}`,
    {
      cause,
    },
  );
}

async function answer(err: Error) {
  const app = new Hono<AppEnv>();
  app.use("*", async (c, next) => {
    c.set("requestId", "req-1");
    await next();
  });
  app.get("/", () => {
    throw err;
  });
  app.onError(handleError);
  const res = await app.request("/");
  return {
    status: res.status,
    body: (await res.json()) as { error: { code: string; message: string } },
  };
}

const logged = () =>
  vi
    .mocked(console.error)
    .mock.calls.map((args) => String(args[0]))
    .join("\n");

afterEach(() => vi.restoreAllMocks());

describe("handleError", () => {
  it("answers a domain error with its own status and code", async () => {
    const res = await answer(new NotFoundError("No such chatroom."));
    expect(res).toEqual({
      status: 404,
      body: { error: { code: "not_found", message: "No such chatroom.", request_id: "req-1" } },
    });
  });

  it.each([
    ["a connection failure", neonError("Error connecting to database: fetch failed")],
    ["too many connections (53300)", neonError("sorry, too many clients already", "53300")],
    [
      "an admin shutdown (57P01)",
      neonError("terminating connection due to administrator command", "57P01"),
    ],
    ["a connection exception (08006)", neonError("connection failure", "08006")],
    ["a serialization failure (40001)", neonError("could not serialize access", "40001")],
    [
      "the same wrapped by Drizzle",
      drizzleQueryError(neonError("deadlock detected", "40P01"), ["x"]),
    ],
  ])("answers %s with 503 dependency_unavailable", async (_, err) => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await answer(err);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe("dependency_unavailable");
  });

  it("answers a query error that is the request's fault with an opaque 500, not 503", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const res = await answer(drizzleQueryError(neonError("invalid input syntax", "22P02"), ["x"]));
    expect(res.status).toBe(500);
    expect(res.body.error).toEqual({
      code: "internal_error",
      message: "Something went wrong on our side.",
      request_id: "req-1",
    });
  });

  it("never logs a failed query's parameters, in the message or the stack", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const secret = "pbkdf2-sha256$100000$c2FsdA$aGFzaA";
    await answer(
      drizzleQueryError(neonError("connection failure", "08006"), ["+15550100000", secret]),
    );
    await answer(drizzleQueryError(neonError("value too long", "22001"), ["+15550100000", secret]));
    const lines = logged();
    expect(lines).toContain("params: [redacted]");
    expect(lines).toContain("Failed query");
    expect(lines).not.toContain(secret);
    expect(lines).not.toContain("+15550100000");
  });
});

describe("describeError", () => {
  it("follows the cause chain and names each error", () => {
    const text = describeError(
      drizzleQueryError(neonError("deadlock detected", "40P01"), ["s3cret"]),
    );
    expect(text).toMatch(
      /^Error: Failed query: .*params: \[redacted\] <- NeonDbError: deadlock detected$/s,
    );
    expect(text).not.toContain("s3cret");
  });
});

describe("logSafeStack", () => {
  it("keeps the frames and cuts a failed query's parameters out of the stack", () => {
    const err = drizzleQueryError(neonError("connection failure", "08006"), ["s3cret", "42"]);
    expect(err.stack).toContain("s3cret");
    const stack = logSafeStack(err);
    expect(stack).toContain("params: [redacted]");
    expect(stack).toMatch(/\n\s+at /);
    expect(stack).not.toContain("s3cret");
  });

  it("gives nothing for a value that is not an Error", () => {
    expect(logSafeStack("plain")).toBeUndefined();
  });
});
