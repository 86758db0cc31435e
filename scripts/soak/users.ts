// One simulated user: signs up and logs in through the typed client, then, until the run's
// prompt budget is spent, picks actions at random: queued and streamed prompts (with and without
// an Idempotency-Key, repeated as a client retry would, or left mid-stream), polls, refreshes,
// new chatrooms, checkouts and cancellations. Like a person, it mostly waits for a reply before
// the next prompt (sometimes it fires on, which still meets the pending-replies cap), pauses a
// moment between actions, and opens billing rarely (well under its 10 per 10 minutes).
import type { ApiClient } from "../../src/client.ts";
import { randomClientIp, randomMobileNumber } from "../support/http.ts";
import { clientFor, type HttpRecord } from "./client.ts";
import { createRng, type Rng } from "./rng.ts";

export interface SoakRun {
  baseUrl: string;
  tag: string;
  seed: number;
  record: HttpRecord;
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
  limited: number;
  pending_limited: number;
  streams_abandoned: number;
  /** Queued prompts whose reply the user waited for before doing anything else. */
  replies_awaited: number;
  checkouts_paid: number;
  cancellations: number;
  /** Billing actions drawn too soon after the user's last one of that kind, so not sent. */
  billing_spaced_out: number;
  refreshes: number;
  unexpected: string[];
  /** Reply ids the clients were told about (202, SSE `message`/`done`, replays). */
  reply_ids: Set<string>;
}

export function newStats(): SoakStats {
  return {
    prompts_sent: 0,
    accepted_queued: 0,
    accepted_streamed: 0,
    replayed: 0,
    limited: 0,
    pending_limited: 0,
    streams_abandoned: 0,
    replies_awaited: 0,
    checkouts_paid: 0,
    cancellations: 0,
    billing_spaced_out: 0,
    refreshes: 0,
    unexpected: [],
    reply_ids: new Set(),
  };
}

/**
 * HOOK (cancel / regenerate, being built in parallel): once those endpoints exist, add them here
 * as actions on a reply the user holds, e.g.
 *   cancel: (u, replyId) => u.api.chatroom[":id"].messages[":message_id"].cancel.$post(...)
 * and give them a weight in ACTION_WEIGHTS. The audit already requires exactly one current reply
 * per accepted prompt, so a regenerate must leave one current reply and a cancel a settled one.
 */
export const REPLY_ACTIONS: Record<
  string,
  (u: SimUser, chatroomId: string, replyId: string) => Promise<void>
> = {};

const ACTION_WEIGHTS = {
  queued: 45,
  streamed: 20,
  poll: 14,
  refresh: 5,
  chatroom: 3,
  checkout: 5,
  cancel: 3,
  history: 5,
} as const;

/** Share of accepted queued prompts whose reply the user waits for before the next action. */
const WAIT_FOR_REPLY = 0.85;
/** How long a waiting user polls a reply before giving up on it (it stays in `pending`). */
const REPLY_WAIT_MS = 20_000;
/** A pause between two actions, as a person reads and types (ms). */
const THINK_MS = [50, 400] as const;
/**
 * Least time between two checkouts (or two cancellations) of one user: at most 7 in 10 minutes,
 * under the per-user billing limit of 10 (src/services/billing/admission.ts), as people do.
 */
const BILLING_GAP_MS = 90_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface SimUser {
  index: number;
  rng: Rng;
  api: ApiClient;
  ip: string;
  token: string;
  refreshToken: string;
  rooms: string[];
  pending: { chatroomId: string; replyId: string }[];
  prompts: number;
  /** When the user last sent each billing action (ms). */
  lastBilling: { checkout: number; cancel: number };
}

function unexpected(run: SoakRun, who: string, what: string, status: number, text = ""): void {
  run.stats.unexpected.push(`${who} ${what}: ${status} ${text.slice(0, 160)}`);
}

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
    pending: [],
    prompts: 0,
    lastBilling: { checkout: 0, cancel: 0 },
  };
}

async function newChatroom(run: SoakRun, u: SimUser): Promise<void> {
  const res = await u.api.chatroom.$post({
    json: { title: `soak u${u.index} r${u.rooms.length}` },
  });
  if (res.status !== 201) return unexpected(run, `user ${u.index}`, "chatroom", res.status);
  u.rooms.push((await res.json()).chatroom.id);
}

function promptText(run: SoakRun, u: SimUser): string {
  return `${run.tag} u${u.index} p${u.prompts++}: name a colour`;
}

async function sendQueued(run: SoakRun, u: SimUser): Promise<void> {
  const chatroomId = u.rng.pick(u.rooms);
  const content = promptText(run, u);
  const key = u.rng.chance(0.5) ? `soak-${crypto.randomUUID()}` : undefined;
  // A client that lost the first answer sends the same request again with the same key.
  const sends = key && u.rng.chance(0.3) ? 2 : 1;
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
    } else if (status === 409 && i > 0) run.stats.replayed++;
    else if (status !== 503) {
      unexpected(run, `user ${u.index}`, "prompt", status, JSON.stringify(body));
    }
  }
  if (firstReply === undefined) return;
  const p = { chatroomId, replyId: firstReply };
  // Mostly the user reads the reply before typing again; sometimes it fires on.
  if (u.rng.chance(WAIT_FOR_REPLY) && (await awaitReply(run, u, p, REPLY_WAIT_MS))) {
    run.stats.replies_awaited++;
  } else u.pending.push(p);
}

/** Polls a reply until it is no longer pending (true) or `patienceMs` passes (false). */
async function awaitReply(
  run: SoakRun,
  u: SimUser,
  p: { chatroomId: string; replyId: string },
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
      for (const act of Object.values(REPLY_ACTIONS)) await act(u, p.chatroomId, p.replyId);
      return true;
    }
    await sleep(Math.min(1_000, 100 + i * 50));
  }
  return false;
}

/** A streamed prompt; sometimes the client leaves after the first piece of text. */
async function sendStreamed(run: SoakRun, u: SimUser): Promise<void> {
  const chatroomId = u.rng.pick(u.rooms);
  const leave = u.rng.chance(0.25);
  const abort = new AbortController();
  run.stats.prompts_sent++;
  const res = await u.api.chatroom[":id"].message.$post(
    {
      param: { id: chatroomId },
      header: u.rng.chance(0.3) ? { "idempotency-key": `soak-${crypto.randomUUID()}` } : {},
      json: { content: promptText(run, u) },
    },
    { headers: { accept: "text/event-stream" }, init: { signal: abort.signal } },
  );
  const status: number = res.status;
  if (status !== 200 || !res.body) {
    if (status === 429) run.stats.limited++;
    else if (status === 409) run.stats.pending_limited++;
    else if (status !== 503) unexpected(run, `user ${u.index}`, "stream", status);
    await res.body?.cancel();
    return;
  }
  run.stats.accepted_streamed++;
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let cut = buffer.indexOf("\n\n"); cut >= 0; cut = buffer.indexOf("\n\n")) {
        const frame = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(frame)?.[1];
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (event === "message" && data) {
          const m = JSON.parse(data) as { reply?: { id: string } };
          if (m.reply) run.stats.reply_ids.add(m.reply.id);
        }
        if ((event === "done" || event === "error") && data) {
          const d = JSON.parse(data) as { reply?: { id: string } };
          if (d.reply) run.stats.reply_ids.add(d.reply.id);
        }
        if (event === "delta" && leave) {
          run.stats.streams_abandoned++;
          abort.abort();
          return;
        }
      }
    }
  } catch (err) {
    if (!abort.signal.aborted) unexpected(run, `user ${u.index}`, "stream read", 200, String(err));
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

async function cancel(run: SoakRun, u: SimUser): Promise<void> {
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
      if (!run.takePrompt()) break;
      await (action === "queued" ? sendQueued(run, u) : sendStreamed(run, u));
    } else if (action === "poll") await pollOne(run, u);
    else if (action === "refresh") await refresh(run, u);
    else if (action === "chatroom" && u.rooms.length < 4) await newChatroom(run, u);
    else if (action === "checkout") await checkout(run, u);
    else if (action === "cancel") await cancel(run, u);
    else if (action === "history") await history(run, u);
    await sleep(u.rng.int(...THINK_MS));
  }
  // The replies the user did not wait for, checked once more within one shared patience.
  const until = Date.now() + REPLY_WAIT_MS;
  for (const p of u.pending.splice(0)) await awaitReply(run, u, p, until - Date.now());
}
