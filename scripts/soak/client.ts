// The simulated clients' HTTP layer: the typed client (src/client.ts) over a fetch that records
// every status, counts 500s, and retries a 503 (or a dropped connection on a read) the way a
// well-behaved client does, recording whether the retried request finally succeeded.
import { type ApiClient, createClient } from "../../src/client.ts";

export interface HttpRecord {
  statuses: Record<string, number>;
  /** Requests answered 500 (each one a violation). */
  errors500: string[];
  /** Requests that got a 503 and were retried: how many ended in a non-5xx answer. */
  retried503: number;
  recovered503: number;
  /** Retried 503s that never recovered within the client's patience. */
  unrecovered503: string[];
  requests: number;
}

export function newHttpRecord(): HttpRecord {
  return {
    statuses: {},
    errors500: [],
    retried503: 0,
    recovered503: 0,
    unrecovered503: [],
    requests: 0,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Attempts after the first 503: 250 ms doubling to 2 s, about 25 s in all (faults last ≤ 3 s). */
const MAX_RETRIES = 14;

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
  if (/^POST \/chatroom\/[^/]+\/message$/.test(request)) return status === 409 || status === 429;
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

/** A fetch that retries 503s; `record` collects what the simulated clients saw. */
export function retryingFetch(record: HttpRecord): typeof fetch {
  return async (input, init) => {
    let saw503 = false;
    for (let attempt = 0; ; attempt++) {
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
        record.errors500.push(
          `${describe(input, init)}: ${(await res.clone().text()).slice(0, 200)}`,
        );
      }
      if (res.status !== 503) {
        if (saw503) {
          if (succeeded(describe(input, init), res.status)) record.recovered503++;
          else record.unrecovered503.push(`${describe(input, init)} ended ${res.status}`);
        }
        return res;
      }
      if (!saw503) record.retried503++;
      saw503 = true;
      if (attempt >= MAX_RETRIES) {
        record.unrecovered503.push(`${describe(input, init)} still 503 after ${attempt} retries`);
        return res;
      }
      await res.body?.cancel();
      await sleep(Math.min(2000, 250 * 2 ** attempt));
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
