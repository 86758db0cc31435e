// The books, audited after the run from the database, Redis and the stand-ins' own records,
// once the Worker's sweep has run past every reply deadline. Each invariant is a named list of
// violations; the run fails on any.
import type { HttpRecord, WriteSends } from "./client.ts";
import type { SoakStats } from "./users.ts";

interface GeminiCallRecord {
  seq: number;
  prompt: string;
  method: string;
  status: number;
  at: string;
}

/**
 * The local Gemini keeps only its newest calls (local/gemini/service.ts), fewer than a long soak
 * makes: this reads its record every few seconds from a cursor (`?since=<seq>`), so each read
 * returns only the calls since the last one, and each call is known by its seq (two identical
 * calls in one millisecond stay two). `lost` is what the record says it dropped before a read
 * reached it: 0 unless more calls than it keeps happened between two reads.
 */
export function collectGeminiCalls(cloudUrl: string, tag: string) {
  const seen = new Map<number, GeminiCallRecord>();
  let since = 0;
  let lost = 0;
  let reading: Promise<void> = Promise.resolve();
  const readOnce = async () => {
    const res = await fetch(
      `${cloudUrl}/_control/gemini/calls?since=${since}&match=${encodeURIComponent(tag)}`,
    );
    if (!res.ok) throw new Error(`gemini/calls answered ${res.status}`);
    const body = (await res.json()) as {
      calls: GeminiCallRecord[];
      next_since: number;
      lost: number;
    };
    for (const c of body.calls) seen.set(c.seq, c);
    lost += body.lost;
    since = body.next_since;
  };
  // One read at a time, so the cursor only moves forward.
  const read = () => {
    reading = reading.then(readOnce, readOnce);
    return reading;
  };
  const timer = setInterval(() => {
    read().catch(() => undefined);
  }, 3000);
  return {
    async stop(): Promise<{ calls: GeminiCallRecord[]; lost: number }> {
      clearInterval(timer);
      await read();
      return { calls: [...seen.values()], lost };
    },
  };
}

export interface AuditInput {
  /** Every Gemini call the soak's prompts caused (collectGeminiCalls). */
  geminiCalls: { calls: GeminiCallRecord[]; lost: number };
  cloudUrl: string;
  vars: Record<string, string>;
  tag: string;
  /** QSTASH_RETRIES: Gemini may be asked 1 + this many times per reply. */
  retryBudget: number;
  stats: SoakStats;
  record: HttpRecord;
}

export type Invariants = Record<string, string[]>;

type Row = Record<string, string | number | boolean | null>;

async function query(cloudUrl: string, sql: string, params: unknown[] = []): Promise<Row[]> {
  const res = await fetch(`${cloudUrl}/_control/neon/query`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ sql, params }),
  });
  const body = (await res.json()) as { rows?: Row[]; error?: unknown };
  if (!res.ok || !body.rows) throw new Error(`audit query failed: ${JSON.stringify(body.error)}`);
  return body.rows;
}

/** Today's shared daily counter (ADR 0003: the fixed-window "1 d" key, taken once per reply id). */
async function quotaCounter(vars: Record<string, string>, userId: string): Promise<number> {
  const key = `quota:prompts:${userId}:${Math.floor(Date.now() / 86_400_000)}`;
  const res = await fetch(vars.UPSTASH_REDIS_REST_URL as string, {
    method: "POST",
    headers: { authorization: `Bearer ${vars.UPSTASH_REDIS_REST_TOKEN}` },
    body: JSON.stringify(["GET", key]),
  });
  const { result } = (await res.json()) as { result: string | null };
  return Number(result ?? 0);
}

/**
 * What became of each reply's quota token (src/services/quota.ts: the take and the refund are
 * keyed by the reply id): its count once taken, "refunded" once given back, null if unknown.
 */
async function tokenMarkers(
  vars: Record<string, string>,
  replyIds: string[],
): Promise<Map<string, string | null>> {
  const out = new Map<string, string | null>();
  for (let i = 0; i < replyIds.length; i += 200) {
    const ids = replyIds.slice(i, i + 200);
    const res = await fetch(`${vars.UPSTASH_REDIS_REST_URL}/pipeline`, {
      method: "POST",
      headers: { authorization: `Bearer ${vars.UPSTASH_REDIS_REST_TOKEN}` },
      body: JSON.stringify(ids.map((id) => ["GET", `quota:prompts:token:${id}`])),
    });
    const results = (await res.json()) as { result: string | null }[];
    ids.forEach((id, j) => {
      out.set(id, results[j]?.result ?? null);
    });
  }
  return out;
}

interface StripeSubscription {
  status: string;
  items: { data: { price: { id: string } }[] };
}

/** What Stripe's current state implies (ADR 0004): Pro iff a Pro-price subscription is live. */
async function stripeTier(vars: Record<string, string>, customer: string): Promise<string> {
  const res = await fetch(
    `${vars.STRIPE_API_BASE}/v1/subscriptions?customer=${customer}&status=all&limit=100`,
    { headers: { authorization: `Bearer ${vars.STRIPE_SECRET_KEY}` } },
  );
  if (!res.ok) throw new Error(`Stripe answered ${res.status} for ${customer}'s subscriptions`);
  const { data } = (await res.json()) as { data: StripeSubscription[] };
  const pro = data.some(
    (s) =>
      ["active", "trialing", "past_due"].includes(s.status) &&
      s.items.data.some((i) => i.price.id === vars.STRIPE_PRO_PRICE_ID),
  );
  return pro ? "pro" : "basic";
}

/** The prompt's id in the soak's own words ("<tag> u3 p17"), the last one in the text. */
function promptIdIn(text: string, tag: string): string | undefined {
  const all = text.match(new RegExp(`${tag} u\\d+ p\\d+`, "g"));
  return all?.at(-1);
}

/** What cancel and regenerate left in the books (printed beside the invariants). */
export interface ReplyActionCounts {
  /** Replies a regenerate replaced (superseded_by set). */
  superseded_replies: number;
  /** Prompts with more than one reply. */
  regenerated_prompts: number;
  /** Cancelled replies that kept text: their prompt counts. */
  cancelled_with_text: number;
  /** Cancelled replies without text: their prompt was refunded. */
  cancelled_without_text: number;
}

/** Writes stored more than once, against what the client sent (copiesOf). */
interface Copies {
  /** Keyed writes stored more than once, and copies the client record has no send for. */
  keyedTwice: string[];
  /** Keyless writes stored more often than they were sent (first send plus 503 resends). */
  keylessUnexplained: string[];
  resentKeyless: number;
  resentKeyed: number;
  /** Keyless writes stored more than once, within their sends, and the copies beyond the first. */
  keylessStoredTwice: number;
  keylessExtraCopies: number;
}

/**
 * The stored writes (by the name the client gave each: a prompt's text, a create's title) against
 * what the client sent. A keyed write is stored once whatever the client resends. A keyless one
 * resent after a 503 may be stored once per send: the 503 came at the Worker's deadline while the
 * write could still commit (ADR 3).
 */
function copiesOf(stored: string[], sent: Map<string, WriteSends>): Copies {
  const byName = new Map<string, number>();
  for (const name of stored) byName.set(name, (byName.get(name) ?? 0) + 1);
  const copies: Copies = {
    keyedTwice: [],
    keylessUnexplained: [],
    resentKeyless: 0,
    resentKeyed: 0,
    keylessStoredTwice: 0,
    keylessExtraCopies: 0,
  };
  for (const s of sent.values()) {
    if (s.resentAfter503 === 0) continue;
    if (s.keyed) copies.resentKeyed++;
    else copies.resentKeyless++;
  }
  for (const [name, n] of byName) {
    if (n < 2) continue;
    const sends = sent.get(name);
    if (!sends || sends.keyed) {
      copies.keyedTwice.push(
        `"${name}" ×${n}${sends ? "" : " (the client record has no such send)"}`,
      );
    } else if (n > 1 + sends.resentAfter503) {
      copies.keylessUnexplained.push(`"${name}" ×${n} after ${sends.resentAfter503} resend(s)`);
    } else {
      copies.keylessStoredTwice++;
      copies.keylessExtraCopies += n - 1;
    }
  }
  return copies;
}

/**
 * The stored prompts (their texts) against what the client sent. A keyed prompt is stored once
 * whatever the client resends (the key's row is in the prompt's batch). Each keyless copy is a
 * prompt like any other, so the audit's other invariants (one current reply, the ledger, the
 * counter, the tokens) hold for every copy.
 */
export function promptCopies(
  storedContents: string[],
  sent: Map<string, WriteSends>,
): {
  keyedTwice: string[];
  keylessUnexplained: string[];
  counts: Record<string, number>;
} {
  const c = copiesOf(storedContents, sent);
  return {
    keyedTwice: c.keyedTwice,
    keylessUnexplained: c.keylessUnexplained,
    counts: {
      keyless_prompts_resent_after_503: c.resentKeyless,
      keyed_prompts_resent_after_503: c.resentKeyed,
      keyless_prompts_stored_more_than_once: c.keylessStoredTwice,
      keyless_extra_copies: c.keylessExtraCopies,
    },
  };
}

/**
 * The stored chatrooms (their titles) against the creates the client sent. A keyed create makes
 * one room whatever the client resends, after a 503 or a lost answer (the room and the key's
 * record are one batch, ADR 5); a keyless one resent after a 503 may make a room per send.
 */
export function chatroomCopies(
  storedTitles: string[],
  sent: Map<string, WriteSends>,
): {
  keyedTwice: string[];
  keylessUnexplained: string[];
  counts: Record<string, number>;
} {
  const c = copiesOf(storedTitles, sent);
  return {
    keyedTwice: c.keyedTwice,
    keylessUnexplained: c.keylessUnexplained,
    counts: {
      keyless_creates_resent_after_503: c.resentKeyless,
      keyed_creates_resent_after_503: c.resentKeyed,
      keyless_creates_stored_more_than_once: c.keylessStoredTwice,
      keyless_extra_rooms: c.keylessExtraCopies,
    },
  };
}

export async function audit(o: AuditInput): Promise<{
  invariants: Invariants;
  replies: Record<string, number>;
  reply_actions: ReplyActionCounts;
  /** Prompts resent after a 503, and the keyless ones that were stored more than once. */
  prompt_copies: Record<string, number>;
  /** Chatroom creates resent after a 503, and the keyless ones that made more than one room. */
  chatroom_copies: Record<string, number>;
  gemini_calls: number;
}> {
  const inv: Invariants = {
    "every accepted prompt has exactly one current reply": [],
    "a superseded reply points to a reply of its prompt, ending in the current one": [],
    "no reply left pending": [],
    "complete replies have text": [],
    "failed replies have an error code": [],
    "every reply a client was given is stored": [],
    "no keyed prompt stored twice": [],
    "a keyless prompt stored twice only when resent after a 503 (a copy per resend at most)": [],
    "no keyed chatroom create stored twice": [],
    "a keyless chatroom create stored twice only when resent after a 503 (a room per resend at most)":
      [],
    "usage ledger == prompts that count (per user and day)": [],
    "Redis daily counter == prompts that count today": [],
    "each reply's quota token is kept iff it counts, refunded otherwise": [],
    "Gemini calls <= replies x (1 + retry budget)": [],
    "no Gemini call for a refused or deduplicated prompt": [],
    "tier == Stripe's current subscription state": [],
    "no 500 response": [...o.record.errors500],
    "every retried 503 later succeeded": [...o.record.unrecovered503],
    "every 409 idempotency_in_progress settled within the client's patience": [
      ...o.record.inProgressOutlasted,
    ],
  };
  const users = await query(
    o.cloudUrl,
    "select id, tier, stripe_customer_id from users where name like $1",
    [`${o.tag} %`],
  );
  const ids = users.map((u) => u.id as string);
  const prompts = await query(
    o.cloudUrl,
    "select id, user_id, content from messages where role = 'user' and user_id in (select id from users where name like $1)",
    [`${o.tag} %`],
  );
  const replies = await query(
    o.cloudUrl,
    `select id, user_id, reply_to_id, status, error, quota_day, job_id, superseded_by,
            length(content) as text_length,
            coalesce(reply_tokens, 0) + coalesce(thought_tokens, 0) as output_tokens
       from messages where role = 'model' and user_id in (select id from users where name like $1)`,
    [`${o.tag} %`],
  );
  const rooms = await query(
    o.cloudUrl,
    "select title from chatrooms where user_id in (select id from users where name like $1)",
    [`${o.tag} %`],
  );
  const ledger = await query(
    o.cloudUrl,
    "select user_id, day, prompts from usage_daily where user_id in (select id from users where name like $1)",
    [`${o.tag} %`],
  );

  const repliesTo = new Map<string, Row[]>();
  for (const r of replies) {
    const list = repliesTo.get(r.reply_to_id as string) ?? [];
    list.push(r);
    repliesTo.set(r.reply_to_id as string, list);
  }
  const promptIds = new Set(prompts.map((p) => p.id as string));
  const one = "every accepted prompt has exactly one current reply";
  for (const p of prompts) {
    const all = repliesTo.get(p.id as string) ?? [];
    const current = all.filter((r) => r.superseded_by === null).length;
    if (current !== 1) inv[one]?.push(`${p.id}: ${current} current of ${all.length} replies`);
  }
  // Regenerate points every earlier reply of the prompt at the newest (ADR 5): following the
  // pointers from any reply must stay within the prompt and end at its current reply.
  const chain = "a superseded reply points to a reply of its prompt, ending in the current one";
  const byId = new Map(replies.map((r) => [r.id as string, r]));
  for (const r of replies) {
    if (r.superseded_by === null) continue;
    let at: Row | undefined = r;
    const seen = new Set<string>();
    while (at && at.superseded_by !== null && !seen.has(at.id as string)) {
      seen.add(at.id as string);
      const next = byId.get(at.superseded_by as string);
      if (!next || next.reply_to_id !== r.reply_to_id) {
        inv[chain]?.push(
          `${at.id} → ${at.superseded_by}: ${next ? "another prompt's" : "no such reply"}`,
        );
        at = undefined;
      } else at = next;
    }
    if (at && at.superseded_by !== null) inv[chain]?.push(`${r.id}: the pointers go round`);
  }
  for (const r of replies) {
    if (!promptIds.has(r.reply_to_id as string)) {
      inv[one]?.push(`${r.id}: answers no stored prompt`);
    }
    if (r.status === "pending") inv["no reply left pending"]?.push(`${r.id}`);
    if (r.status === "complete" && !Number(r.text_length)) {
      inv["complete replies have text"]?.push(`${r.id}`);
    }
    if (r.status === "failed" && !r.error)
      inv["failed replies have an error code"]?.push(`${r.id}`);
  }
  const stored = new Set(replies.map((r) => r.id as string));
  for (const id of o.stats.reply_ids) {
    if (!stored.has(id)) inv["every reply a client was given is stored"]?.push(id);
  }
  // A keyed prompt is stored once whatever the client resends (the key's row is in the prompt's
  // batch). A keyless one resent after a 503 may be stored once per send: the 503 came at the
  // Worker's deadline while the write could still commit (ADR 3). Each copy is a prompt like any
  // other, so the invariants above and below (one current reply, the ledger, the counter, the
  // tokens) hold for every copy.
  const copies = promptCopies(
    prompts.map((p) => p.content as string),
    o.record.prompts,
  );
  inv["no keyed prompt stored twice"]?.push(...copies.keyedTwice);
  inv[
    "a keyless prompt stored twice only when resent after a 503 (a copy per resend at most)"
  ]?.push(...copies.keylessUnexplained);
  const prompt_copies = copies.counts;
  // The same for chatroom creates, by title (each create's is its own, and a room the user
  // titled keeps it: Gemini retitles only "New chat" ones).
  const roomCopies = chatroomCopies(
    rooms.map((r) => r.title as string),
    o.record.chatrooms,
  );
  inv["no keyed chatroom create stored twice"]?.push(...roomCopies.keyedTwice);
  inv[
    "a keyless chatroom create stored twice only when resent after a 503 (a room per resend at most)"
  ]?.push(...roomCopies.keylessUnexplained);
  const chatroom_copies = roomCopies.counts;

  // ADR 0005, per reply (each regenerate spends quota, so superseded replies count too): a
  // complete reply counts; a failed one counts if it produced output (text the client saw, or
  // billed output tokens); a cancelled one counts if it kept text (src/services/chat/control.ts:
  // a cancel refunds exactly when the reply holds no text). The rest are refunded.
  const counts = (r: Row) =>
    r.status === "complete" ||
    (r.status === "failed" && (Number(r.text_length) > 0 || Number(r.output_tokens) > 0)) ||
    (r.status === "cancelled" && Number(r.text_length) > 0);
  const expected = new Map<string, number>();
  for (const r of replies) {
    if (!counts(r)) continue;
    const key = `${r.user_id} ${r.quota_day}`;
    expected.set(key, (expected.get(key) ?? 0) + 1);
  }
  // For a mismatch, what the user's replies that day look like (status:error, with/without output).
  const breakdown = (key: string) => {
    const parts: Record<string, number> = {};
    for (const r of replies) {
      if (`${r.user_id} ${r.quota_day}` !== key) continue;
      const path = r.job_id === "stream" ? "streamed " : r.job_id ? "queued " : "unpublished ";
      const was = r.superseded_by === null ? "" : "superseded ";
      const k = `${was}${path}${r.status}${r.error ? `:${r.error}` : ""}${counts(r) ? "" : " (no output)"}`;
      parts[k] = (parts[k] ?? 0) + 1;
    }
    return Object.entries(parts)
      .map(([k, n]) => `${k} ${n}`)
      .join(", ");
  };
  const booked = new Map(ledger.map((l) => [`${l.user_id} ${l.day}`, Number(l.prompts)]));
  for (const key of new Set([...expected.keys(), ...booked.keys()])) {
    const want = expected.get(key) ?? 0;
    const got = booked.get(key) ?? 0;
    if (want !== got) {
      inv["usage ledger == prompts that count (per user and day)"]?.push(
        `${key}: ledger ${got}, counting prompts ${want} (${breakdown(key)})`,
      );
    }
  }
  const today = new Date().toISOString().slice(0, 10);
  for (const id of ids) {
    const want = expected.get(`${id} ${today}`) ?? 0;
    const got = await quotaCounter(o.vars, id);
    if (want !== got) {
      inv["Redis daily counter == prompts that count today"]?.push(
        `${id}: counter ${got}, counting prompts ${want} (${breakdown(`${id} ${today}`)})`,
      );
    }
  }

  // The same rule reply by reply: names the reply behind a counter mismatch.
  const markers = await tokenMarkers(
    o.vars,
    replies.filter((r) => r.quota_day === today).map((r) => r.id as string),
  );
  for (const r of replies) {
    if (r.quota_day !== today) continue;
    const m = markers.get(r.id as string) ?? null;
    const kept = m !== null && m !== "refunded";
    if (kept !== counts(r) || m === null) {
      const path = r.job_id === "stream" ? "streamed" : r.job_id ? "queued" : "unpublished";
      inv["each reply's quota token is kept iff it counts, refunded otherwise"]?.push(
        `${r.id} (${path} ${r.status}${r.error ? `:${r.error}` : ""}, text ${r.text_length}): token ${m}`,
      );
    }
  }

  const { calls, lost } = o.geminiCalls;
  if (lost > 0) {
    inv["Gemini calls <= replies x (1 + retry budget)"]?.push(
      `the local Gemini's record dropped ${lost} call(s) before the soak read them`,
    );
  }
  // Per reply, not per prompt: a regenerate asks Gemini again for the same prompt.
  const budget = replies.length * (1 + o.retryBudget);
  if (calls.length > budget) {
    inv["Gemini calls <= replies x (1 + retry budget)"]?.push(`${calls.length} calls > ${budget}`);
  }
  const storedPrompts = new Set(
    prompts.map((p) => promptIdIn(p.content as string, o.tag)).filter(Boolean),
  );
  for (const call of calls) {
    const id = promptIdIn(call.prompt, o.tag);
    if (!id || !storedPrompts.has(id)) {
      inv["no Gemini call for a refused or deduplicated prompt"]?.push(
        `${id ?? call.prompt.slice(0, 60)}`,
      );
    }
  }

  for (const u of users) {
    const want = u.stripe_customer_id
      ? await stripeTier(o.vars, u.stripe_customer_id as string)
      : "basic";
    if (u.tier !== want) {
      inv["tier == Stripe's current subscription state"]?.push(
        `${u.id}: ${u.tier}, Stripe says ${want}`,
      );
    }
  }

  const outcomes: Record<string, number> = {};
  for (const r of replies) {
    const k = r.status === "failed" ? `failed:${r.error}` : String(r.status);
    outcomes[k] = (outcomes[k] ?? 0) + 1;
  }
  const cancelled = replies.filter((r) => r.status === "cancelled");
  const reply_actions: ReplyActionCounts = {
    superseded_replies: replies.filter((r) => r.superseded_by !== null).length,
    regenerated_prompts: prompts.filter((p) => (repliesTo.get(p.id as string)?.length ?? 0) > 1)
      .length,
    cancelled_with_text: cancelled.filter((r) => Number(r.text_length) > 0).length,
    cancelled_without_text: cancelled.filter((r) => !Number(r.text_length)).length,
  };
  return {
    invariants: inv,
    replies: outcomes,
    reply_actions,
    prompt_copies,
    chatroom_copies,
    gemini_calls: calls.length,
  };
}
