import { NotFoundError, UnauthorizedError, ValidationError } from "../../errors";
import { ID_PATTERN, idTimeMs } from "../../lib/ids";
import { parseQueueCallback, type QueueSignatureVerifier } from "../../lib/queue";
import type { ChatDeps } from "./deps";
import { interpretCallback, type SettleDeps, settleReply } from "./replies";
import { applyTitle, type TitleResult } from "./titles";

/** Longer than any write of a reply row can take (10 s query deadline, with room to spare). */
const REPLY_ROW_GRACE_MS = 60_000;

/** A delivery QStash signed: its raw body, signature header and where it was delivered. */
export interface SignedCallback {
  /** The raw body QStash signed. */
  raw: string;
  signature: string | undefined;
  /** Path and query the callback was delivered to (signed together with APP_URL's origin). */
  pathAndQuery: string;
}

/** Throws 401 invalid_signature unless QStash signed this body for this URL. */
async function verifyCallback(
  deps: Pick<ChatDeps, "config"> & { queueVerifier: QueueSignatureVerifier },
  input: SignedCallback,
): Promise<void> {
  // Verified against our public URL (APP_URL), not the request's, which a proxy may rewrite.
  const url = `${deps.config.appUrl.replace(/\/+$/, "")}${input.pathAndQuery}`;
  const valid =
    input.signature !== undefined &&
    (await deps.queueVerifier.verify({ signature: input.signature, body: input.raw, url }));
  if (!valid) {
    throw new UnauthorizedError("The QStash signature is invalid.", "invalid_signature");
  }
}

export interface ReplyCallbackInput extends SignedCallback {
  replyId: string;
  /** The failure callback (retries exhausted) rather than an attempt's callback. */
  failureCallback: boolean;
}

/**
 * A QStash callback carrying one Gemini attempt for a reply: verified, interpreted and settled.
 * Every delivery is idempotent on the reply id. An unknown reply is NotFound while its write
 * may still be committing (QStash retries), and `gone` once its id is too old for that.
 */
export async function receiveReplyCallback(
  deps: SettleDeps & { queueVerifier: QueueSignatureVerifier },
  input: ReplyCallbackInput,
): Promise<{ status: "complete" | "failed" | "pending" | "unchanged" | "gone" }> {
  await verifyCallback(deps, input);
  const { replyId, failureCallback } = input;
  if (!ID_PATTERN.test(replyId)) throw new ValidationError("reply_id is malformed.");
  const callback = parseQueueCallback(input.raw);
  if (!callback) throw new ValidationError("The body is not a QStash callback.");

  const outcome = interpretCallback(callback, {
    failureCallback,
    defaultMaxRetries: deps.config.qstashRetries,
  });
  const result = await settleReply(deps, replyId, outcome);
  deps.log.info("qstash_callback", {
    reply_id: replyId,
    failure_callback: failureCallback,
    upstream_status: callback.status,
    retried: callback.retried,
    dlq_id: callback.dlqId,
    outcome: outcome.kind,
    result: result.status,
  });
  if (result.status !== "unknown") return { status: result.status };
  // The id says when its request made it: past every query deadline, the row will never appear
  // (its chatroom was deleted, or its write failed), so retrying only fills the DLQ.
  if (deps.clock.now().getTime() - idTimeMs(replyId) > REPLY_ROW_GRACE_MS) {
    return { status: "gone" };
  }
  // Not 200: the reply's batch may still be committing; QStash retries a non-2xx later.
  throw new NotFoundError("No such reply (yet).");
}

/**
 * A QStash callback (or failure callback: the same endpoint) of a chatroom's title job:
 * verified, then a usable answer becomes the title (services/chat/titles.ts). Anything but a
 * usable answer is acknowledged and changes nothing, so QStash stops retrying.
 */
export async function receiveTitleCallback(
  deps: Pick<ChatDeps, "db" | "listCache" | "waitUntil" | "log" | "config"> & {
    queueVerifier: QueueSignatureVerifier;
  },
  input: SignedCallback & { chatroomId: string },
): Promise<{ status: TitleResult }> {
  await verifyCallback(deps, input);
  const { chatroomId } = input;
  if (!ID_PATTERN.test(chatroomId)) throw new ValidationError("chatroom_id is malformed.");
  const callback = parseQueueCallback(input.raw);
  if (!callback) throw new ValidationError("The body is not a QStash callback.");
  const status = await applyTitle(deps, { chatroomId, callback });
  deps.log.info("qstash_title_callback", {
    chatroom_id: chatroomId,
    upstream_status: callback.status,
    result: status,
  });
  return { status };
}
