import { globMatch } from "./glob.ts";
import { Errors, RedisError } from "./reply.ts";

/** The value types the embedded store holds (what TYPE reports). */
export interface ValueTypes {
  string: string;
  hash: Map<string, string>;
  set: Set<string>;
  zset: Map<string, number>;
  list: string[];
}
export type ValueType = keyof ValueTypes;

export interface Entry<T extends ValueType = ValueType> {
  type: T;
  value: ValueTypes[T];
  /** Unix milliseconds after which the key no longer exists; undefined = persistent. */
  expiresAt: number | undefined;
  /** Insertion order; SCAN cursors are built on it so keys deleted mid-scan don't shift others. */
  seq: number;
}

/**
 * The embedded database: one keyspace with lazy expiry on every access plus a periodic sweep,
 * like Redis' own passive + active expiry.
 */
export class Keyspace {
  readonly now: () => number;
  #entries = new Map<string, Entry>();
  #seq = 0;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** The live entry for `key`, deleting it first if its TTL has passed. */
  lookup(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** The value of `key` if it has type `type`; undefined if missing; WRONGTYPE otherwise. */
  read<T extends ValueType>(key: string, type: T): ValueTypes[T] | undefined {
    const entry = this.lookup(key);
    if (!entry) return undefined;
    if (entry.type !== type) throw new RedisError(Errors.wrongType);
    return entry.value as ValueTypes[T];
  }

  /** Like `read`, but creates an empty container when the key is missing. */
  readOrCreate<T extends Exclude<ValueType, "string">>(key: string, type: T): ValueTypes[T] {
    const existing = this.read(key, type);
    if (existing !== undefined) return existing;
    const value = emptyValue(type);
    this.#entries.set(key, { type, value, expiresAt: undefined, seq: ++this.#seq });
    return value;
  }

  /** Stores a string; keeps the TTL only when asked (SET KEEPTTL, INCR, APPEND). */
  writeString(key: string, value: string, keepTtl = false): void {
    const entry = this.lookup(key);
    if (entry) {
      entry.type = "string";
      entry.value = value;
      if (!keepTtl) entry.expiresAt = undefined;
      return;
    }
    this.#entries.set(key, { type: "string", value, expiresAt: undefined, seq: ++this.#seq });
  }

  /** Drops a container key once its last element is gone (Redis never keeps empty ones). */
  dropIfEmpty(key: string): void {
    const entry = this.#entries.get(key);
    if (!entry) return;
    const v = entry.value;
    const size = typeof v === "string" ? 1 : Array.isArray(v) ? v.length : v.size;
    if (size === 0) this.#entries.delete(key);
  }

  /** Moves a key with its TTL (RENAME); the destination is overwritten. */
  rename(from: string, to: string): boolean {
    const entry = this.lookup(from);
    if (!entry) return false;
    if (from === to) return true;
    this.#entries.delete(from);
    this.#entries.delete(to);
    this.#entries.set(to, { ...entry, seq: ++this.#seq });
    return true;
  }

  delete(key: string): boolean {
    return this.lookup(key) !== undefined && this.#entries.delete(key);
  }

  /** Sets or clears the absolute expiry; a time not in the future deletes the key. */
  setExpiry(key: string, expiresAt: number | undefined): void {
    const entry = this.lookup(key);
    if (!entry) return;
    if (expiresAt !== undefined && expiresAt <= this.now()) {
      this.#entries.delete(key);
      return;
    }
    entry.expiresAt = expiresAt;
  }

  /** Keys held in memory, expired or not; lets tests see the sweep without a lazy lookup. */
  get storedCount(): number {
    return this.#entries.size;
  }

  get size(): number {
    this.sweep();
    return this.#entries.size;
  }

  flush(): void {
    this.#entries.clear();
  }

  /** Removes every expired key (the active expiry cycle). */
  sweep(): number {
    const now = this.now();
    let removed = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.expiresAt !== undefined && entry.expiresAt <= now) {
        this.#entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  keys(pattern: string): string[] {
    const out: string[] = [];
    for (const key of [...this.#entries.keys()]) {
      if (globMatch(pattern, key) && this.lookup(key)) out.push(key);
    }
    return out;
  }

  /**
   * One SCAN step: examines up to `count` keys after `cursor` and returns the next cursor
   * (0 when done). A key present for the whole scan is returned at least once.
   */
  scan(
    cursor: number,
    count: number,
    match: string | undefined,
    type: string | undefined,
  ): [number, string[]] {
    const found: string[] = [];
    let examined = 0;
    let last = 0;
    for (const [key, entry] of this.#entries) {
      if (entry.seq <= cursor) continue;
      if (examined >= count) return [last, found];
      examined++;
      last = entry.seq;
      if (!this.lookup(key)) continue;
      if (type !== undefined && entry.type !== type) continue;
      if (match !== undefined && !globMatch(match, key)) continue;
      found.push(key);
    }
    return [0, found];
  }
}

function emptyValue<T extends ValueType>(type: T): ValueTypes[T] {
  const values: { [K in ValueType]: () => ValueTypes[K] } = {
    string: () => "",
    hash: () => new Map(),
    set: () => new Set(),
    zset: () => new Map(),
    list: () => [],
  };
  return values[type]() as ValueTypes[T];
}
