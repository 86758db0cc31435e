import { globMatch } from "../glob.ts";
import type { CommandTable } from "./command.ts";
import { parseCollectionScan } from "./hashes.ts";

export const setCommands: CommandTable = {
  SADD: {
    arity: -3,
    run: (ctx, [key = "", ...members]) => {
      const set = ctx.keyspace.readOrCreate(key, "set");
      let added = 0;
      for (const m of members) {
        if (!set.has(m)) {
          set.add(m);
          added++;
        }
      }
      return added;
    },
  },
  SREM: {
    arity: -3,
    run: (ctx, [key = "", ...members]) => {
      const set = ctx.keyspace.read(key, "set");
      if (!set) return 0;
      const removed = members.filter((m) => set.delete(m)).length;
      ctx.keyspace.dropIfEmpty(key);
      return removed;
    },
  },
  SMEMBERS: { arity: 2, run: (ctx, [key = ""]) => [...(ctx.keyspace.read(key, "set") ?? [])] },
  SISMEMBER: {
    arity: 3,
    run: (ctx, [key = "", member = ""]) => (ctx.keyspace.read(key, "set")?.has(member) ? 1 : 0),
  },
  SMISMEMBER: {
    arity: -3,
    run: (ctx, [key = "", ...members]) => {
      const set = ctx.keyspace.read(key, "set");
      return members.map((m) => (set?.has(m) ? 1 : 0));
    },
  },
  SCARD: { arity: 2, run: (ctx, [key = ""]) => ctx.keyspace.read(key, "set")?.size ?? 0 },
  SSCAN: {
    arity: -3,
    run: (ctx, [key = "", _cursor, ...opts]) => {
      const match = parseCollectionScan(opts);
      const members = [...(ctx.keyspace.read(key, "set") ?? [])];
      return ["0", match === undefined ? members : members.filter((m) => globMatch(match, m))];
    },
  },
};
