import type { RedisClient } from "./redis";

export const OTP_LENGTH = 6;
const OTP_SPACE = 10 ** OTP_LENGTH;
// Largest multiple of 10^6 that fits in a uint32: values at or above it are redrawn, so every
// code is equally likely (a bare `% 1e6` would favour the low codes).
const UNBIASED_LIMIT = Math.floor(2 ** 32 / OTP_SPACE) * OTP_SPACE;

/** A 6-digit code (leading zeros kept) from the platform CSPRNG with rejection sampling. */
export function generateOtp(): string {
  const buf = new Uint32Array(1);
  for (;;) {
    crypto.getRandomValues(buf);
    const n = buf[0] as number;
    if (n < UNBIASED_LIMIT) return String(n % OTP_SPACE).padStart(OTP_LENGTH, "0");
  }
}

export type OtpPurpose = "login" | "password_reset";

const encoder = new TextEncoder();
const macKeys = new Map<string, Promise<CryptoKey>>();

function macKey(secret: string): Promise<CryptoKey> {
  // Isolate-lifetime cache: importing the same HMAC key on every request is wasted work.
  let key = macKeys.get(secret);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    );
    macKeys.set(secret, key);
  }
  return key;
}

/**
 * Keyed hash of a code, bound to its number and purpose: a code for one (number, purpose) can
 * never match another, and a leaked store cannot be brute-forced offline without the key.
 */
export async function otpMac(
  secret: string,
  input: { mobileNumber: string; purpose: OtpPurpose; code: string },
): Promise<string> {
  const message = `otp:v1\n${input.purpose}\n${input.mobileNumber}\n${input.code}`;
  const mac = await crypto.subtle.sign("HMAC", await macKey(secret), encoder.encode(message));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

export type ConsumeResult =
  /**
   * `challengeId`: the consumed code's. A request that then fails puts the code back by its
   * consume's token (`restoreConsumed`), which recorded the code with its spent attempts.
   */
  | { status: "ok"; challengeId: string }
  /** No live code: never issued, already used, killed by too many attempts, or replaced. */
  | { status: "missing" }
  | { status: "expired" }
  | { status: "wrong"; attemptsLeft: number }
  /** Too many consecutive failures for this number across codes; retry after the cool-down. */
  | { status: "locked"; retryAfterSeconds: number }
  /** The client is over its budget of codes tried; the guess was NOT evaluated or counted. */
  | { status: "limited"; retryAfterSeconds: number };

export type StrangerAdmission =
  | { status: "known" }
  | { status: "taken" }
  | { status: "refused"; retryAfterSeconds: number };

/** One hourly window's answer to a send's take (see `OtpStore.takeSendWindows`). */
export interface SendWindowAnswer {
  success: boolean;
  /** Takes the window still allows (after this one when the send was taken; 0 when full). */
  remaining: number;
  /**
   * When the window is full: whole seconds (at least 1) until the take whose exit makes room
   * leaves it; 0 when it had room.
   */
  retryAfterSeconds: number;
}

/**
 * A send's take of its three sliding windows: all taken, or (when any window is full) none.
 * `perNetwork` is the (purpose, number, network) window, `perNumber` the (purpose, number) one,
 * `perIp` the client IP's.
 */
export interface SendWindowsTake {
  taken: boolean;
  perNetwork: SendWindowAnswer;
  perNumber: SendWindowAnswer;
  perIp: SendWindowAnswer;
}

/** The send windows a request counts in: its slot's, its number's, its client IP's. */
export interface SendWindowsScope extends CodeSlot {
  clientIp: string;
  /** Names this request's take (one per request): the give-back removes exactly it. */
  token: string;
}

/** Where a code lives: one per (number, purpose, client network), so strangers cannot touch it. */
export interface CodeSlot {
  mobileNumber: string;
  purpose: OtpPurpose;
  /** The network tag of the client that asked for the code (see `networkTag`). */
  network: string;
}

/**
 * Where OTP state lives: live codes per slot, each under its challenge id, the latest one also
 * reachable without it; consumed atomically.
 */
export interface OtpStore {
  issue(
    input: CodeSlot & {
      mac: string;
      challengeId: string;
      expiresAtMs: number;
      ttlSeconds: number;
      /** Codes of the slot that expired by now are dropped. */
      nowMs: number;
    },
  ): Promise<void>;
  consume(
    input: CodeSlot & {
      mac: string;
      /** The send's challenge id, when the client presents one ('' or undefined: none). */
      challengeId?: string;
      /** The per-client budget of codes tried, checked BEFORE the guess is evaluated. */
      clientIp: string;
      clientMaxTries: number;
      clientWindowSeconds: number;
      nowMs: number;
      maxAttempts: number;
      maxConsecutiveFailures: number;
      failureWindowSeconds: number;
      /** The tag of the network the guess comes from (recorded as known when it is right). */
      callerNetwork: string;
      /**
       * `numberTag` of the number: keys its known networks (during the transition the number's
       * pre-tag set counts too, see `PRE_TAG_KNOWN_NETWORKS_UNTIL_MS`).
       */
      numberTag: string;
      /** How long a network stays known after its last proof. */
      knownTtlSeconds: number;
      /**
       * Names this consume (one per request): a right code's consume is recorded under it, so
       * `restoreConsumed` with the same token can put the code back if the answer was lost, and
       * stops it if Redis has not run it yet. A repeat with the token answers the first run.
       */
      token: string;
    },
  ): Promise<ConsumeResult>;
  /**
   * Admits one attempt (a send, a password login) for the number from `network`: a known network
   * (it proved the number within `knownTtlSeconds`) is exempt; unknown networks together share
   * `max` per fixed window of `windowSeconds`, counted under `ceiling` (e.g. "send:login").
   * With a `token` (one per request) the take is recorded under it: a repeat counts once, and
   * after `refundStranger` with the same token a late run takes nothing.
   */
  admitStranger(input: {
    /** `numberTag` of the number (the access token carries it, so no read is needed first). */
    numberTag: string;
    /**
     * The number itself, when the caller has it: until `PRE_TAG_KNOWN_NETWORKS_UNTIL_MS` a network
     * in the number's pre-tag set counts as known too (and is copied into the tag's set).
     */
    mobileNumber?: string;
    network: string;
    ceiling: string;
    max: number;
    windowSeconds: number;
    nowMs: number;
    knownTtlSeconds: number;
    token?: string;
  }): Promise<StrangerAdmission>;
  /**
   * Gives back an attempt `admitStranger` counted ("taken") for a request that was refused. With
   * the admission's `token`: gives back only what that admission took, whether or not its answer
   * arrived, and stops it from taking anything if Redis runs it later; idempotent.
   */
  refundStranger(input: { numberTag: string; ceiling: string; token?: string }): Promise<void>;
  /** Records that `network` proved the number (a password login succeeded from it). */
  rememberNetwork(input: {
    numberTag: string;
    network: string;
    nowMs: number;
    knownTtlSeconds: number;
  }): Promise<void>;
  /**
   * Starts the send cool-down for the slot unless one is running; answers how long the running
   * one has left. Exact, unlike a 1-token window, which lets two sends straddle a boundary. The
   * cool-down is named by the request's `token`: a repeat of the same start answers started, and
   * a start that Redis runs after `clearCooldown` with its token starts nothing.
   */
  startCooldown(
    input: CodeSlot & { seconds: number; token: string },
  ): Promise<{ started: true } | { started: false; retryAfterSeconds: number }>;
  /**
   * Ends the cool-down the start with this `token` began (the send failed or was refused for
   * another reason), whether or not the start's answer arrived, and stops that start if Redis
   * has not run it yet; another request's cool-down stays. Idempotent, so it can be retried.
   */
  clearCooldown(input: CodeSlot & { token: string }): Promise<void>;
  /**
   * For a request whose consume (named by `token`) lost its answer, or whose later step failed
   * (the database): puts back the code that consume took, with the attempts it had spent, if it
   * ran and the code was right (a wrong guess gets nothing back), and stops it if Redis has not
   * run it yet. Answers whether a code went back. Idempotent.
   */
  restoreConsumed(input: CodeSlot & { token: string; ttlSeconds: number }): Promise<boolean>;
  /**
   * Takes one send from each of the three sliding windows at once (exact logs of the takes in
   * the last `windowSeconds`), under the request's `token`: all three, or nothing when any is
   * full. A repeat of a take that ran (the answer was lost) is answered as taken and counts once;
   * a take whose token was given back already takes nothing (it throws: nobody reads it).
   */
  takeSendWindows(
    input: SendWindowsScope & {
      nowMs: number;
      windowSeconds: number;
      max: { perNetwork: number; perNumber: number; perIp: number };
    },
  ): Promise<SendWindowsTake>;
  /**
   * Gives back the take named by `token` from all three windows, whether or not its answer
   * arrived, and stops it from taking anything if Redis runs it later; other requests' takes
   * stay. Idempotent, so it can be retried while Redis fails.
   */
  giveBackSendWindows(input: SendWindowsScope): Promise<void>;
}

// A slot (number, purpose, network) is one hash holding each live code under its challenge id
// (`<cid>:mac`, `<cid>:exp`, `<cid>:fails`) and `latest`, the challenge id a guess WITHOUT one
// is tried against. Issuing adds a code and makes it the latest; it drops expired codes but
// not live ones, so a second client behind the same address (a carrier NAT) that asks for a
// code does not destroy the code the first one holds the challenge id of.
const ISSUE_SCRIPT = `
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  local f = all[i]
  if string.sub(f, -4) == ':exp' and tonumber(all[i + 1]) <= tonumber(ARGV[5]) then
    local c = string.sub(f, 1, -5)
    redis.call('HDEL', KEYS[1], c .. ':mac', c .. ':exp', c .. ':fails')
  end
end
local cid = ARGV[4]
redis.call('HSET', KEYS[1], cid .. ':mac', ARGV[1], cid .. ':exp', ARGV[2], cid .. ':fails', '0',
  'latest', cid)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
`;

// Records a network as known for the number (KEYS[4], a sorted set: network tag -> last proof in
// ms): drops entries older than the known TTL, keeps the 32 most recent, and expires the whole set
// with its newest entry. Shared by the consume script (a right code) and REMEMBER_SCRIPT (a
// password login).
const REMEMBER_LUA = `
local function remember(key, net, now, since, ttl)
  redis.call('ZADD', key, now, net)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. since)
  redis.call('ZREMRANGEBYRANK', key, 0, -33)
  redis.call('EXPIRE', key, tonumber(ttl))
end
local function known(key, net, since)
  local s = redis.call('ZSCORE', key, net)
  return s ~= false and s ~= nil and tonumber(s) >= tonumber(since)
end
-- Known in the tag's set, or (the transition, ADR 8 item 10) in the number's pre-tag set, when the
-- caller passes it (legacy, else nil). A network found only there is copied into the tag's set
-- with its score, its last proof, so it expires when it would have, and the fallback dies out as
-- the networks come back.
local function knownOrCarried(key, legacy, net, now, since, ttl)
  if known(key, net, since) then return true end
  local s = legacy and redis.call('ZSCORE', legacy, net)
  if not s or tonumber(s) < tonumber(since) then return false end
  redis.call('ZADD', key, s, net)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', '(' .. since)
  redis.call('ZREMRANGEBYRANK', key, 0, -33)
  local left = math.floor(tonumber(s) + tonumber(ttl) * 1000 - tonumber(now))
  if redis.call('PTTL', key) < left then redis.call('PEXPIRE', key, left) end
  return true
end
`;

// One script so check-and-delete is atomic: of N concurrent correct submissions exactly one sees
// the code. In order: the client's budget of codes tried (refused before anything is evaluated,
// so a refused guess neither counts nor reveals whether it was right); a challenge id that is not
// this code's is answered as no code at all (nothing evaluated, nothing counted); the per-number
// lock counts and applies only to guesses from networks that never proved the number, and never
// to the client presenting the code's challenge id, so strangers cannot lock the owner out. A
// right code records the caller's network as known. Expiry is checked against the caller's clock
// (stored 'exp'); the Redis TTL only collects garbage. MACs are compared as strings: they are
// keyed, so timing reveals nothing usable.
//
// KEYS[5] is the request's record, named by its token: a right code writes what it consumed there
// (for ARGV[12] seconds), so a request that lost the answer, or whose database then failed, can
// put it back (RESTORE_BY_TOKEN); 'void' there (that give-back ran first) makes this run do
// nothing, and a repeat of a run that consumed (the SDK resending a command whose answer was
// lost) answers that consume again.
const CONSUME_SCRIPT = `${REMEMBER_LUA}
local record = redis.call('HMGET', KEYS[5], 'state', 'exp', 'cid')
if record[1] == 'void' then
  return {'void', 0}
end
if record[1] == 'ok' then
  return {'ok', record[2], record[3]}
end
local now = tonumber(ARGV[2])
local tried = tonumber(redis.call('GET', KEYS[3]) or '0')
if tried >= tonumber(ARGV[7]) then
  return {'limited', redis.call('TTL', KEYS[3])}
end
if redis.call('INCR', KEYS[3]) == 1 then
  redis.call('EXPIRE', KEYS[3], tonumber(ARGV[8]))
end
local given = ARGV[6]
local cid = given
if given == '' then
  cid = redis.call('HGET', KEYS[1], 'latest')
end
local mac = cid and redis.call('HGET', KEYS[1], cid .. ':mac')
if given ~= '' and not mac then
  return {'missing', 0}
end
local challenged = given ~= ''
local stranger = not knownOrCarried(KEYS[4], KEYS[6], ARGV[9], ARGV[2], ARGV[10], ARGV[11])
if stranger and not challenged then
  local failures = tonumber(redis.call('GET', KEYS[2]) or '0')
  if failures >= tonumber(ARGV[4]) then
    return {'locked', redis.call('TTL', KEYS[2])}
  end
end
if not mac then
  return {'missing', 0}
end
local function drop()
  redis.call('HDEL', KEYS[1], cid .. ':mac', cid .. ':exp', cid .. ':fails')
  if redis.call('HGET', KEYS[1], 'latest') == cid then
    redis.call('HDEL', KEYS[1], 'latest')
  end
end
local rawExp = redis.call('HGET', KEYS[1], cid .. ':exp')
local exp = tonumber(rawExp)
if exp <= now then
  drop()
  return {'expired', 0}
end
if mac == ARGV[1] then
  local spent = redis.call('HGET', KEYS[1], cid .. ':fails') or '0'
  drop()
  redis.call('DEL', KEYS[2])
  remember(KEYS[4], ARGV[9], ARGV[2], ARGV[10], ARGV[11])
  redis.call('HSET', KEYS[5], 'state', 'ok', 'mac', mac, 'exp', rawExp, 'cid', cid, 'fails', spent)
  redis.call('EXPIRE', KEYS[5], tonumber(ARGV[12]))
  return {'ok', rawExp, cid}
end
local fails = redis.call('HINCRBY', KEYS[1], cid .. ':fails', 1)
if stranger and redis.call('INCR', KEYS[2]) == 1 then
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
local left = tonumber(ARGV[3]) - fails
if left <= 0 then
  drop()
  left = 0
end
return {'wrong', left}
`;

// KEYS[1] the known set, KEYS[2] the strangers' counter, KEYS[3] the request's take record when
// ARGV[8] is '1' (see REFUND_SCRIPT), KEYS[4] (optional) the number's pre-tag known set. A
// known network passes uncounted; an unknown one takes one from the shared fixed window, or is
// refused without taking anything. A take already given back ('void') or already made ('taken':
// the SDK repeating a command whose answer was lost) takes nothing more.
const ADMIT_SCRIPT = `${REMEMBER_LUA}
local recorded = ARGV[8] == '1'
local record = recorded and redis.call('GET', KEYS[3])
if record == 'void' then
  return {'void', 0}
end
if record == 'taken' then
  return {'taken', 0}
end
if knownOrCarried(KEYS[1], KEYS[4], ARGV[1], ARGV[5], ARGV[2], ARGV[6]) then
  return {'known', 0}
end
local n = redis.call('INCR', KEYS[2])
if n == 1 then
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
end
if n > tonumber(ARGV[3]) then
  redis.call('DECR', KEYS[2])
  return {'refused', redis.call('TTL', KEYS[2])}
end
if recorded then
  redis.call('SET', KEYS[3], 'taken', 'EX', tonumber(ARGV[7]))
end
return {'taken', 0}
`;

// KEYS[1] the strangers' counter; KEYS[2] (optional) the take record of the admission to give
// back. With a record: gives back only a take that admission made, once, and leaves 'void' so
// that admission, if Redis runs it later, takes nothing. Without one (password logins, which
// know they took): gives back one.
const REFUND_SCRIPT = `
if KEYS[2] then
  local record = redis.call('GET', KEYS[2])
  redis.call('SET', KEYS[2], 'void', 'EX', tonumber(ARGV[1]))
  if record ~= 'taken' then
    return 0
  end
end
if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
  redis.call('DECR', KEYS[1])
end
return 1
`;

const REMEMBER_SCRIPT = `${REMEMBER_LUA}
remember(KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
return 1
`;

// KEYS[1] the slot's code hash, KEYS[2] a consume's record (see CONSUME_SCRIPT). The tombstone
// first, so a consume still on its way does nothing; then, only if that consume took a right
// code, the code goes back as it was, its spent attempts too (neither a lost answer nor a
// database outage after the consume hands out fresh guesses), unless its challenge id holds a
// code again; it is the latest again only if no code is. A wrong guess's record is empty:
// nothing is given back. Idempotent.
const RESTORE_BY_TOKEN_SCRIPT = `
local record = redis.call('HMGET', KEYS[2], 'state', 'mac', 'exp', 'cid', 'fails')
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[2], 'state', 'void')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
if record[1] ~= 'ok' then
  return 0
end
local cid = record[4]
if redis.call('HEXISTS', KEYS[1], cid .. ':mac') == 1 then
  return 0
end
redis.call('HSET', KEYS[1], cid .. ':mac', record[2], cid .. ':exp', record[3], cid .. ':fails',
  record[5])
if redis.call('HEXISTS', KEYS[1], 'latest') == 0 then
  redis.call('HSET', KEYS[1], 'latest', cid)
end
if redis.call('TTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[1]))
end
return 1
`;

// KEYS[1] the slot's cool-down (its value: the token of the request that started it), KEYS[2]
// the token's tombstone. A start whose request already gave it back (the Worker's deadline passed,
// then its clear ran before Redis ran this start: soak finding 6) starts nothing; a repeat of a
// start that ran (the SDK's retry of a lost answer) is answered as started, not as a cool-down.
const COOLDOWN_SCRIPT = `
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'void', 0}
end
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[2] then
  return {'started', 0}
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', tonumber(ARGV[1]))
  return {'started', 0}
end
return {'running', redis.call('PTTL', KEYS[1])}
`;

// The tombstone first, so a start still on its way is stopped; then the cool-down, only if it is
// this token's (an earlier send's stays).
const CLEAR_OWN_COOLDOWN_SCRIPT = `
redis.call('SET', KEYS[2], '1', 'EX', tonumber(ARGV[2]))
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end
return 0
`;

// The three hourly send windows, one script (ADR 8 item 12: their takes are named, so a take
// whose answer was lost can be given back). KEYS[1] the (purpose, number, network) log, KEYS[2]
// the (purpose, number) log, KEYS[3] the client IP's log, each a sorted set of request token ->
// take time (ms); KEYS[4] the token's tombstone. ARGV: token, now (ms), window (ms), then each
// log's max. Each log is trimmed to the window, then all are checked before any is written, so a
// refusal takes nothing anywhere. A repeat of a take that ran (its token is logged) writes
// nothing and is answered as taken. The answer per log: room (1/0), takes left, and for a full
// log the ms until the take whose exit makes room leaves it (exact, unlike the estimate of
// @upstash/ratelimit's sliding window).
const TAKE_SEND_WINDOWS_SCRIPT = `
if redis.call('EXISTS', KEYS[4]) == 1 then
  return {'void'}
end
local now, window = tonumber(ARGV[2]), tonumber(ARGV[3])
local repeated = redis.call('ZSCORE', KEYS[1], ARGV[1])
local counts, refused = {}, false
for i = 1, 3 do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now - window)
  counts[i] = redis.call('ZCARD', KEYS[i])
  if not repeated and counts[i] >= tonumber(ARGV[3 + i]) then
    refused = true
  end
end
local answer = {refused and 'refused' or 'taken'}
for i = 1, 3 do
  local max = tonumber(ARGV[3 + i])
  if not refused and not repeated then
    redis.call('ZADD', KEYS[i], ARGV[2], ARGV[1])
    redis.call('PEXPIRE', KEYS[i], window)
    counts[i] = counts[i] + 1
  end
  if refused and counts[i] >= max then
    local freeing = redis.call('ZRANGE', KEYS[i], counts[i] - max, counts[i] - max, 'WITHSCORES')
    table.insert(answer, {0, 0, tonumber(freeing[2]) + window - now})
  else
    table.insert(answer, {1, max - counts[i], 0})
  end
end
return answer
`;

// The tombstone first, so a take still on its way takes nothing; then this token's entries,
// wherever the take put them (another request's stay). Idempotent.
const GIVE_BACK_SEND_WINDOWS_SCRIPT = `
redis.call('SET', KEYS[4], '1', 'EX', tonumber(ARGV[2]))
for i = 1, 3 do
  redis.call('ZREM', KEYS[i], ARGV[1])
end
return 0
`;

/**
 * How long a give-back's tombstone (a cleared cool-down's, a refunded strangers' take's, a
 * given-back send windows' take's) stays:
 * far longer than any command waits between the Worker's 2 s deadline and Redis running it.
 */
export const GIVE_BACK_TOMBSTONE_SECONDS = 600;

/**
 * How long a right consume's record stays, for its request to put the code back if the answer
 * was lost or the database then failed: the give-back of a lost answer runs within seconds of
 * the consume (its tries end ~15 s after the request), and the restore after a database failure
 * within two database rounds (`QUERY_TIMEOUT_MS`, 10 s each), so a minute is ample.
 */
export const CONSUME_RECORD_SECONDS = 60;

const codeKey = (s: CodeSlot) => `otp:v3:${s.purpose}:${s.mobileNumber}:${s.network}`;
const consumeRecordKey = (token: string) => `otp:v3:consume:${token}`;
const failuresKey = (mobileNumber: string) => `otp:v1:failures:${mobileNumber}`;
const triesKey = (clientIp: string) => `otp:v2:tries:${clientIp}`;
// Keyed by the number's tag, not the number: change-password takes the password budget from the
// access token's tag in its first round, before it has read the number (v2: v1 was keyed by the
// number itself).
const knownKey = (numberTag: string) => `auth:v2:known:${numberTag}`;
const strangersKey = (numberTag: string, ceiling: string) =>
  `auth:v2:strangers:${ceiling}:${numberTag}`;
const strangerTakeKey = (token: string) => `auth:v2:strangers-take:${token}`;
const cooldownKey = (s: CodeSlot) => `otp:v2:cooldown:${s.purpose}:${s.mobileNumber}:${s.network}`;
const cooldownTombstoneKey = (token: string) => `otp:v2:cooldown-void:${token}`;
// The send windows' logs; the `rl:otp:*` keys of @upstash/ratelimit before them are abandoned.
const sendWindowKeys = (s: SendWindowsScope) => [
  `otp:v3:sends:net:${s.purpose}:${s.mobileNumber}:${s.network}`,
  `otp:v3:sends:number:${s.purpose}:${s.mobileNumber}`,
  `otp:v3:sends:ip:${s.clientIp}`,
  `otp:v3:sends-void:${s.token}`,
];

// The number-keyed sets written before the tag: read only during the transition (below).
const preTagKnownKey = (mobileNumber: string) => `auth:v1:known:${mobileNumber}`;

/**
 * The end of the known-networks transition (ADR 8 item 10). The Worker before the number tag kept
 * known networks in `auth:v1:known:<number>`; until this instant a network found there counts as
 * known too (and is copied into the tag's set), so the deploy does not hand the owner the
 * strangers' ceilings. Nothing writes those sets any more, and each expires
 * `knownNetworkTtlSeconds` (90 days) after its last write, so past the deploy + 90 days they hold
 * nothing: this date is that bound for a deploy by 2026-12-31 (a later deploy moves it by as
 * much). After it the fallback is dead code: delete it (the optional KEYS, `mobileNumber` on
 * `admitStranger`, `knownOrCarried`'s second half and change-password's retry).
 */
export const PRE_TAG_KNOWN_NETWORKS_UNTIL_MS = Date.UTC(2027, 2, 31);

/** Whether a network in a number's pre-tag known set still counts (see above). */
export const preTagKnownNetworksCount = (nowMs: number) => nowMs < PRE_TAG_KNOWN_NETWORKS_UNTIL_MS;

/** The pre-tag set among a script's keys, while it still counts; otherwise none. */
const preTagKeys = (mobileNumber: string | undefined, nowMs: number) =>
  mobileNumber !== undefined && preTagKnownNetworksCount(nowMs)
    ? [preTagKnownKey(mobileNumber)]
    : [];

/** OTP state in Upstash Redis, one Lua script per operation. */
export function createOtpStore(redis: RedisClient): OtpStore {
  // EVALSHA first, the script's text only when this Redis has not seen it yet (NOSCRIPT).
  const takeSendWindows = redis.createScript<unknown>(TAKE_SEND_WINDOWS_SCRIPT);
  const giveBackSendWindows = redis.createScript<unknown>(GIVE_BACK_SEND_WINDOWS_SCRIPT);
  return {
    async issue(i) {
      await redis.eval(
        ISSUE_SCRIPT,
        [codeKey(i)],
        [i.mac, String(i.expiresAtMs), String(i.ttlSeconds), i.challengeId, String(i.nowMs)],
      );
    },
    async consume(i) {
      const raw = (await redis.eval(
        CONSUME_SCRIPT,
        [
          codeKey(i),
          failuresKey(i.mobileNumber),
          triesKey(i.clientIp),
          knownKey(i.numberTag),
          consumeRecordKey(i.token),
          ...preTagKeys(i.mobileNumber, i.nowMs),
        ],
        [
          i.mac,
          String(i.nowMs),
          String(i.maxAttempts),
          String(i.maxConsecutiveFailures),
          String(i.failureWindowSeconds),
          i.challengeId ?? "",
          String(i.clientMaxTries),
          String(i.clientWindowSeconds),
          i.callerNetwork,
          String(i.nowMs - i.knownTtlSeconds * 1000),
          String(i.knownTtlSeconds),
          String(CONSUME_RECORD_SECONDS),
        ],
      )) as [string, number | string, string?];
      const [status, value, cid] = raw;
      const n = Number(value);
      switch (status) {
        // Only a request that already gave its consume back meets this; nobody reads the answer.
        case "void":
          throw new Error("code consume given back before it ran");
        case "ok":
          return { status: "ok", challengeId: cid ?? "" };
        case "expired":
          return { status: "expired" };
        case "wrong":
          return { status: "wrong", attemptsLeft: n };
        case "locked":
          return { status: "locked", retryAfterSeconds: n > 0 ? n : 1 };
        case "limited":
          return { status: "limited", retryAfterSeconds: n > 0 ? n : 1 };
        default:
          return { status: "missing" };
      }
    },
    async admitStranger(i) {
      const [status, ttl] = (await redis.eval(
        ADMIT_SCRIPT,
        [
          knownKey(i.numberTag),
          strangersKey(i.numberTag, i.ceiling),
          // Without a token the slot is a placeholder the script leaves alone (ARGV[8] is '0').
          i.token === undefined ? strangersKey(i.numberTag, i.ceiling) : strangerTakeKey(i.token),
          ...preTagKeys(i.mobileNumber, i.nowMs),
        ],
        [
          i.network,
          String(i.nowMs - i.knownTtlSeconds * 1000),
          String(i.max),
          String(i.windowSeconds),
          String(i.nowMs),
          String(i.knownTtlSeconds),
          String(GIVE_BACK_TOMBSTONE_SECONDS),
          i.token === undefined ? "0" : "1",
        ],
      )) as [string, number | string];
      if (status === "known") return { status: "known" };
      if (status === "taken") return { status: "taken" };
      // Only a request that already gave its admission back meets this; nobody reads the answer.
      if (status === "void") throw new Error("strangers' admission given back before it ran");
      const n = Number(ttl);
      return { status: "refused", retryAfterSeconds: n > 0 ? n : 1 };
    },
    async refundStranger(i) {
      await redis.eval(
        REFUND_SCRIPT,
        [
          strangersKey(i.numberTag, i.ceiling),
          ...(i.token === undefined ? [] : [strangerTakeKey(i.token)]),
        ],
        [String(GIVE_BACK_TOMBSTONE_SECONDS)],
      );
    },
    async rememberNetwork(i) {
      await redis.eval(
        REMEMBER_SCRIPT,
        [knownKey(i.numberTag)],
        [
          i.network,
          String(i.nowMs),
          String(i.nowMs - i.knownTtlSeconds * 1000),
          String(i.knownTtlSeconds),
        ],
      );
    },
    async startCooldown(i) {
      const [status, pttl] = (await redis.eval(
        COOLDOWN_SCRIPT,
        [cooldownKey(i), cooldownTombstoneKey(i.token)],
        [String(i.seconds * 1000), i.token],
      )) as [string, number | string];
      if (status === "started") return { started: true };
      // Only a request that already gave its cool-down back meets this; nobody reads the answer.
      if (status === "void") throw new Error("cool-down given back before its start ran");
      return { started: false, retryAfterSeconds: Math.max(1, Math.ceil(Number(pttl) / 1000)) };
    },
    async clearCooldown(i) {
      await redis.eval(
        CLEAR_OWN_COOLDOWN_SCRIPT,
        [cooldownKey(i), cooldownTombstoneKey(i.token)],
        [i.token, String(GIVE_BACK_TOMBSTONE_SECONDS)],
      );
    },
    async restoreConsumed(i) {
      const restored = await redis.eval(
        RESTORE_BY_TOKEN_SCRIPT,
        [codeKey(i), consumeRecordKey(i.token)],
        [String(i.ttlSeconds), String(GIVE_BACK_TOMBSTONE_SECONDS)],
      );
      return Number(restored) === 1;
    },
    async takeSendWindows(i) {
      const raw = (await takeSendWindows.exec(sendWindowKeys(i), [
        i.token,
        String(i.nowMs),
        String(i.windowSeconds * 1000),
        String(i.max.perNetwork),
        String(i.max.perNumber),
        String(i.max.perIp),
      ])) as [string, ...[number | string, number | string, number | string][]];
      const [status, perNetwork, perNumber, perIp] = raw;
      // Only a request that already gave its take back meets this; nobody reads the answer.
      if (status === "void") throw new Error("send windows' take given back before it ran");
      return {
        taken: status === "taken",
        perNetwork: windowAnswer(perNetwork),
        perNumber: windowAnswer(perNumber),
        perIp: windowAnswer(perIp),
      };
    },
    async giveBackSendWindows(i) {
      await giveBackSendWindows.exec(sendWindowKeys(i), [
        i.token,
        String(GIVE_BACK_TOMBSTONE_SECONDS),
      ]);
    },
  };
}

function windowAnswer(
  raw: [number | string, number | string, number | string] | undefined,
): SendWindowAnswer {
  const [taken, remaining, retryAfterMs] = (raw ?? [0, 0, 0]).map(Number);
  return {
    success: taken === 1,
    remaining: remaining ?? 0,
    retryAfterSeconds: taken === 1 ? 0 : Math.max(1, Math.ceil((retryAfterMs ?? 0) / 1000)),
  };
}

/**
 * A client network's tag in OTP keys and challenge ids: HMAC(OTP_SECRET, client limit key), 16
 * hex. Keyed, so a challenge id does not reveal the address it was issued to.
 */
export async function networkTag(secret: string, clientIp: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    await macKey(secret),
    encoder.encode(`net:v1\n${clientIp}`),
  );
  return Array.from(new Uint8Array(mac).slice(0, 8), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/**
 * A number's tag: HMAC(OTP_SECRET, "number:v1" ‖ number), 32 hex (128 bits). It keys the
 * password-attempt budgets and the known networks, and access tokens carry it (`ntg`), so
 * change-password takes the budget before it has read the number, without the token holding the
 * number itself. Keyed, so the tag cannot be reversed by trying every number.
 */
export async function numberTag(secret: string, mobileNumber: string): Promise<string> {
  const mac = await crypto.subtle.sign(
    "HMAC",
    await macKey(secret),
    encoder.encode(`number:v1\n${mobileNumber}`),
  );
  return Array.from(new Uint8Array(mac).slice(0, 16), (b) => b.toString(16).padStart(2, "0")).join(
    "",
  );
}

/** A challenge id: `<network tag>.<128 random bits, base64url>`; names the slot of its code. */
export function newChallengeId(network: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return `${network}.${btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "")}`;
}

export const CHALLENGE_ID_PATTERN = /^([0-9a-f]{16})\.[A-Za-z0-9_-]{22}$/;

/**
 * The signup token: HMAC-SHA256(OTP_SECRET, user id ‖ pending password hash), hex. Returned only
 * to the client whose signup set that password; presenting it at the number's first verify-otp
 * is what keeps the password (nobody else can compute it, and it dies with the hash it binds).
 */
export async function signupTokenMac(
  secret: string,
  input: { userId: string; passwordHash: string },
): Promise<string> {
  const message = `signup:v1\n${input.userId}\n${input.passwordHash}`;
  const mac = await crypto.subtle.sign("HMAC", await macKey(secret), encoder.encode(message));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}
