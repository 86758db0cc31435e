// One simulated user: signs up and logs in through the typed client, then, until the run's
// prompt budget is spent, picks actions at random: queued and streamed prompts (with and without
// an Idempotency-Key, repeated as a client retry would, or left mid-stream), cancels (a queued
// reply it no longer wants, a streamed one stopped mid-stream), regenerates of settled replies,
// polls, refreshes, new chatrooms (most with an Idempotency-Key, some repeated as a client retry
// would), checkouts and subscription cancellations. Like a person, it mostly waits for a reply
// before the next prompt (sometimes it fires on; told 409 reply_in_progress, it waits for its
// oldest pending reply before prompting again), pauses a moment between actions, and opens
// billing rarely (well under its 10 per 10 minutes).
import type { ApiClient } from "../../src/client.ts";
import { randomClientIp, randomMobileNumber } from "../support/http.ts";
import { clientFor, type HttpRecord } from "./client.ts";
import { createRng, type Rng } from "./rng.ts";

type Control = (path: string, body?: unknown, method?: string) => Promise<unknown>;

export interface SoakRun {
  baseUrl: string;
  tag: string;
  seed: number;
  record: HttpRecord;
  /** The local cloud's control API (a user stopping a long answer asks for one; see stopStream). */
  control: Control;
  /** Takes one prompt from the run's budget; false once it is spent or the run is out of time. */
  takePrompt(): boolean;
  deadline: number;
  stats: SoakStats;
}

export interface SoakStats {
  prompts_sent: number;
  accepted_queued: number;
  accepted_streamed: number;
  /** Repeats with the same Idempotency-Key that replayed the first answer. */
  replayed: number;
  /** POST /chatroom sent (first sends only), and how many answered the user a room. */
  chatroom_creates_sent: number;
  chatrooms_created: number;
  /** Repeats of a keyed create that replayed the first room (Idempotent-Replayed). */
  chatroom_creates_replayed: number;
  limited: number;
  pending_limited: number;
  /** Times a user told 409 reply_in_progress waited for its oldest pending reply first. */
  waits_after_pending_cap: number;
  streams_abandoned: number;
  /** Queued prompts whose reply the user waited for before doing anything else. */
  replies_awaited: number;
  /** POST …/cancel sent (a queued reply, or a stream stopped mid-stream) and how they ended. */
  reply_cancels_sent: number;
  reply_cancels_ok: number;
  /** 409 reply_finished: the reply settled before the cancel landed. */
  reply_cancels_finished: number;
  /** Streams the user stopped with a cancel (the SSE then ends with `cancelled`). */
  streams_stopped: number;
  /** POST …/regenerate sent (first sends only) and how they ended. */
  regenerates_sent: number;
  regenerates_accepted: number;
  /** Repeats with the same Idempotency-Key that replayed the first regenerate. */
  regenerates_replayed: number;
  /** 409 reply_in_progress (pending cap) or 429 (daily limit). */
  regenerates_refused: number;
  checkouts_paid: number;
  cancellations: number;
  /** Billing actions drawn too soon after the user's last one of that kind, so not sent. */
  billing_spaced_out: number;
  refreshes: number;
  unexpected: string[];
  /** Reply ids the clients were told about (202, SSE `Location`/`done`, regenerate, replays). */
  reply_ids: Set<string>;
}

export function newStats(): SoakStats {
  return {
    prompts_sent: 0,
    accepted_queued: 0,
    accepted_streamed: 0,
    replayed: 0,
    chatroom_creates_sent: 0,
    chatrooms_created: 0,
    chatroom_creates_replayed: 0,
    limited: 0,
    pending_limited: 0,
    waits_after_pending_cap: 0,
    streams_abandoned: 0,
    replies_awaited: 0,
    reply_cancels_sent: 0,
    reply_cancels_ok: 0,
    reply_cancels_finished: 0,
    streams_stopped: 0,
    regenerates_sent: 0,
    regenerates_accepted: 0,
    regenerates_replayed: 0,
    regenerates_refused: 0,
    checkouts_paid: 0,
    cancellations: 0,
    billing_spaced_out: 0,
    refreshes: 0,
    unexpected: [],
    reply_ids: new Set(),
  };
}

const ACTION_WEIGHTS = {
  queued: 45,
  streamed: 20,
  poll: 14,
  regenerate: 6,
  cancel_reply: 3,
  refresh: 5,
  chatroom: 3,
  checkout: 5,
  unsubscribe: 3,
  history: 5,
} as const;

/** Share of chatroom creates sent with an Idempotency-Key; the rest are a naive client's. */
const KEYED_CREATE = 0.8;
/** Share of keyed prompts and creates sent twice with their key, as a client that lost the answer. */
const REPEAT_KEYED = 0.3;
/** Share of accepted queued prompts whose reply the user waits for before the next action. */
const WAIT_FOR_REPLY = 0.85;
/** Share of accepted queued prompts (and regenerates) the user changes its mind about: cancelled. */
const CANCEL_QUEUED = 0.08;
/** Share of streamed prompts the client leaves after the first piece of text (no cancel). */
const LEAVE_STREAM = 0.2;
/** Share of streamed prompts the user stops with a cancel (a long answer it does not want). */
const STOP_STREAM = 0.15;
/** How long a waiting user polls a reply before giving up on it (it stays in `pending`). */
const REPLY_WAIT_MS = 20_000;
/** A pause between two actions, as a person reads and types (ms). */
const THINK_MS = [50, 400] as const;
/** Settled replies a user remembers as candidates for regenerate (the newest ones). */
const SETTLED_KEPT = 8;
/**
 * Least time between two checkouts (or two cancellations) of one user: at most 7 in 10 minutes,
 * under the per-user billing limit of 10 (src/services/billing/admission.ts), as people do.
 */
const BILLING_GAP_MS = 90_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A reply the user knows of, by the chatroom it is in. */
interface HeldReply {
  chatroomId: string;
  replyId: string;
}

interface SimUser {
  index: number;
  rng: Rng;
  api: ApiClient;
  ip: string;
  token: string;
  refreshToken: string;
  rooms: string[];
  /** Chatroom creates sent so far: numbers each create's title. */
  creates: number;
  /** Replies the user did not wait for, oldest first (queued ones, streams it left). */
  pending: HeldReply[];
  /** Replies the user saw settle, newest last: what it may regenerate. */
  settled: HeldReply[];
  /** Told 409 reply_in_progress: waits for its oldest pending reply before the next prompt. */
  capped: boolean;
  prompts: number;
  /** When the user last sent each billing action (ms). */
  lastBilling: { checkout: number; cancel: number };
}

function unexpected(run: SoakRun, who: string, what: string, status: number, text = ""): void {
  run.stats.unexpected.push(`${who} ${what}: ${status} ${text.slice(0, 160)}`);
}

type ErrorBody = { error?: { code?: string } } | null;

/** signup → send-otp → verify-otp (with the challenge id), as src/client.ts's callers do. */
async function logIn(run: SoakRun, index: number): Promise<SimUser | null> {
  const who = `user ${index}`;
  const ip = randomClientIp();
  const anonymous = clientFor(run.baseUrl, run.record, ip);
  const mobile_number = randomMobileNumber();
  const signup = await anonymous.auth.signup.$post({
    json: { mobile_number, name: `${run.tag} ${index}` },
  });
  if (signup.status !== 201) {
    unexpected(run, who, "signup", signup.status);
    return null;
  }
  const sent = await anonymous.auth["send-otp"].$post({ json: { mobile_number } });
  if (sent.status !== 200) {
    unexpected(run, who, "send-otp", sent.status);
    return null;
  }
  const { otp, challenge_id } = await sent.json();
  const verified = await anonymous.auth["verify-otp"].$post({
    json: { mobile_number, otp: otp ?? "", challenge_id },
  });
  if (verified.status !== 200) {
    unexpected(run, who, "verify-otp", verified.status);
    return null;
  }
  const session = await verified.json();
  return {
    index,
    rng: createRng(run.seed * 7919 + index),
    api: clientFor(run.baseUrl, run.record, ip, session.token),
    ip,
    token: session.token,
    refreshToken: session.refresh_token,
    rooms: [],
    creates: 0,
    pending: [],
    settled: [],
    capped: false,
    prompts: 0,
    lastBilling: { checkout: 0, cancel: 0 },
  };
}

/**
 * POST /chatroom, with an Idempotency-Key most of the time (a third of those sent twice, as a
 * client that lost the first answer would: the repeat replays the same room) and without one
 * otherwise. The title is the create's own (`<tag> u3 r2`), so the audit can count its rooms.
 */
async function newChatroom(run: SoakRun, u: SimUser): Promise<void> {
  const title = `${run.tag} u${u.index} r${u.creates++}`;
  const key = u.rng.chance(KEYED_CREATE) ? `soak-${crypto.randomUUID()}` : undefined;
  const sends = key && u.rng.chance(REPEAT_KEYED) ? 2 : 1;
  run.stats.chatroom_creates_sent++;
  let created: string | undefined;
  for (let i = 0; i < sends; i++) {
    // The route's typed input has no header (withOptionalHeaders in src/routes/chatrooms): the
    // key goes in the request's own headers, beside the client's.
    const res = await u.api.chatroom.$post(
      { json: { title } },
      key ? { headers: { "idempotency-key": key } } : {},
    );
    const status: number = res.status;
    if (status !== 201) {
      if (status !== 503) unexpected(run, `user ${u.index}`, "chatroom", status);
      continue;
    }
    const { chatroom } = await res.json();
    if (created === undefined) {
      // The first send (or, when its 503s outlasted the client, the repeat) made the room.
      run.stats.chatrooms_created++;
      created = chatroom.id;
    } else if (chatroom.id === created && res.headers.get("idempotent-replayed") === "true") {
      run.stats.chatroom_creates_replayed++;
    } else unexpected(run, `user ${u.index}`, "chatroom replay gave another room", status);
  }
  if (created !== undefined) u.rooms.push(created);
}

/** The prompt's text; `<tag> u3 p17:` names it (the audit and a stopped stream's fault use it). */
function promptText(run: SoakRun, u: SimUser): { content: string; name: string } {
  const name = `${run.tag} u${u.index} p${u.prompts++}:`;
  return { content: `${name} name a colour`, name };
}

function rememberSettled(u: SimUser, r: HeldReply): void {
  u.settled.push(r);
  if (u.settled.length > SETTLED_KEPT) u.settled.shift();
}

/**
 * A 409 reply_in_progress on a prompt or a regenerate: the user has as many replies pending as
 * its plan allows, so before its next prompt it waits for the oldest one (as a real client
 * would) instead of firing on into the same refusal.
 */
function metPendingCap(u: SimUser): void {
  u.capped = true;
}

async function waitIfCapped(run: SoakRun, u: SimUser): Promise<void> {
  if (!u.capped) return;
  u.capped = false;
  run.stats.waits_after_pending_cap++;
  const oldest = u.pending.shift();
  // Nothing the user knows of is pending (a prompt of its own still being committed holds the
  // place): a short pause, as a person would before trying again.
  if (!oldest) {
    await sleep(u.rng.int(1_000, 3_000));
    return;
  }
  if (!(await awaitReply(run, u, oldest, REPLY_WAIT_MS))) u.pending.unshift(oldest);
}

/**
 * After a queued prompt or a regenerate was accepted: mostly the user reads the reply before
 * typing again; sometimes it changes its mind and cancels it (at once or a moment later, so
 * some cancels land after the reply settled: 409 reply_finished); sometimes it fires on.
 */
async function afterAccepted(run: SoakRun, u: SimUser, p: HeldReply): Promise<void> {
  if (u.rng.chance(CANCEL_QUEUED)) {
    await sleep(u.rng.int(0, 1_500));
    if (!(await cancelReply(run, u, p))) u.pending.push(p);
    return;
  }
  if (u.rng.chance(WAIT_FOR_REPLY) && (await awaitReply(run, u, p, REPLY_WAIT_MS))) {
    run.stats.replies_awaited++;
  } else u.pending.push(p);
}

async function sendQueued(run: SoakRun, u: SimUser): Promise<void> {
  const chatroomId = u.rng.pick(u.rooms);
  const { content } = promptText(run, u);
  const key = u.rng.chance(0.5) ? `soak-${crypto.randomUUID()}` : undefined;
  // A client that lost the first answer sends the same request again with the same key.
  const sends = key && u.rng.chance(REPEAT_KEYED) ? 2 : 1;
  run.stats.prompts_sent++;
  let firstReply: string | undefined;
  for (let i = 0; i < sends; i++) {
    const res = await u.api.chatroom[":id"].message.$post({
      param: { id: chatroomId },
      header: key ? { "idempotency-key": key } : {},
      json: { content },
    });
    const status: number = res.status;
    const body = (await res.json().catch(() => null)) as {
      reply?: { id: string };
      error?: { code: string };
    } | null;
    if (status === 202 && body?.reply) {
      run.stats.reply_ids.add(body.reply.id);
      if (firstReply === undefined) {
        // The first send (or, when it was refused, the repeat) created the exchange.
        run.stats.accepted_queued++;
        firstReply = body.reply.id;
      } else if (body.reply.id === firstReply) run.stats.replayed++;
      else unexpected(run, `user ${u.index}`, "replay gave another reply", res.status);
    } else if (status === 429) run.stats.limited++;
    else if (status === 409 && body?.error?.code === "reply_in_progress") {
      run.stats.pending_limited++;
      metPendingCap(u);
    } else if (status === 409 && i > 0) run.stats.replayed++;
    else if (status !== 503) {
      unexpected(run, `user ${u.index}`, "prompt", status, JSON.stringify(body));
    }
  }
  if (firstReply === undefined) return;
  await afterAccepted(run, u, { chatroomId, replyId: firstReply });
}

/** Polls a reply until it is no longer pending (true) or `patienceMs` passes (false). */
async function awaitReply(
  run: SoakRun,
  u: SimUser,
  p: HeldReply,
  patienceMs: number,
): Promise<boolean> {
  const until = Math.min(run.deadline, Date.now() + patienceMs);
  for (let i = 0; Date.now() < until; i++) {
    const res = await u.api.chatroom[":id"].messages[":message_id"].$get({
      param: { id: p.chatroomId, message_id: p.replyId },
    });
    if (res.status !== 200) {
      unexpected(run, `user ${u.index}`, "poll", res.status);
      return true;
    }
    const { message } = await res.json();
    if (message.status !== "pending") {
      rememberSettled(u, p);
      return true;
    }
    await sleep(Math.min(1_000, 100 + i * 50));
  }
  return false;
}

/**
 * POST …/cancel on a reply the user holds. True when the reply is settled afterwards (cancelled,
 * or it had finished: 409 reply_finished); false when the cancel did not get through (503s
 * outlasted the client's retries), so the reply may still be pending.
 */
async function cancelReply(run: SoakRun, u: SimUser, p: HeldReply): Promise<boolean> {
  run.stats.reply_cancels_sent++;
  const res = await u.api.chatroom[":id"].messages[":message_id"].cancel.$post({
    param: { id: p.chatroomId, message_id: p.replyId },
  });
  const status: number = res.status;
  const body = (await res.json().catch(() => null)) as
    | ({ message?: { id: string; status: string } } & NonNullable<ErrorBody>)
    | null;
  if (status === 200 && body?.message?.status === "cancelled") {
    run.stats.reply_cancels_ok++;
  } else if (status === 409 && body?.error?.code === "reply_finished") {
    run.stats.reply_cancels_finished++;
  } else if (status === 503) {
    return false;
  } else {
    unexpected(run, `user ${u.index}`, "cancel reply", status, JSON.stringify(body));
  }
  rememberSettled(u, p);
  return true;
}

/** Cancels one of the replies the user did not wait for (the newest: the one it regrets most). */
async function cancelPending(run: SoakRun, u: SimUser): Promise<void> {
  const p = u.pending.pop();
  if (!p) {
    await sleep(u.rng.int(20, 200));
    return;
  }
  if (!(await cancelReply(run, u, p))) u.pending.push(p);
}

/**
 * POST …/regenerate on a settled reply the user holds: with an Idempotency-Key half the time
 * (sent twice, as a client that lost the first answer would, a third of those), without one
 * sometimes sent twice too (the second asks again: another reply, or the pending cap). Every
 * documented answer is expected: 202, 409 reply_in_progress, 429, a replay of the first 202.
 */
async function regenerate(run: SoakRun, u: SimUser): Promise<void> {
  if (u.settled.length === 0) {
    await sleep(u.rng.int(20, 200));
    return;
  }
  const target = u.settled.splice(u.rng.int(0, u.settled.length - 1), 1)[0] as HeldReply;
  const key = u.rng.chance(0.5) ? `soak-${crypto.randomUUID()}` : undefined;
  const sends = u.rng.chance(key ? 0.3 : 0.1) ? 2 : 1;
  run.stats.regenerates_sent++;
  const accepted: string[] = [];
  for (let i = 0; i < sends; i++) {
    const res = await u.api.chatroom[":id"].messages[":message_id"].regenerate.$post({
      param: { id: target.chatroomId, message_id: target.replyId },
      header: key ? { "idempotency-key": key } : {},
    });
    const status: number = res.status;
    const body = (await res.json().catch(() => null)) as
      | ({ reply?: { id: string } } & NonNullable<ErrorBody>)
      | null;
    if (status === 202 && body?.reply) {
      run.stats.reply_ids.add(body.reply.id);
      if (key && accepted.length > 0) {
        if (body.reply.id === accepted[0]) run.stats.regenerates_replayed++;
        else unexpected(run, `user ${u.index}`, "regenerate replay gave another reply", status);
      } else {
        run.stats.regenerates_accepted++;
        accepted.push(body.reply.id);
      }
    } else if (status === 429) run.stats.regenerates_refused++;
    else if (status === 409 && body?.error?.code === "reply_in_progress") {
      run.stats.regenerates_refused++;
      metPendingCap(u);
    } else if (status === 409 && key && i > 0) run.stats.regenerates_replayed++;
    else if (status !== 503) {
      unexpected(run, `user ${u.index}`, "regenerate", status, JSON.stringify(body));
    }
  }
  if (accepted.length === 0) {
    rememberSettled(u, target);
    return;
  }
  // The newest reply is the prompt's current one: the one the user reads, or cancels.
  const newest = accepted.at(-1) as string;
  for (const id of accepted.slice(0, -1)) {
    u.pending.push({ chatroomId: target.chatroomId, replyId: id });
  }
  await afterAccepted(run, u, { chatroomId: target.chatroomId, replyId: newest });
}

/** What an SSE frame is, and the reply it names (if any). */
function parseFrame(frame: string): { event?: string; replyId?: string } {
  const event = /^event: (.*)$/m.exec(frame)?.[1];
  const data = /^data: (.*)$/m.exec(frame)?.[1];
  if (!data) return { event };
  const d = JSON.parse(data) as { reply?: { id: string } };
  return { event, replyId: d.reply?.id };
}

/**
 * A streamed prompt. Sometimes the client leaves after the first piece of text (the reply goes
 * on without it); sometimes the user stops it with POST …/cancel (after the first piece of text,
 * or before any) and reads the stream to its end, which is then `cancelled` (or `done`/`error`
 * when the reply had finished first: the cancel's 409 reply_finished).
 */
async function sendStreamed(run: SoakRun, u: SimUser): Promise<void> {
  const chatroomId = u.rng.pick(u.rooms);
  const draw = u.rng.next();
  const leave = draw < LEAVE_STREAM;
  const stop = !leave && draw < LEAVE_STREAM + STOP_STREAM;
  const stopBeforeText = stop && u.rng.chance(0.3);
  const abort = new AbortController();
  const { content, name } = promptText(run, u);
  // A reply worth stopping is a long one: the local Gemini streams this prompt's pieces 400 ms
  // apart (a fault scoped to this prompt, removed after), so the cancel lands mid-stream.
  const slow = stop
    ? ((await run
        .control("gemini/faults", { match: name, kind: "slow_stream", ms: 400, times: 1 })
        .catch(() => null)) as { fault?: { id: string } } | null)
    : null;
  run.stats.prompts_sent++;
  try {
    const res = await u.api.chatroom[":id"].message.$post(
      {
        param: { id: chatroomId },
        header: u.rng.chance(0.3) ? { "idempotency-key": `soak-${crypto.randomUUID()}` } : {},
        json: { content },
      },
      { headers: { accept: "text/event-stream" }, init: { signal: abort.signal } },
    );
    const status: number = res.status;
    if (status !== 200 || !res.body) {
      const body = (await res.json().catch(() => null)) as ErrorBody;
      if (status === 429) run.stats.limited++;
      else if (status === 409 && body?.error?.code === "reply_in_progress") {
        run.stats.pending_limited++;
        metPendingCap(u);
      } else if (status !== 503) {
        unexpected(run, `user ${u.index}`, "stream", status, JSON.stringify(body));
      }
      return;
    }
    run.stats.accepted_streamed++;
    // The reply's id is in Location before any event (the `message` event carries the prompt).
    const replyId = /\/messages\/([^/]+)$/.exec(res.headers.get("location") ?? "")?.[1];
    if (replyId) run.stats.reply_ids.add(replyId);
    const held = replyId ? { chatroomId, replyId } : undefined;
    let cancelSent = false;
    let terminal: string | undefined;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
          const { event, replyId: named } = parseFrame(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
          if (named) run.stats.reply_ids.add(named);
          if (event === "done" || event === "error" || event === "cancelled") terminal = event;
          if (event === "delta" && leave) {
            run.stats.streams_abandoned++;
            // The reply goes on without the client (then the queue): it holds a pending place.
            if (held) u.pending.push(held);
            abort.abort();
            return;
          }
          const due = stopBeforeText ? event === "message" : event === "delta";
          if (stop && due && held && !cancelSent) {
            cancelSent = true;
            run.stats.streams_stopped++;
            await cancelReply(run, u, held);
          }
        }
      }
    } catch (err) {
      if (!abort.signal.aborted) {
        unexpected(run, `user ${u.index}`, "stream read", 200, String(err));
      }
      return;
    }
    if (!terminal) unexpected(run, `user ${u.index}`, "stream ended without a final event", 200);
    if (held && !cancelSent) rememberSettled(u, held);
  } finally {
    if (slow?.fault) {
      await run.control(`gemini/faults/${slow.fault.id}`, undefined, "DELETE").catch(() => {});
    }
  }
}

async function pollOne(run: SoakRun, u: SimUser): Promise<void> {
  const p = u.pending.shift();
  if (!p) {
    await sleep(u.rng.int(20, 200));
    return;
  }
  // A reply still pending after that is the sweep's (it runs after the drive): not polled again.
  await awaitReply(run, u, p, REPLY_WAIT_MS);
}

async function refresh(run: SoakRun, u: SimUser): Promise<void> {
  const res = await u.api.auth.refresh.$post({ json: { refresh_token: u.refreshToken } });
  if (res.status !== 200) return unexpected(run, `user ${u.index}`, "refresh", res.status);
  const body = await res.json();
  u.token = body.token;
  u.refreshToken = body.refresh_token;
  u.api = clientFor(run.baseUrl, run.record, u.ip, u.token);
  run.stats.refreshes++;
}

/** False (and counted) when the user did this billing action too recently to do it again. */
function billingDue(run: SoakRun, u: SimUser, action: "checkout" | "cancel"): boolean {
  if (Date.now() - u.lastBilling[action] < BILLING_GAP_MS) {
    run.stats.billing_spaced_out++;
    return false;
  }
  u.lastBilling[action] = Date.now();
  return true;
}

async function checkout(run: SoakRun, u: SimUser): Promise<void> {
  if (!billingDue(run, u, "checkout")) return;
  const res = await u.api.subscribe.pro.$post({ json: {} });
  const status: number = res.status;
  if (status === 409) return; // already Pro
  if (status !== 200 && status !== 201) {
    if (status !== 503) unexpected(run, `user ${u.index}`, "checkout", status);
    return;
  }
  const { checkout_url } = (await res.json()) as { checkout_url: string };
  // Pressing Pay on the local Checkout page, as the user's browser would.
  const paid = await fetch(checkout_url, { method: "POST", redirect: "manual" });
  await paid.body?.cancel();
  if (paid.status === 200 || paid.status === 303) run.stats.checkouts_paid++;
}

async function unsubscribe(run: SoakRun, u: SimUser): Promise<void> {
  if (!billingDue(run, u, "cancel")) return;
  const res = await u.api.subscription.cancel.$post();
  const status: number = res.status;
  if (status === 200) run.stats.cancellations++;
  else if (status !== 409 && status !== 404 && status !== 503) {
    unexpected(run, `user ${u.index}`, "cancel", status);
  }
}

async function history(run: SoakRun, u: SimUser): Promise<void> {
  const res = await u.api.chatroom[":id"].messages.$get({
    param: { id: u.rng.pick(u.rooms) },
    query: { limit: "50" },
  });
  if (res.status !== 200) unexpected(run, `user ${u.index}`, "history", res.status);
}

export async function simulateUser(run: SoakRun, index: number): Promise<void> {
  const u = await logIn(run, index);
  if (!u) return;
  await newChatroom(run, u);
  if (u.rooms.length === 0) return;
  while (Date.now() < run.deadline) {
    const action = u.rng.weighted(ACTION_WEIGHTS);
    if (action === "queued" || action === "streamed") {
      await waitIfCapped(run, u);
      if (!run.takePrompt()) break;
      await (action === "queued" ? sendQueued(run, u) : sendStreamed(run, u));
    } else if (action === "regenerate") {
      await waitIfCapped(run, u);
      await regenerate(run, u);
    } else if (action === "poll") await pollOne(run, u);
    else if (action === "cancel_reply") await cancelPending(run, u);
    else if (action === "refresh") await refresh(run, u);
    else if (action === "chatroom" && u.rooms.length < 4) await newChatroom(run, u);
    else if (action === "checkout") await checkout(run, u);
    else if (action === "unsubscribe") await unsubscribe(run, u);
    else if (action === "history") await history(run, u);
    await sleep(u.rng.int(...THINK_MS));
  }
  // The replies the user did not wait for, checked once more within one shared patience.
  const until = Date.now() + REPLY_WAIT_MS;
  for (const p of u.pending.splice(0)) await awaitReply(run, u, p, until - Date.now());
}
