import type { Logger } from "../../log";

/** The event-stream response headers (no buffering by proxies, no transforms). */
const SSE_HEADERS = {
  "Content-Type": "text/event-stream; charset=utf-8",
  "Cache-Control": "no-cache, no-transform",
  "X-Accel-Buffering": "no",
} as const;

/**
 * Writes one SSE event; a write to a client that went away never throws. `id` (a delta's
 * sequence number) is sent as `id:`, what a client resumes after (Last-Event-ID).
 */
export type EmitEvent = (event: string, data: unknown, id?: number) => void;

const HEARTBEAT = new TextEncoder().encode(":\n\n");

function frame(event: string, data: unknown, id?: number): Uint8Array {
  const idLine = id === undefined ? "" : `id: ${id}\n`;
  return new TextEncoder().encode(`${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * A `text/event-stream` response fed by `produce`. The stream outlives the handler: `produce`
 * runs under `waitUntil`, `gone` aborts when the client disconnects (or a write to it fails),
 * and the stream is closed when `produce` settles. A failure of `produce` is logged and sent to
 * the client as an `error` event with the generic 500 body.
 */
export function eventStreamResponse(o: {
  /** The request's own abort signal (the client went away). */
  requestSignal: AbortSignal | undefined;
  headers: Record<string, string>;
  log: Logger;
  /** What is logged when `produce` throws. */
  failure: string;
  waitUntil(p: Promise<unknown>): void;
  produce(emit: EmitEvent, gone: AbortSignal): Promise<unknown>;
  /**
   * Writes an SSE comment (`:`, ignored by EventSource) this often while `produce` runs, so a
   * producer that has nothing to send still learns, from the failed write, that its client left.
   */
  heartbeatMs?: number;
}): Response {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  let open = true;
  const gone = new AbortController();
  o.requestSignal?.addEventListener("abort", () => gone.abort());
  // A client that disconnects cancels the response body, which errors the writable side: that
  // ends the producer even while it writes nothing (request.signal aborts only under the
  // enable_request_signal compatibility flag).
  writer.closed.catch(() => {
    open = false;
    gone.abort();
  });
  const emit: EmitEvent = (event, data, id) => {
    if (!open) return;
    writer.write(frame(event, data, id)).catch(() => {
      open = false;
      gone.abort();
    });
  };
  const heartbeat =
    o.heartbeatMs === undefined
      ? undefined
      : setInterval(() => {
          if (!open) return;
          writer.write(HEARTBEAT).catch(() => {
            open = false;
            gone.abort();
          });
        }, o.heartbeatMs);
  const work = Promise.resolve()
    .then(() => o.produce(emit, gone.signal))
    .catch((err: unknown) => {
      o.log.failure(o.failure, err);
      emit("error", { error: { code: "internal_error", message: "Something went wrong." } });
    })
    .finally(() => {
      clearInterval(heartbeat);
      if (open) writer.close().catch(() => {});
    });
  o.waitUntil(work);
  return new Response(readable, { status: 200, headers: { ...o.headers, ...SSE_HEADERS } });
}
