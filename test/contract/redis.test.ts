import { Buffer } from "node:buffer";
import { createHash, randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { Ratelimit } from "@upstash/ratelimit";
import { errors, Redis } from "@upstash/redis/cloudflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type LocalCloud, startLocalCloud } from "../../local/cloud.ts";
import { EmbeddedRedis } from "../../local/redis/embedded.ts";
import { createRedisService } from "../../local/redis/service.ts";
import { TEST_KEYS, testCloudConfig } from "../../local/test-config.ts";
import type { LocalCloudConfig } from "../../local/types.ts";
import { createRedis } from "../../src/lib/redis.ts";

// The same cases run against the embedded store and, when LOCAL_REDIS_URL is set, against a
// real Redis behind the same REST layer. That Redis is shared, so every key carries a per-run
// prefix and nothing here flushes it.
const embeddedConfig: LocalCloudConfig = testCloudConfig();
delete embeddedConfig.redisUrl;
const backends: { name: string; config: LocalCloudConfig }[] = [
  { name: "embedded store", config: embeddedConfig },
];
if (process.env.LOCAL_REDIS_URL) {
  backends.push({
    name: "real Redis",
    config: testCloudConfig({ redisUrl: process.env.LOCAL_REDIS_URL }),
  });
}

const sha1 = (s: string) => createHash("sha1").update(s, "utf8").digest("hex");
const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");

/** Waits, if needed, so that `needMs` fit before the next `windowMs` boundary. */
async function atWindowStart(windowMs: number, needMs: number): Promise<void> {
  const into = Date.now() % windowMs;
  if (into + needMs > windowMs) await sleep(windowMs - into + 20);
}

async function sleepUntil(unixMs: number): Promise<void> {
  const left = unixMs - Date.now();
  if (left > 0) await sleep(left);
}

describe.each(backends)("local Upstash Redis REST over the $name", ({ config }) => {
  let cloud: LocalCloud;
  /** SDK defaults (base64 responses, automatic JSON deserialisation). */
  let redis: Redis;
  /** The Worker's own adapter: raw strings, one retry, auto-pipelined like every SDK client. */
  let raw: Redis;
  /** One HTTP request per command, so the single-command endpoint is exercised too. */
  let direct: Redis;
  const run = randomUUID().slice(0, 8);
  const key = (name: string) => `ct-redis:${run}:${name}`;

  const rest = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${cloud.url}/redis${path}`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${TEST_KEYS.redisToken}`,
        "content-type": "application/json",
        ...headers,
      },
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as { result?: unknown; error?: string } };
  };

  const control = async (path: string, body?: unknown) => {
    const res = await fetch(`${cloud.url}/_control/redis${path}`, {
      method: body === undefined ? "GET" : "POST",
      headers: { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return (await res.json()) as Record<string, unknown>;
  };

  const limiter = (limit: ConstructorParameters<typeof Ratelimit>[0]["limiter"], name: string) =>
    new Ratelimit({
      redis: raw,
      limiter: limit,
      prefix: key(`rl:${name}`),
      // The ephemeral cache would answer blocked identifiers from memory, hiding Redis.
      ephemeralCache: false,
      analytics: false,
      // No timeout race: a slow stand-in must not turn into a silent "success".
      timeout: 0,
    });

  const successes = async (rl: Ratelimit, id: string, n: number) => {
    const results = await Promise.all(Array.from({ length: n }, () => rl.limit(id)));
    return { count: results.filter((r) => r.success).length, results };
  };

  beforeAll(async () => {
    cloud = await startLocalCloud(config, [createRedisService]);
    redis = new Redis({
      url: `${cloud.url}/redis`,
      token: TEST_KEYS.redisToken,
      enableTelemetry: false,
    });
    raw = createRedis(`${cloud.url}/redis`, TEST_KEYS.redisToken);
    direct = new Redis({
      url: `${cloud.url}/redis`,
      token: TEST_KEYS.redisToken,
      enableTelemetry: false,
      enableAutoPipelining: false,
      automaticDeserialization: false,
    });
  });

  afterAll(async () => {
    if (!cloud) return;
    let cursor = "0";
    do {
      const [next, keys] = await raw.scan(cursor, { match: key("*"), count: 1000 });
      if (keys.length > 0) await raw.del(...keys);
      cursor = String(next);
    } while (cursor !== "0");
    await cloud.close();
  });

  describe("REST protocol", () => {
    it("rejects a missing or wrong token with 401, which the SDK raises as UpstashError", async () => {
      const intruder = new Redis({ url: `${cloud.url}/redis`, token: "wrong", retry: false });
      await expect(intruder.get(key("x"))).rejects.toBeInstanceOf(errors.UpstashError);
      const res = await fetch(`${cloud.url}/redis`, { method: "POST", body: '["PING"]' });
      expect(res.status).toBe(401);
      expect(await res.json()).toEqual({ error: "Unauthorized" });
    });

    it("answers command errors as {error} with HTTP 400 and Redis' messages", async () => {
      const unknown = await rest("", ["NOSUCHCMD", "a"]);
      expect(unknown.status).toBe(400);
      expect(unknown.body.error).toMatch(/^ERR unknown command 'NOSUCHCMD'/);

      const arity = await rest("", ["GET"]);
      expect(arity).toEqual({
        status: 400,
        body: { error: "ERR wrong number of arguments for 'get' command" },
      });

      await redis.hset(key("err-hash"), { f: "v" });
      const wrongType = await rest("", ["GET", key("err-hash")]);
      expect(wrongType.body.error).toBe(
        "WRONGTYPE Operation against a key holding the wrong kind of value",
      );
      await expect(direct.incr(key("err-hash"))).rejects.toThrow(/WRONGTYPE/);
      await expect(raw.incr(key("err-hash"))).rejects.toThrow(/WRONGTYPE/);

      expect((await rest("", "not json")).status).toBe(400);
      expect((await rest("", [])).status).toBe(400);
    });

    it("answers the same one command per request as auto-pipelined", async () => {
      // The SDK's default auto-pipeline (the Worker's own client sends one request per command).
      const pipelined = new Redis({
        url: `${cloud?.url}/redis`,
        token: TEST_KEYS.redisToken,
        enableTelemetry: false,
        automaticDeserialization: false,
      });
      for (const [name, client] of [
        ["direct", direct],
        ["pipelined", pipelined],
      ] as const) {
        const k = key(`same:${name}`);
        const answers = [
          await client.set(k, "1"),
          await client.incr(k),
          await client.get(k),
          await client.exists(k, key("missing")),
          await client.get(key("missing")),
          await client.ping(),
          await client.echo("héllo"),
        ];
        expect(answers).toEqual(["OK", 2, "2", 1, null, "PONG", "héllo"]);
      }
    });

    it("accepts command names and options in any case", async () => {
      const k = key("case");
      expect((await rest("", ["sEt", k, "v", "Px", 60_000, "nX"])).body).toEqual({
        result: "OK",
      });
      expect((await rest("", ["set", k, "w", "nx"])).body).toEqual({ result: null });
      expect((await rest("", ["GeT", k])).body).toEqual({ result: "v" });
      const pttl = (await rest("", ["pTtL", k])).body.result as number;
      expect(pttl).toBeGreaterThan(50_000);
      expect((await rest("", ["zAdD", key("case-z"), "Nx", "Ch", 1, "a"])).body).toEqual({
        result: 1,
      });
    });

    it("serves the path-style GET form documented for curl", async () => {
      const k = key("path");
      const auth = { authorization: `Bearer ${TEST_KEYS.redisToken}` };
      const set = await fetch(`${cloud.url}/redis/set/${encodeURIComponent(k)}/bar`, {
        headers: auth,
      });
      expect(await set.json()).toEqual({ result: "OK" });
      const get = await fetch(`${cloud.url}/redis/get/${encodeURIComponent(k)}`, {
        headers: auth,
      });
      expect(await get.json()).toEqual({ result: "bar" });
    });

    it("base64-encodes every string of a result when asked, and the SDK decodes it", async () => {
      const k = key("b64");
      const value = "héllo wörld — 日本語 🙂";
      await raw.set(k, value);
      const encoded = await rest("", ["GET", k], { "Upstash-Encoding": "base64" });
      expect(encoded.body).toEqual({ result: b64(value) });
      const plain = await rest("", ["GET", k]);
      expect(plain.body).toEqual({ result: value });
      const nested = await rest("", ["MGET", k, key("b64-missing")], {
        "Upstash-Encoding": "base64",
      });
      expect(nested.body).toEqual({ result: [b64(value), null] });
      const status = await rest("", ["SET", k, value], { "Upstash-Encoding": "base64" });
      expect(status.body).toEqual({ result: "OK" });
      const integer = await rest("", ["STRLEN", k], { "Upstash-Encoding": "base64" });
      expect(integer.body).toEqual({ result: Buffer.byteLength(value) });
    });

    it("round-trips non-ASCII, empty, 'OK' and JSON values through the SDK", async () => {
      const values = [
        "héllo wörld",
        "日本語テキスト",
        "emoji 🙂🚀",
        "OK",
        "",
        'line\nbreak "quoted" \\ slash',
        "0012",
      ];
      for (const [i, v] of values.entries()) {
        await raw.set(key(`rt:${i}`), v);
        expect(await raw.get(key(`rt:${i}`))).toBe(v);
      }
      expect(await raw.mget(...values.map((_, i) => key(`rt:${i}`)))).toEqual(values);

      await redis.set(key("rt:json"), { name: "Zoë", tags: ["ü", "ß"], n: 3 });
      expect(await redis.get(key("rt:json"))).toEqual({ name: "Zoë", tags: ["ü", "ß"], n: 3 });

      await raw.hset(key("rt:hash"), { fïeld: "välue", emoji: "🙂" });
      expect(await redis.hgetall(key("rt:hash"))).toEqual({ fïeld: "välue", emoji: "🙂" });
      expect(await direct.hgetall(key("rt:hash"))).toEqual(["fïeld", "välue", "emoji", "🙂"]);
      expect(await raw.eval("return {ARGV[1], {ARGV[1]}}", [], ["ñandú"])).toEqual([
        "ñandú",
        ["ñandú"],
      ]);
    });
  });

  describe("strings, counters and keys", () => {
    it("stores strings and counts with INCR/INCRBY/DECR/DECRBY/INCRBYFLOAT", async () => {
      const n = key("counter");
      expect(await raw.incr(n)).toBe(1);
      expect(await raw.incrby(n, 10)).toBe(11);
      expect(await raw.decr(n)).toBe(10);
      expect(await raw.decrby(n, 4)).toBe(6);
      expect(await raw.incrbyfloat(n, 1.5)).toBe("7.5");
      expect(await raw.get(n)).toBe("7.5");
      await expect(raw.incr(n)).rejects.toThrow(/ERR value is not an integer or out of range/);
      await raw.set(key("big"), "9223372036854775807");
      await expect(raw.incr(key("big"))).rejects.toThrow(/overflow/);
    });

    it("implements SET NX/XX/GET/KEEPTTL and GETDEL/GETEX/MSET/MGET", async () => {
      const k = key("set-opts");
      expect(await raw.set(k, "a", { xx: true })).toBeNull();
      expect(await raw.set(k, "a", { nx: true })).toBe("OK");
      expect(await raw.set(k, "b", { nx: true })).toBeNull();
      expect(await raw.set(k, "c", { xx: true, get: true })).toBe("a");
      expect(await raw.set(k, "d", { get: true, ex: 100 })).toBe("c");
      expect(await raw.set(k, "e", { keepTtl: true })).toBe("OK");
      expect(await raw.ttl(k)).toBeGreaterThan(90);
      expect(await raw.set(k, "f")).toBe("OK");
      expect(await raw.ttl(k)).toBe(-1);
      expect(await raw.getex(k, { px: 60_000 })).toBe("f");
      expect(await raw.pttl(k)).toBeGreaterThan(50_000);
      expect(await raw.getex(k, { persist: true })).toBe("f");
      expect(await raw.ttl(k)).toBe(-1);
      expect(await raw.getdel(k)).toBe("f");
      expect(await raw.getdel(k)).toBeNull();

      expect(await raw.mset({ [key("m1")]: "1", [key("m2")]: "2" })).toBe("OK");
      expect(await raw.mget(key("m1"), key("nope"), key("m2"))).toEqual(["1", null, "2"]);
      expect(await raw.exists(key("m1"), key("m2"), key("nope"), key("m1"))).toBe(3);
      expect(await raw.type(key("m1"))).toBe("string");
      expect(await raw.type(key("nope"))).toBe("none");
      expect(await raw.del(key("m1"), key("nope"))).toBe(1);
      expect(await raw.unlink(key("m2"))).toBe(1);
      expect(await raw.exists(key("m1"), key("m2"))).toBe(0);
    });

    it("expires keys after a short PX and reports TTL, PTTL and PERSIST", async () => {
      const k = key("ttl");
      await raw.set(k, "v", { px: 400 });
      const pttl = await raw.pttl(k);
      expect(pttl).toBeGreaterThan(0);
      expect(pttl).toBeLessThanOrEqual(400);
      expect(await raw.ttl(k)).toBe(0);
      await sleep(500);
      expect(await raw.get(k)).toBeNull();
      expect(await raw.exists(k)).toBe(0);
      expect(await raw.pttl(k)).toBe(-2);

      await raw.set(k, "v", { ex: 100 });
      expect(await raw.persist(k)).toBe(1);
      expect(await raw.persist(k)).toBe(0);
      expect(await raw.ttl(k)).toBe(-1);

      await raw.set(key("counted"), "1", { px: 400 });
      expect(await raw.incr(key("counted"))).toBe(2);
      expect(await raw.pttl(key("counted"))).toBeGreaterThan(0);
      await sleep(500);
      expect(await raw.get(key("counted"))).toBeNull();
    });

    it("honours EXPIRE NX/XX/GT/LT and deletes keys given a time in the past", async () => {
      const k = key("expire");
      expect(await raw.expire(k, 10)).toBe(0);
      await raw.set(k, "v");
      expect(await raw.expire(k, 100, "XX")).toBe(0);
      expect(await raw.expire(k, 100, "GT")).toBe(0);
      expect(await raw.expire(k, 100, "NX")).toBe(1);
      expect(await raw.expire(k, 200, "NX")).toBe(0);
      expect(await raw.expire(k, 50, "GT")).toBe(0);
      expect(await raw.expire(k, 300, "GT")).toBe(1);
      expect(await raw.expire(k, 400, "LT")).toBe(0);
      expect(await raw.expire(k, 30, "LT")).toBe(1);
      expect(await raw.ttl(k)).toBeLessThanOrEqual(30);
      expect(await raw.pexpire(k, 60_000, "XX")).toBe(1);
      expect(await raw.pttl(k)).toBeGreaterThan(50_000);
      expect(await raw.expireat(k, Math.floor(Date.now() / 1000) - 10)).toBe(1);
      expect(await raw.exists(k)).toBe(0);
      await expect(rest("", ["EXPIRE", k, 10, "NX", "XX"])).resolves.toMatchObject({
        status: 400,
      });
    });

    it("walks every key with SCAN MATCH/COUNT, even while deleting what it finds", async () => {
      const keys = Array.from({ length: 25 }, (_, i) => key(`scan:${i}`));
      await raw.mset(Object.fromEntries(keys.map((k) => [k, "x"])));
      await raw.hset(key("scan:hash"), { a: "1" });

      expect((await raw.keys(key("scan:*"))).sort()).toEqual([...keys, key("scan:hash")].sort());

      const seen = new Set<string>();
      let cursor = "0";
      let steps = 0;
      do {
        const [next, found] = await raw.scan(cursor, {
          match: key("scan:*"),
          count: 5,
          type: "string",
        });
        for (const k of found) seen.add(k);
        cursor = String(next);
        steps++;
      } while (cursor !== "0");
      expect([...seen].sort()).toEqual([...keys].sort());
      expect(steps).toBeGreaterThan(1);

      let deleted = 0;
      do {
        const [next, found] = await raw.scan(cursor, { match: key("scan:*"), count: 5 });
        if (found.length > 0) deleted += await raw.del(...found);
        cursor = String(next);
      } while (cursor !== "0");
      expect(deleted).toBe(26);
      expect(await raw.keys(key("scan:*"))).toEqual([]);
    });
  });

  describe("hashes, sets and sorted sets", () => {
    it("implements HSET/HGET/HMGET/HGETALL/HDEL/HINCRBY/HEXISTS/HLEN", async () => {
      const h = key("hash");
      expect(await raw.hset(h, { a: "1", b: "x" })).toBe(2);
      expect(await raw.hset(h, { a: "2", c: "y" })).toBe(1);
      expect(await raw.hget(h, "a")).toBe("2");
      expect(await raw.hget(h, "zz")).toBeNull();
      expect(await raw.hmget(h, "a", "zz", "c")).toEqual(["2", null, "y"]);
      expect(await redis.hmget(h, "a", "zz", "c")).toEqual({ a: 2, zz: null, c: "y" });
      expect(await raw.hgetall(h)).toEqual(["a", "2", "b", "x", "c", "y"]);
      expect(await raw.hincrby(h, "a", 5)).toBe(7);
      await expect(raw.hincrby(h, "b", 1)).rejects.toThrow(/hash value is not an integer/);
      expect(await raw.hexists(h, "b")).toBe(1);
      expect(await raw.hdel(h, "b", "zz")).toBe(1);
      expect(await raw.hexists(h, "b")).toBe(0);
      expect(await raw.hlen(h)).toBe(2);
      expect(await raw.hdel(h, "a", "c")).toBe(2);
      expect(await raw.exists(h)).toBe(0);
      expect(await raw.hgetall(key("no-hash"))).toEqual([]);
      expect(await redis.hgetall(key("no-hash"))).toBeNull();
    });

    it("implements SADD/SMEMBERS/SREM/SISMEMBER/SMISMEMBER/SCARD", async () => {
      const s = key("set");
      expect(await raw.sadd(s, "a", "b", "a")).toBe(2);
      expect((await raw.smembers(s)).sort()).toEqual(["a", "b"]);
      expect(await raw.sismember(s, "a")).toBe(1);
      expect(await raw.smismember(s, ["a", "z"])).toEqual([1, 0]);
      expect(await raw.srem(s, "a", "z")).toBe(1);
      expect(await raw.scard(s)).toBe(1);
    });

    it("implements ZADD options, ZRANGE forms, ZSCORE/ZINCRBY/ZREM/ZCARD", async () => {
      const z = key("zset");
      expect(await raw.zadd(z, { score: 2, member: "b" }, { score: 1, member: "a" })).toBe(2);
      expect(await raw.zadd(z, { nx: true }, { score: 9, member: "a" })).toBe(0);
      expect(await raw.zadd(z, { xx: true, ch: true }, { score: 3, member: "a" })).toBe(1);
      expect(await raw.zadd(z, { gt: true }, { score: 1, member: "a" })).toBe(0);
      expect(await raw.zadd(z, { score: 0.5, member: "c" })).toBe(1);
      expect(await raw.zscore(z, "a")).toBe("3");
      expect(await raw.zincrby(z, 1.5, "c")).toBe("2");
      // Equal scores order by member (b before c), reversed under REV.
      expect(await raw.zrange(z, 0, -1)).toEqual(["b", "c", "a"]);
      expect(await raw.zrange(z, 0, -1, { withScores: true })).toEqual([
        "b",
        "2",
        "c",
        "2",
        "a",
        "3",
      ]);
      expect(await raw.zrange(z, 0, 1, { rev: true })).toEqual(["a", "c"]);
      expect(await raw.zrange(z, "(2", "+inf", { byScore: true })).toEqual(["a"]);
      expect(await raw.zrange(z, "+inf", 2, { byScore: true, rev: true })).toEqual(["a", "c", "b"]);
      expect(await raw.zrange(z, "-inf", "+inf", { byScore: true, offset: 1, count: 1 })).toEqual([
        "c",
      ]);
      expect(await raw.zcard(z)).toBe(3);
      expect(await raw.zrem(z, "a", "zz")).toBe(1);
      expect(await raw.zscore(z, "a")).toBeNull();
    });
  });

  describe("pipeline and multi-exec", () => {
    it("runs a pipeline in order and reports each command's error separately", async () => {
      const k = key("pipe");
      const results = await raw.pipeline().set(k, "a").incr(k).get(k).exec({ keepErrors: true });
      expect(results[0]).toMatchObject({ result: "OK" });
      expect(results[1]?.error).toMatch(/ERR value is not an integer or out of range/);
      expect(results[2]).toMatchObject({ result: "a" });
      await expect(raw.pipeline().set(k, "a").incr(k).exec()).rejects.toThrow(
        /Command 2 \[ incr \] failed/,
      );
    });

    it("runs multi-exec atomically and answers each result", async () => {
      const k = key("multi");
      const results = await redis.multi().set(k, 1).incr(k).incrby(k, 5).get(k).exec();
      expect(results).toEqual(["OK", 2, 7, 7]);
    });

    it("discards the whole transaction when a command is rejected while queueing", async () => {
      const k = key("multi-abort");
      const res = await rest("/multi-exec", [["SET", k, "v"], ["NOSUCHCMD"]]);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatch(/^EXECABORT/);
      expect(await raw.get(k)).toBeNull();
    });

    it("keeps parallel multi-exec transactions from interleaving", async () => {
      const k = key("multi-race");
      const rounds = 30;
      const all = await Promise.all(
        Array.from({ length: rounds }, () => raw.multi().incr(k).incr(k).exec()),
      );
      // Each transaction sees its two increments back to back: (odd, even) pairs.
      for (const [first, second] of all as [number, number][]) {
        expect(first % 2).toBe(1);
        expect(second).toBe(first + 1);
      }
      expect(await raw.get(k)).toBe(String(rounds * 2));
    });
  });

  describe("Lua scripting", () => {
    it.each([
      ["return 42", 42],
      ["return 3.99", 3],
      ["return -3.99", -3],
      ["return 'héllo'", "héllo"],
      ["return true", 1],
      ["return false", null],
      ["return nil", null],
      ["return {ok='FINE'}", "FINE"],
      ["return redis.status_reply('PONGISH')", "PONGISH"],
      ["return {1, 'two', {3, 'four'}, false, true}", [1, "two", [3, "four"], null, 1]],
      ["return {1, 2, nil, 4}", [1, 2]],
      ["return {}", []],
      ["return {KEYS[1], ARGV[1], #KEYS, #ARGV}", ["k1", "a1", 1, 2]],
      [
        "return {tostring(10 / 2), tostring(1 / 3), tostring(2 ^ 53)}",
        ["5", "0.33333333333333", "9.007199254741e+15"],
      ],
    ])("converts the script result of `%s` like Redis", async (script, expected) => {
      expect(await raw.eval(script, ["k1"], ["a1", "a2"])).toEqual(expected);
    });

    it("answers a returned error table as an error reply", async () => {
      await expect(raw.eval("return redis.error_reply('MYERR boom')", [], [])).rejects.toThrow(
        /MYERR boom/,
      );
      await expect(raw.eval("return {err='plain failure'}", [], [])).rejects.toThrow(
        /plain failure/,
      );
    });

    it("converts Redis replies to Lua types in redis.call and redis.pcall", async () => {
      const script = `
        local k = KEYS[1]
        redis.call('SET', k, '10')
        local nilv = redis.call('GET', KEYS[2])
        local int = redis.call('INCR', k)
        local bulk = redis.call('GET', k)
        local status = redis.call('SET', k, 'x')
        local arr = redis.call('HMGET', KEYS[3], 'a', 'b')
        local perr = redis.pcall('INCR', k)
        local ok, caught = pcall(redis.call, 'INCR', k)
        return {type(nilv), tostring(nilv), type(int), int, type(bulk), bulk, type(status),
          status.ok, type(arr), #arr, tostring(arr[1]), type(perr), perr.err, tostring(ok),
          type(caught), caught}`;
      const notInt = "ERR value is not an integer or out of range";
      expect(await raw.eval(script, [key("lua"), key("lua-nil"), key("lua-h")], [])).toEqual([
        "boolean",
        "false",
        "number",
        11,
        "string",
        "11",
        "table",
        "OK",
        "table",
        2,
        "false",
        "table",
        notInt,
        "false",
        "string",
        notInt,
      ]);
    });

    it("passes Lua numbers to commands as %.17g text", async () => {
      const k = key("lua-num");
      await raw.eval("redis.call('SET', KEYS[1], 2.5) return 1", [k], []);
      expect(await raw.get(k)).toBe("2.5");
      await raw.eval("redis.call('SET', KEYS[1], 7) return 1", [k], []);
      expect(await raw.get(k)).toBe("7");
      await raw.eval("redis.call('SET', KEYS[1], 0.1) return 1", [k], []);
      expect(await raw.get(k)).toBe("0.10000000000000001");
    });

    it("reports script errors with Redis' messages", async () => {
      await expect(raw.eval("error('boom')", [], [])).rejects.toThrow(
        /ERR user_script:1: boom script: [0-9a-f]{40}, on @user_script:1\./,
      );
      await expect(raw.eval("return (", [], [])).rejects.toThrow(
        /ERR Error compiling script \(new function\): user_script:1:/,
      );
      await expect(raw.eval("x = 1", [], [])).rejects.toThrow(/Attempt to modify a readonly table/);
      await expect(raw.eval("return undefined_thing", [], [])).rejects.toThrow(
        /Script attempted to access nonexistent global variable 'undefined_thing'/,
      );
      await raw.set(key("lua-str"), "abc");
      await expect(
        raw.eval("return redis.call('INCR', KEYS[1])", [key("lua-str")], []),
      ).rejects.toThrow(/ERR value is not an integer or out of range script: [0-9a-f]{40}/);
      await expect(raw.eval("return redis.call('NOSUCH')", [], [])).rejects.toThrow(
        /Unknown Redis command called from script/,
      );
      await expect(raw.eval("return redis.call('EVAL', 'return 1', 0)", [], [])).rejects.toThrow(
        /not allowed from script/,
      );
      await expect(
        raw.eval("return 1", ["a"], []).then(() => rest("", ["EVAL", "return 1", 2, "a"])),
      ).resolves.toMatchObject({ status: 400, body: { error: /greater than number of args/ } });
    });

    it("answers NOSCRIPT for an unknown SHA, and the SDK then falls back to EVAL", async () => {
      const body = `return 'fallback-${run}-' .. ARGV[1]`;
      const sha = sha1(body);
      expect(await raw.scriptExists(sha)).toEqual([0]);
      await expect(raw.evalsha(sha, [], ["x"])).rejects.toThrow(/NOSCRIPT/);
      const script = raw.createScript<string>(body);
      expect(await script.exec([], ["x"])).toBe(`fallback-${run}-x`);
      expect(await raw.scriptExists(sha)).toEqual([1]);
      expect(await raw.evalsha(sha, [], ["y"])).toBe(`fallback-${run}-y`);
    });

    it("loads a script with a Redis 7 shebang under the SHA-1 the SDK computes", async () => {
      const body = `#!lua flags=allow-key-locking\nreturn {ARGV[1], '${run}'}`;
      expect(await raw.scriptLoad(body)).toBe(sha1(body));
      expect(await raw.evalsha(sha1(body), [], ["z"])).toEqual(["z", run]);
      expect(await raw.eval("return redis.sha1hex('abc')", [], [])).toBe(
        "a9993e364706816aba3e25717850c26c9cd0d89d",
      );
      await expect(raw.scriptLoad("#!python\nreturn 1")).rejects.toThrow(/engine/);
      await expect(raw.scriptLoad("#!lua flags=bogus-flag\nreturn 1")).rejects.toThrow(
        /Unexpected flag in script shebang: bogus-flag/,
      );
    });

    it("runs each script atomically under parallel calls", async () => {
      const k = key("lua-race");
      const body = `
        local v = tonumber(redis.call('GET', KEYS[1]) or '0')
        redis.call('SET', KEYS[1], v + 1)
        return v + 1`;
      const n = 50;
      const returned = await Promise.all(
        Array.from({ length: n }, () => raw.eval(body, [k], []) as Promise<number>),
      );
      expect([...returned].sort((a, b) => a - b)).toEqual(
        Array.from({ length: n }, (_, i) => i + 1),
      );
      expect(await raw.get(k)).toBe(String(n));
    });
  });

  describe("@upstash/ratelimit", () => {
    it("fixedWindow lets exactly the limit through under parallel calls, then resets", async () => {
      const rl = limiter(Ratelimit.fixedWindow(5, "2 s"), "fixed");
      await atWindowStart(2000, 1200);
      const first = await successes(rl, "user", 20);
      expect(first.count).toBe(5);
      const remaining = first.results.filter((r) => r.success).map((r) => r.remaining);
      expect(remaining.sort()).toEqual([0, 1, 2, 3, 4]);
      const reset = first.results[0]!.reset;
      expect(first.results.every((r) => r.reset === reset && r.limit === 5)).toBe(true);

      await sleepUntil(reset + 30);
      expect((await successes(rl, "user", 20)).count).toBe(5);
    });

    it("slidingWindow lets exactly the limit through, and again once two windows pass", async () => {
      const rl = limiter(Ratelimit.slidingWindow(5, "2 s"), "sliding");
      await atWindowStart(2000, 1200);
      const first = await successes(rl, "user", 20);
      expect(first.count).toBe(5);
      const reset = first.results[0]!.reset;
      await sleepUntil(reset + 2000 + 30);
      expect((await successes(rl, "user", 20)).count).toBe(5);
    });

    it("tokenBucket spends the bucket under parallel calls, then refills by the rate", async () => {
      const rl = limiter(Ratelimit.tokenBucket(2, "1 s", 5), "bucket");
      const first = await successes(rl, "user", 20);
      expect(first.count).toBe(5);
      const blocked = first.results.find((r) => !r.success)!;
      await sleepUntil(blocked.reset + 30);
      expect((await successes(rl, "user", 10)).count).toBe(2);
    });

    it("takes `rate` tokens per call and refunds on a negative rate", async () => {
      const fixed = limiter(Ratelimit.fixedWindow(10, "1 h"), "rate-fixed");
      await atWindowStart(3_600_000, 10_000);
      expect(await fixed.limit("u", { rate: 4 })).toMatchObject({ success: true, remaining: 6 });
      expect(await fixed.limit("u", { rate: 7 })).toMatchObject({ success: false });
      expect(await fixed.limit("u", { rate: -7 })).toMatchObject({ success: true, remaining: 6 });
      expect(await fixed.limit("u", { rate: 6 })).toMatchObject({ success: true, remaining: 0 });
      expect(await fixed.limit("u", { rate: -1 })).toMatchObject({ success: true, remaining: 1 });

      const sliding = limiter(Ratelimit.slidingWindow(10, "1 h"), "rate-sliding");
      expect(await sliding.limit("u", { rate: 8 })).toMatchObject({ success: true, remaining: 2 });
      // Checked before counting, but a rate larger than what is left still lands (11 of 10).
      expect(await sliding.limit("u", { rate: 3 })).toMatchObject({ success: false });
      expect(await sliding.limit("u")).toMatchObject({ success: false });
      expect(await sliding.limit("u", { rate: -5 })).toMatchObject({ success: true, remaining: 4 });

      const bucket = limiter(Ratelimit.tokenBucket(1, "1 h", 5), "rate-bucket");
      expect(await bucket.limit("u", { rate: 4 })).toMatchObject({ success: true, remaining: 1 });
      expect(await bucket.limit("u", { rate: 2 })).toMatchObject({ success: false });
      expect(await bucket.limit("u", { rate: -2 })).toMatchObject({ success: true, remaining: 3 });
    });

    it.each([
      ["fixedWindow", Ratelimit.fixedWindow(5, "1 h")],
      ["slidingWindow", Ratelimit.slidingWindow(5, "1 h")],
      ["tokenBucket", Ratelimit.tokenBucket(1, "1 h", 5)],
    ])("%s reports getRemaining and resetUsedTokens starts over", async (name, algorithm) => {
      const rl = limiter(algorithm, `remaining-${name}`);
      await atWindowStart(3_600_000, 10_000);
      expect((await rl.getRemaining("u")).remaining).toBe(5);
      for (let i = 0; i < 3; i++) expect((await rl.limit("u")).success).toBe(true);
      expect((await rl.getRemaining("u")).remaining).toBe(2);
      await rl.resetUsedTokens("u");
      expect((await rl.getRemaining("u")).remaining).toBe(5);
      expect((await rl.limit("u")).remaining).toBe(4);
    });
  });

  describe("control switches", () => {
    it("'down' drops the connection so the SDK sees a network error until reset", async () => {
      const k = key("down");
      const client = new Redis({
        url: `${cloud.url}/redis`,
        token: TEST_KEYS.redisToken,
        retry: false,
      });
      await control("/fault", { mode: "down", match: k });
      try {
        const err = await client.get(k).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(Error);
        expect(err).not.toBeInstanceOf(errors.UpstashError);
        // Only requests mentioning the match string are hit.
        expect(await client.set(key("not-down"), "ok")).toBe("OK");
      } finally {
        await control("/fault", { mode: "none", match: k });
      }
      expect(await client.get(k)).toBeNull();
    });

    it("'error' answers HTTP 500 with an Upstash-style error", async () => {
      await control("/fault", { mode: "error" });
      try {
        await expect(raw.get(key("err"))).rejects.toThrow(/ERR service unavailable/);
        const res = await rest("", ["PING"]);
        expect(res.status).toBe(500);
        expect(res.body.error).toMatch(/^ERR /);
      } finally {
        await control("/fault", { mode: "none" });
      }
      expect(await raw.ping()).toBe("PONG");
    });

    it("'slow' delays matching requests by the given ms", async () => {
      const k = key("slow");
      await control("/fault", { mode: "slow", ms: 600, match: k });
      try {
        const started = Date.now();
        await raw.get(k);
        expect(Date.now() - started).toBeGreaterThanOrEqual(590);
      } finally {
        await control("/fault", { mode: "none" });
      }
      const started = Date.now();
      await raw.get(k);
      expect(Date.now() - started).toBeLessThan(400);
    });

    it("/stats counts commands per name across single, pipeline and multi-exec calls", async () => {
      await control("/stats/reset", {});
      await direct.set(key("stats"), "1");
      await direct.pipeline().get(key("stats")).incr(key("stats")).exec();
      await direct.multi().incr(key("stats")).get(key("stats")).exec();
      const stats = await control("/stats");
      expect(stats).toMatchObject({
        backend: config.redisUrl ? "redis" : "embedded",
        requests: { single: 1, pipeline: 1, multi_exec: 1 },
        commands: { SET: 1, GET: 2, INCR: 2 },
      });
    });

    it("the Worker's client sends each command as its own request, never in another caller's pipeline", async () => {
      // The SDK's default auto-pipeline would send these as two pipelines (reads, writes), so
      // commands of unrelated requests of one isolate would share an HTTP call and its failure.
      await control("/stats/reset", {});
      await Promise.all([raw.get(key("own:a")), raw.set(key("own:b"), "1"), raw.get(key("own:c"))]);
      const stats = await control("/stats");
      expect(stats).toMatchObject({ requests: { single: 3, pipeline: 0, multi_exec: 0 } });
    });
  });
});

describe("embedded store internals", () => {
  let cloud: LocalCloud;
  let redis: Redis;

  beforeAll(async () => {
    cloud = await startLocalCloud(embeddedConfig, [createRedisService]);
    redis = new Redis({ url: `${cloud.url}/redis`, token: TEST_KEYS.redisToken });
  });
  afterAll(async () => cloud?.close());

  it("FLUSHDB empties the store and DBSIZE counts only live keys", async () => {
    await redis.set("a", "1");
    await redis.set("b", "2", { px: 500 });
    await redis.hset("c", { f: "v" });
    expect(await redis.dbsize()).toBe(3);
    await sleep(600);
    expect(await redis.dbsize()).toBe(2);
    expect(await redis.flushdb()).toBe("OK");
    expect(await redis.dbsize()).toBe(0);
  });

  it("sweeps expired keys that nobody reads", async () => {
    const store = await EmbeddedRedis.create({ sweepIntervalMs: 20 });
    try {
      store.execute(["SET", "gone", "v", "PX", "30"]);
      store.execute(["SET", "kept", "v"]);
      expect(store.keyspace.storedCount).toBe(2);
      await sleep(120);
      expect(store.keyspace.storedCount).toBe(1);
    } finally {
      await store.close();
    }
  });

  it("stops a runaway script at its time limit and keeps serving", async () => {
    const store = await EmbeddedRedis.create({ scriptTimeoutMs: 200 });
    try {
      expect(() => store.execute(["EVAL", "while true do end", "0"])).toThrow(/time limit/);
      expect(store.execute(["EVAL", "return 7", "0"])).toBe(7);
    } finally {
      await store.close();
    }
  });

  it("keeps no script state between runs on the shared Lua VM", async () => {
    const store = await EmbeddedRedis.create();
    try {
      expect(() => store.execute(["EVAL", "leak = 1 return 1", "0"])).toThrow(/readonly/);
      expect(() => store.execute(["EVAL", "string.leak = 1 return 1", "0"])).toThrow(/readonly/);
      expect(store.execute(["EVAL", "return type(string.leak)", "0"])).toBe("nil");
    } finally {
      await store.close();
    }
  });
});
