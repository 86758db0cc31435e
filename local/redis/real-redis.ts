import { Buffer } from "node:buffer";
import { createHash } from "node:crypto";
import { Redis } from "ioredis";
import type { RedisBackend } from "./backend.ts";
import { Errors, RedisError, type RestResult, type RestValue } from "./reply.ts";

/**
 * Commands that would change or block the one shared connection (transactions, SELECT,
 * pub/sub, blocking pops). Upstash's REST API does not offer them either.
 */
const REFUSED = new Set([
  "MULTI",
  "EXEC",
  "DISCARD",
  "WATCH",
  "UNWATCH",
  "SELECT",
  "SWAPDB",
  "SUBSCRIBE",
  "PSUBSCRIBE",
  "SSUBSCRIBE",
  "UNSUBSCRIBE",
  "PUNSUBSCRIBE",
  "SUNSUBSCRIBE",
  "MONITOR",
  "QUIT",
  "RESET",
  "HELLO",
  "AUTH",
  "CLIENT",
  "BLPOP",
  "BRPOP",
  "BLMOVE",
  "BLMPOP",
  "BRPOPLPUSH",
  "BZPOPMIN",
  "BZPOPMAX",
  "BZMPOP",
  "WAIT",
  "SHUTDOWN",
  "DEBUG",
  "SYNC",
  "PSYNC",
  "REPLICAOF",
  "SLAVEOF",
]);

function refusal(name: string): string | undefined {
  return REFUSED.has(name) ? `ERR Command is not available over REST: '${name}'` : undefined;
}

function isReplyError(e: unknown): e is Error {
  return e instanceof Error && e.name === "ReplyError";
}

function toRest(v: unknown): RestValue {
  if (v === null || v === undefined) return null;
  if (typeof v === "number" || typeof v === "string") return v;
  if (Buffer.isBuffer(v)) return v.toString("utf8");
  if (Array.isArray(v)) return v.map(toRest);
  if (v instanceof Error) return v.message;
  return String(v);
}

function settle(err: Error | null, value: unknown): RestResult {
  return err ? { error: err.message } : { result: toRest(value) };
}

const sha1 = (s: string) => createHash("sha1").update(s, "utf8").digest("hex");

/**
 * Upstash accepts the `allow-key-locking` script flag that @upstash/ratelimit's scripts carry;
 * Redis 7.0 rejects it ("Unexpected flag in script shebang"). Such scripts are sent without the
 * flag, and the SHA the client computed (over the original text) is mapped to the SHA Redis
 * stores, so EVALSHA/SCRIPT EXISTS/SCRIPT LOAD look exactly as they would on Upstash.
 */
class ScriptShim {
  #aliases = new Map<string, string>();

  #adapt(body: string): string {
    const end = body.indexOf("\n");
    const line = end < 0 ? body : body.slice(0, end);
    const match = /^#!lua\s+flags=(\S*)\s*$/.exec(line);
    if (!match) return body;
    const flags = (match[1] ?? "").split(",").filter(Boolean);
    const kept = flags.filter((f) => f !== "allow-key-locking");
    if (kept.length === flags.length) return body;
    const shebang = kept.length > 0 ? `#!lua flags=${kept.join(",")}` : "#!lua";
    const adapted = shebang + body.slice(line.length);
    this.#aliases.set(sha1(body), sha1(adapted));
    return adapted;
  }

  #alias(sha: string): string {
    return this.#aliases.get(sha.toLowerCase()) ?? sha;
  }

  /** The command to send, and how to turn Redis' answer back into what Upstash would say. */
  translate(command: string[]): { command: string[]; fix?: (r: RestResult) => RestResult } {
    const [name = "", ...args] = command;
    const upperName = name.toUpperCase();
    if ((upperName === "EVAL" || upperName === "EVAL_RO") && args[0] !== undefined) {
      return { command: [upperName, this.#adapt(args[0]), ...args.slice(1)] };
    }
    if ((upperName === "EVALSHA" || upperName === "EVALSHA_RO") && args[0] !== undefined) {
      return { command: [upperName, this.#alias(args[0]), ...args.slice(1)] };
    }
    if (upperName === "SCRIPT" && args.length >= 2) {
      const sub = args[0]!.toUpperCase();
      if (sub === "LOAD") {
        const original = args[1]!;
        return {
          command: [upperName, sub, this.#adapt(original)],
          fix: (r) => ("error" in r ? r : { result: sha1(original) }),
        };
      }
      if (sub === "EXISTS") {
        return { command: [upperName, sub, ...args.slice(1).map((sha) => this.#alias(sha))] };
      }
    }
    return { command: [upperName, ...args] };
  }
}

/**
 * Passes REST commands through to a real Redis over one ioredis connection. Command names are
 * sent upper-case: ioredis keys its reply transformers (HGETALL -> object) on the lower-case
 * name, and the REST API must return Redis' raw reply.
 */
export class RealRedis implements RedisBackend {
  readonly kind = "redis";
  #client: Redis;
  #scripts = new ScriptShim();

  private constructor(client: Redis) {
    this.#client = client;
  }

  static async create(url: string): Promise<RealRedis> {
    // RESP2: the REST API's reply shapes (ioredis 6 speaks RESP3 unless told otherwise).
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2, protocol: 2 });
    client.on("error", (e) => console.error("[local-redis] connection error:", e.message));
    try {
      await client.connect();
    } catch (e) {
      client.disconnect();
      throw new Error(`local Redis stand-in cannot reach ${url}: ${String(e)}`);
    }
    return new RealRedis(client);
  }

  async run(command: string[]): Promise<RestResult> {
    const refused = refusal(command[0]?.toUpperCase() ?? "");
    if (refused) return { error: refused };
    const {
      command: [name = "", ...args],
      fix,
    } = this.#scripts.translate(command);
    let result: RestResult;
    try {
      result = { result: toRest(await this.#client.call(name, ...args)) };
    } catch (e) {
      if (!isReplyError(e)) throw e;
      result = { error: e.message };
    }
    return fix ? fix(result) : result;
  }

  async pipeline(commands: string[][]): Promise<RestResult[]> {
    const results: RestResult[] = new Array(commands.length);
    const pipeline = this.#client.pipeline();
    const sent: { index: number; fix?: (r: RestResult) => RestResult }[] = [];
    commands.forEach((command, index) => {
      const refused = refusal(command[0]?.toUpperCase() ?? "");
      if (refused) {
        results[index] = { error: refused };
        return;
      }
      const {
        command: [name = "", ...args],
        fix,
      } = this.#scripts.translate(command);
      pipeline.call(name, ...args);
      sent.push({ index, fix });
    });
    if (sent.length > 0) {
      const replies = (await pipeline.exec()) ?? [];
      sent.forEach(({ index, fix }, j) => {
        const [err, value] = replies[j] ?? [new Error("ERR no reply"), null];
        const result = settle(err, value);
        results[index] = fix ? fix(result) : result;
      });
    }
    return results;
  }

  async multiExec(commands: string[][]): Promise<RestResult[]> {
    if (commands.some(([name = ""]) => refusal(name.toUpperCase()))) {
      throw new RedisError(Errors.execAbort);
    }
    const multi = this.#client.multi();
    const fixes = commands.map((command) => {
      const {
        command: [name = "", ...args],
        fix,
      } = this.#scripts.translate(command);
      multi.call(name, ...args);
      return fix;
    });
    try {
      const replies = await multi.exec();
      if (!replies) throw new RedisError(Errors.execAbort);
      return replies.map(([err, value], i) => {
        const result = settle(err, value);
        const fix = fixes[i];
        return fix ? fix(result) : result;
      });
    } catch (e) {
      if (isReplyError(e)) throw new RedisError(e.message);
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.#client.quit().catch(() => this.#client.disconnect());
  }
}
