import { createHash } from "node:crypto";
import { type LuaEngine, LuaFactory } from "wasmoon";
import { formatG17 } from "./args.ts";
import type { ScriptHost } from "./commands/command.ts";
import { LUA_PRELUDE } from "./lua-prelude.ts";
import { ErrorReply, Errors, RedisError, type Reply, StatusReply } from "./reply.ts";

/** Runs one command on behalf of `redis.call`; throws RedisError on failure. */
export type ScriptCommandRunner = (args: string[]) => Reply;

export function sha1Hex(s: string): string {
  return createHash("sha1").update(s, "utf8").digest("hex");
}

/** Values as wasmoon pushes them into Lua: null becomes false (Redis' nil -> Lua false rule). */
type LuaIn = number | string | false | LuaIn[] | { ok: string } | { err: string };

function toLua(reply: Reply): LuaIn {
  if (reply === null) return false;
  if (reply instanceof StatusReply) return { ok: reply.status };
  if (reply instanceof ErrorReply) return { err: reply.message };
  if (Array.isArray(reply)) return reply.map(toLua);
  return reply;
}

/** The prelude already normalised the script's value; map it onto Reply. */
function fromLua(v: unknown): Reply {
  if (typeof v === "number") return Math.trunc(v);
  if (typeof v === "string") return v;
  if (Array.isArray(v)) return v.map(fromLua);
  if (v && typeof v === "object") {
    // An empty Lua table arrives as {} (wasmoon cannot tell it from a map): an empty array.
    if ("err" in v) return new ErrorReply(String(v.err));
    if ("ok" in v) return new StatusReply(String(v.ok));
    return [];
  }
  return null;
}

function bridgeCall(run: ScriptCommandRunner, args: unknown[]): LuaIn {
  if (args.length === 0) {
    return { err: "ERR Please specify at least one argument for this redis lib call" };
  }
  const strings: string[] = [];
  for (const a of args) {
    if (typeof a === "string") strings.push(a);
    // Redis 7.0 formats Lua numbers with %.17g (so 3.0 -> "3", 0.1 -> "0.10000000000000001").
    else if (typeof a === "number") strings.push(formatG17(a));
    else return { err: "ERR Lua redis lib command arguments must be strings or integers" };
  }
  try {
    return toLua(run(strings));
  } catch (e) {
    if (e instanceof RedisError) return { err: e.message };
    console.error("[local-redis] command failed inside a script", e);
    return { err: `ERR ${e instanceof Error ? e.message : String(e)}` };
  }
}

/** Redis 7.0's script flags plus `allow-key-locking`, which Upstash accepts (ratelimit uses it). */
const SCRIPT_FLAGS = new Set([
  "no-writes",
  "allow-oom",
  "allow-stale",
  "no-cluster",
  "allow-cross-slot-keys",
  "allow-key-locking",
]);

/** Splits off a Redis 7 shebang (`#!lua flags=...`), keeping the newline so line numbers hold. */
function stripShebang(body: string): string {
  if (!body.startsWith("#!")) return body;
  const end = body.indexOf("\n");
  const line = end < 0 ? body : body.slice(0, end);
  const [engine, ...options] = line.slice(2).split(" ").filter(Boolean);
  if (engine !== "lua") throw new RedisError(`ERR Unexpected engine in script shebang: ${line}`);
  for (const option of options) {
    if (!option.startsWith("flags=")) {
      throw new RedisError(`ERR Unknown lua shebang option: ${option}`);
    }
    for (const flag of option.slice("flags=".length).split(",").filter(Boolean)) {
      if (!SCRIPT_FLAGS.has(flag)) {
        throw new RedisError(`ERR Unexpected flag in script shebang: ${flag}`);
      }
    }
  }
  return end < 0 ? "" : body.slice(end);
}

type LuaFn = (...args: unknown[]) => unknown;

/**
 * EVAL/EVALSHA on real Lua 5.4 (wasmoon). One VM is reused for every script: each run gets a
 * fresh read-only global environment, so scripts cannot leak state into each other, and the
 * VM is only ever entered synchronously, so a script is atomic with respect to other commands.
 */
export class LuaScripting implements ScriptHost {
  #engine: LuaEngine;
  #compile: LuaFn;
  #run: LuaFn;
  #flush: LuaFn;
  #bodies = new Map<string, string>();
  #timeoutMs: number;

  private constructor(engine: LuaEngine, timeoutMs: number) {
    this.#engine = engine;
    this.#compile = engine.global.get("__compile") as LuaFn;
    this.#run = engine.global.get("__run") as LuaFn;
    this.#flush = engine.global.get("__flush") as LuaFn;
    this.#timeoutMs = timeoutMs;
  }

  static async create(run: ScriptCommandRunner, timeoutMs = 5000): Promise<LuaScripting> {
    const engine = await new LuaFactory().createEngine({
      openStandardLibs: true,
      injectObjects: false,
      // JS arrays/objects must arrive as Lua tables, not proxies.
      enableProxy: false,
    });
    engine.global.set("__js_call", (...args: unknown[]) => bridgeCall(run, args));
    engine.global.set("__js_sha1", (s: string) => sha1Hex(s));
    engine.global.set("__js_now", () => Date.now());
    engine.doStringSync(LUA_PRELUDE);
    return new LuaScripting(engine, timeoutMs);
  }

  load(body: string): string {
    const sha = sha1Hex(body);
    if (this.#bodies.has(sha)) return sha;
    const err = this.#compile(sha, stripShebang(body));
    if (typeof err === "string") {
      throw new RedisError(`ERR Error compiling script (new function): ${err}`);
    }
    this.#bodies.set(sha, body);
    return sha;
  }

  exists(sha: string): boolean {
    return this.#bodies.has(sha);
  }

  flush(): void {
    this.#bodies.clear();
    this.#flush();
  }

  run(body: string, keys: string[], args: string[]): Reply {
    return this.runSha(this.load(body), keys, args);
  }

  runSha(sha: string, keys: string[], args: string[]): Reply {
    if (!this.#bodies.has(sha)) throw new RedisError(Errors.noScript);
    const out = this.#run(sha, keys, args, this.#timeoutMs);
    if (!Array.isArray(out)) throw new RedisError("ERR the Lua engine returned no result");
    const [ok, value, line] = out as [boolean, unknown, number | undefined];
    if (!ok) {
      throw new RedisError(`${String(value)} script: ${sha}, on @user_script:${line ?? 0}.`);
    }
    const reply = fromLua(value);
    if (reply instanceof ErrorReply) throw new RedisError(reply.message);
    return reply;
  }

  close(): void {
    this.#engine.global.close();
  }
}
