/** A RESP2 status reply ("+OK", "+PONG"); Lua sees it as `{ok = ...}`. */
export class StatusReply {
  readonly status: string;
  constructor(status: string) {
    this.status = status;
  }
}

/** An error reply held as a value (inside an array, or returned by a script). */
export class ErrorReply {
  readonly message: string;
  constructor(message: string) {
    this.message = message;
  }
}

/** What a command answers: integer, bulk string, nil, status, nested error or array. */
export type Reply = null | number | string | StatusReply | ErrorReply | Reply[];

/** A command failure; the message carries the Redis error code first ("ERR ...", "WRONGTYPE ..."). */
export class RedisError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RedisError";
  }
}

export const OK = new StatusReply("OK");

export const Errors = {
  syntax: "ERR syntax error",
  notInteger: "ERR value is not an integer or out of range",
  notFloat: "ERR value is not a valid float",
  wrongType: "WRONGTYPE Operation against a key holding the wrong kind of value",
  overflow: "ERR increment or decrement would overflow",
  noScript: "NOSCRIPT No matching script. Please use EVAL.",
  execAbort: "EXECABORT Transaction discarded because of previous errors.",
  wrongArgs: (name: string) => `ERR wrong number of arguments for '${name}' command`,
  invalidExpire: (name: string) => `ERR invalid expire time in '${name}' command`,
} as const;

/** The JSON value one REST result carries (before any base64 encoding). */
export type RestValue = null | number | string | RestValue[];

/** One REST answer: `{"result": ...}` or `{"error": "..."}`. */
export type RestResult = { result: RestValue } | { error: string };

export function toRestValue(reply: Reply): RestValue {
  if (reply instanceof StatusReply) return reply.status;
  if (reply instanceof ErrorReply) return reply.message;
  if (Array.isArray(reply)) return reply.map(toRestValue);
  return reply;
}
