// The simulated clients' HTTP layer: the typed client (src/client.ts) over a fetch that records
// every status, counts 500s, and retries a 503 the way a well-behaved client does, recording
// whether the retried request finally succeeded. A 503 is resent whether or not the request has
// an Idempotency-Key, as a naive client does: a keyless prompt whose write committed after its
// 503 (ADR 3: the batch may commit until ~15 s, the 503 comes at 10 s) is then stored twice,
// which is what Idempotency-Key is for, and so is a keyless chatroom create. The record says
// which prompts and which creates were resent, so the audit holds keyed ones to "never twice"
// and allows a keyless copy per resend only. A 409 idempotency_in_progress ("still being
// processed") is resent too, after its Retry-After, for up to IN_PROGRESS_RESEND_MS
// (scripts/support/in-progress.ts, shared with scripts/load.ts).
import { type ApiClient, createClient } from "../../src/client.ts";
import {
  IN_PROGRESS_RESEND_MS,
  InProgressResends,
  isIdempotencyInProgress,
} from "../support/in-progress.ts";

export interface HttpRecord {
  statuses: Record<string, number>;
  /** Requests answered 500 (each one a violation). */
  errors500: string[];
  /** Requests that got a 503 and were retried: how many ended in a non-5xx answer. */
  retried503: number;
  recovered503: number;
  /** Retried 503s that never recovered within the client's patience. */
  unrecovered503: string[];
  /** Resends after a 409 idempotency_in_progress, and answers still 409 when patience ran out. */
  resentInProgress: number;
  inProgressOutlasted: string[];
  /** Each prompt sent (by its text): whether it had an Idempotency-Key, and its 503 resends. */
  prompts: Map<string, WriteSends>;
  /** Each chatroom create sent (by its title, unique to one create of the soak): the same. */
  chatrooms: Map<string, WriteSends>;
  requests: number;
}

/** One write the client sent (a prompt, a chatroom create), however many times. */
export interface WriteSends {
  keyed: boolean;
  /** Times the client sent the write again after a 503 (each could be stored if keyless). */
  resentAfter503: number;
}

export function newHttpRecord(): HttpRecord {
  return {
    statuses: {},
    errors500: [],
    retried503: 0,
    recovered503: 0,
    unrecovered503: [],
    resentInProgress: 0,
    inProgressOutlasted: [],
    prompts: new Map(),
    chatrooms: new Map(),
    requests: 0,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Attempts after the first 503: 250 ms doubling to 2 s, about 25 s in all (faults last ≤ 3 s). */
const MAX_RETRIES = 14;
const PROMPT_PATH = /^POST \/chatroom\/[^/]+\/message$/;

/**
 * The write a request makes that the audit counts copies of, by the field that names it (a
 * prompt's text, a create's title), whether it carries an Idempotency-Key, and the record's list
 * for it; null for any other request.
 */
function writeOf(
  record: HttpRecord,
  request: string,
  init?: RequestInit,
): { name: string; keyed: boolean; sent: Map<string, WriteSends> } | null {
  const kind = PROMPT_PATH.test(request)
    ? { field: "content", sent: record.prompts }
    : request === "POST /chatroom"
      ? { field: "title", sent: record.chatrooms }
      : null;
  if (!kind || typeof init?.body !== "string") return null;
  const name = (JSON.parse(init.body) as Record<string, unknown>)[kind.field];
  if (typeof name !== "string") return null;
  return { name, keyed: new Headers(init.headers).has("idempotency-key"), sent: kind.sent };
}

/** A 409 idempotency_in_progress: the same key's request is still being written. */
async function inProgress(res: Response): Promise<boolean> {
  if (res.status !== 409) return false;
  const body: unknown = await res
    .clone()
    .json()
    .catch(() => null);
  return isIdempotencyInProgress(res.status, body);
}

function describe(input: RequestInfo | URL, init?: RequestInit): string {
  const url = new URL(input instanceof Request ? input.url : String(input));
  return `${init?.method ?? "GET"} ${url.pathname}`;
}

/**
 * What counts as the retried request succeeding: a 2xx, or the answers the request could get
 * anyway (a prompt or a regenerate: 409 pending limit or key in use, 429 daily limit; a reply's
 * cancel: 409 reply finished; checkout: 409 already Pro; a subscription's cancel: 404/409
 * nothing to cancel). A 429 on send-otp after a 503, say, means the failed attempt used up a
 * limit: not a success.
 */
function succeeded(request: string, status: number): boolean {
  if (status >= 200 && status < 300) return true;
  if (PROMPT_PATH.test(request)) return status === 409 || status === 429;
  // A regenerate meets the same limits as a prompt; a cancel may find the reply finished.
  if (/^POST \/chatroom\/[^/]+\/messages\/[^/]+\/regenerate$/.test(request)) {
    return status === 409 || status === 429;
  }
  if (/^POST \/chatroom\/[^/]+\/messages\/[^/]+\/cancel$/.test(request)) return status === 409;
  // Already Pro (checkout) or nothing to cancel: what the user's state answers anyway.
  if (request === "POST /subscribe/pro") return status === 409;
  if (request === "POST /subscription/cancel") return status === 404 || status === 409;
  return false;
}

/** A fetch that retries 503s and 409 idempotency_in_progress; `record` collects what it saw. */
export function retryingFetch(record: HttpRecord): typeof fetch {
  return async (input, init) => {
    const request = describe(input, init);
    const write = writeOf(record, request, init);
    // A prompt's text and a create's title are unique to one write of the soak (users.ts
    // promptText, newChatroom); a keyed repeat of it (a client that lost the first answer) adds
    // its resends to the same entry.
    const sends: WriteSends = write?.sent.get(write.name) || {
      keyed: write?.keyed ?? false,
      resentAfter503: 0,
    };
    if (write) write.sent.set(write.name, sends);
    let saw503 = false;
    const inProgressResends = new InProgressResends();
    for (let attempt = 0; ; ) {
      let res: Response;
      try {
        res = await fetch(input as RequestInfo, init);
      } catch (err) {
        // The caller's own abort (a client leaving mid-stream) is not the server's failure.
        if (init?.signal?.aborted) throw err;
        record.statuses.network = (record.statuses.network ?? 0) + 1;
        throw err;
      }
      record.requests++;
      record.statuses[res.status] = (record.statuses[res.status] ?? 0) + 1;
      if (res.status === 500) {
        record.errors500.push(`${request}: ${(await res.clone().text()).slice(0, 200)}`);
      }
      if (await inProgress(res)) {
        // Not a failure: the API asks to retry after Retry-After. Bounded by time, not by
        // MAX_RETRIES.
        const wait = inProgressResends.next(res.headers.get("retry-after"));
        if (wait !== null) {
          record.resentInProgress++;
          await res.body?.cancel();
          await sleep(wait);
          continue;
        }
        record.inProgressOutlasted.push(
          `${request} still 409 idempotency_in_progress after ${IN_PROGRESS_RESEND_MS / 1000} s`,
        );
      }
      if (res.status !== 503) {
        if (saw503) {
          if (succeeded(request, res.status)) record.recovered503++;
          else record.unrecovered503.push(`${request} ended ${res.status}`);
        }
        return res;
      }
      if (!saw503) record.retried503++;
      saw503 = true;
      if (attempt >= MAX_RETRIES) {
        record.unrecovered503.push(`${request} still 503 after ${attempt} retries`);
        return res;
      }
      await res.body?.cancel();
      await sleep(Math.min(2000, 250 * 2 ** attempt));
      attempt++;
      sends.resentAfter503++;
    }
  };
}

/** A typed API client for one simulated user (its own client address, its own token). */
export function clientFor(
  baseUrl: string,
  record: HttpRecord,
  clientIp: string,
  token?: string,
): ApiClient {
  return createClient(baseUrl, token, {
    fetch: retryingFetch(record),
    headers: { "cf-connecting-ip": clientIp },
  });
}
