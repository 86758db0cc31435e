// @ts-check
/**
 * The playground's browser code: a static asset (wrangler.jsonc `assets`), loaded by the page as
 * a module under its CSP nonce. Plain JavaScript with JSDoc types, so there is no build step and
 * still `tsc -p tsconfig.playground.json` and Biome check it. User data is written with
 * textContent only, never as HTML. Tokens live in sessionStorage; a refresh is single-flight
 * because refresh tokens rotate and presenting a rotated one revokes the whole session.
 */

/**
 * @typedef {"basic" | "pro"} Tier
 * @typedef {{ mobile_number: string, tier: Tier }} User
 * @typedef {{ token: string, refresh_token: string, expires_at: number, user?: User }} Session
 * @typedef {{ token: string, refresh_token: string, expires_in: number }} TokenPair
 * @typedef {TokenPair & { user: User }} LoggedIn
 * @typedef {{ expires_in: number, otp?: string | null }} OtpSent
 * @typedef {{ code: string, message: string, request_id?: string, details?: unknown }} ErrorBody
 * @typedef {{ id: string, title: string, message_count: number }} Chatroom
 * @typedef {{ prompt_tokens: number, reply_tokens: number }} Usage
 * @typedef {{
 *   id?: string,
 *   role: "user" | "model",
 *   content: string | null,
 *   status: "pending" | "complete" | "failed" | "cancelled",
 *   error?: string | null,
 *   usage?: Usage | null,
 * }} Message
 * @typedef {{ chatroom: Chatroom, messages: Message[] }} ChatroomDetail
 * @typedef {{ daily_limit: number, used_today: number, resets_at: string }} DailyUsage
 * @typedef {{
 *   tier: Tier,
 *   status: string | null,
 *   cancel_at_period_end: boolean,
 *   usage: DailyUsage,
 * }} SubscriptionStatus
 * @typedef {{ event: string, id: string, data: any }} ServerEvent  data: the frame's JSON
 * @typedef {{ body?: unknown, auth?: boolean, accept?: string, headers?: Record<string, string> }}
 *   SendOptions
 */

const SESSION_KEY = "playground.session";

/**
 * The element with this id, checked to be a `type` (HTMLElement by default).
 * @template {HTMLElement} [T=HTMLElement]
 * @param {string} id
 * @param {new (...args: never[]) => T} [type]
 * @returns {T}
 */
function byId(id, type) {
  return checked(document.getElementById(id), `#${id}`, type);
}

/**
 * The first element under `root` matching `selector`, checked to be a `type`.
 * @template {HTMLElement} [T=HTMLElement]
 * @param {ParentNode} root
 * @param {string} selector
 * @param {new (...args: never[]) => T} [type]
 * @returns {T}
 */
function find(root, selector, type) {
  return checked(root.querySelector(selector), selector, type);
}

/**
 * @template {HTMLElement} T
 * @param {Element | null} node
 * @param {string} what
 * @param {new (...args: never[]) => T} [type]
 * @returns {T}
 */
function checked(node, what, type) {
  if (!(node instanceof (type ?? HTMLElement))) throw new Error(`The page has no ${what}.`);
  return /** @type {T} */ (node);
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [cls]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

/** @type {Session | null} */
let session = readSession();
/** @type {Promise<void> | null} */
let refreshing = null;
/** @type {Chatroom[]} */
let rooms = [];
/** @type {string | null} */
let currentRoom = null;
let streaming = false;
/** @type {string | null} */
let pendingNumber = null;
/** A model reply's text so far, per bubble, while it streams. */
const streamTexts = new WeakMap();

/** @returns {Session | null} */
function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch {
    return null;
  }
}

/** @param {Session | null} next */
function writeSession(next) {
  session = next;
  if (next) sessionStorage.setItem(SESSION_KEY, JSON.stringify(next));
  else sessionStorage.removeItem(SESSION_KEY);
}

// ---- messages to the person -------------------------------------------------------------

/** @param {string} text */
function notify(text) {
  const box = byId("notice");
  box.textContent = text;
  box.hidden = !text;
}

function clearError() {
  const box = byId("error");
  box.replaceChildren();
  box.hidden = true;
}

/** @param {unknown} err */
function showError(err) {
  const box = byId("error");
  box.replaceChildren();
  const line = el("div");
  const message = err instanceof Error && err.message ? err.message : "Something went wrong.";
  line.append(el("strong", "", message));
  if (err instanceof ApiError) {
    if (err.code) line.append(" ", el("code", "", err.code));
    if (err.retryAfter) line.append(` · try again in ${err.retryAfter} s`);
    if (err.requestId) line.append(" · request ", el("code", "", err.requestId));
  }
  box.append(line);
  const details = err instanceof ApiError ? err.details : undefined;
  if (Array.isArray(details) && details.length > 0) {
    const list = el("ul");
    for (const d of details) {
      const where = d?.path ? `${d.path}: ` : "";
      list.append(el("li", "", where + (d?.message ? d.message : JSON.stringify(d))));
    }
    box.append(list);
  } else if (details && typeof details === "object") {
    box.append(el("div", "", JSON.stringify(details)));
  }
  box.hidden = false;
}

// ---- the API ----------------------------------------------------------------------------

class ApiError extends Error {
  /**
   * @param {number} status
   * @param {ErrorBody} error
   * @param {Headers} [headers]
   */
  constructor(status, error, headers) {
    super(error.message);
    this.status = status;
    this.code = error.code;
    this.requestId = error.request_id || headers?.get("x-request-id");
    this.details = error.details;
    this.retryAfter = headers?.get("retry-after");
  }
}

/**
 * @param {Response} res
 * @returns {Promise<ApiError>}
 */
async function errorOf(res) {
  let body = null;
  try {
    body = await res.json();
  } catch {}
  const error = body?.error
    ? body.error
    : { code: `http_${res.status}`, message: `The server answered ${res.status}.` };
  return new ApiError(res.status, error, res.headers);
}

/** @returns {Promise<void>} */
function refreshTokens() {
  if (!refreshing) {
    const presented = session?.refresh_token;
    refreshing = (async () => {
      if (!presented) throw new ApiError(401, { code: "unauthorized", message: "Log in again." });
      const res = await fetch("/auth/refresh", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ refresh_token: presented }),
      });
      if (!res.ok) {
        const err = await errorOf(res);
        if (res.status === 401) signedOut("Your session ended; log in again.");
        throw err;
      }
      /** @type {TokenPair} */
      const pair = await res.json();
      writeSession({
        ...session,
        token: pair.token,
        refresh_token: pair.refresh_token,
        expires_at: Date.now() + pair.expires_in * 1000,
      });
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/**
 * One API call: JSON in, Response out; refreshes the access token before it expires or on a 401.
 * @param {string} method
 * @param {string} path
 * @param {SendOptions} [options]
 * @returns {Promise<Response>}
 */
async function send(method, path, options = {}) {
  const auth = options.auth !== false;
  if (auth) {
    if (!session) throw new ApiError(401, { code: "unauthorized", message: "Log in first." });
    if (Date.now() > session.expires_at - 15000) await refreshTokens();
  }
  /** @type {string | null} */
  let sentToken = null;
  const attempt = () => {
    /** @type {Record<string, string>} */
    const headers = { accept: options.accept || "application/json", ...options.headers };
    if (options.body !== undefined) headers["content-type"] = "application/json";
    if (auth) {
      if (!session) throw new ApiError(401, { code: "unauthorized", message: "Log in again." });
      sentToken = session.token;
      headers.authorization = `Bearer ${sentToken}`;
    }
    return fetch(path, {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  };
  let res = await attempt();
  if (res.status === 401 && auth && session) {
    // Another call may have refreshed meanwhile: retry with its token instead of rotating again.
    if (session.token === sentToken) await refreshTokens();
    else if (refreshing) await refreshing;
    if (!session) throw await errorOf(res);
    res = await attempt();
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

/**
 * A JSON call: the parsed body, or null for 204.
 * @param {string} method
 * @param {string} path
 * @param {unknown} [body]
 * @param {SendOptions} [options]
 * @returns {Promise<any>}
 */
async function api(method, path, body, options) {
  const res = await send(method, path, { body, ...options });
  return res.status === 204 ? null : res.json();
}

/**
 * Runs an action with its button disabled, showing any failure in the error box.
 * @param {HTMLButtonElement | null} button
 * @param {() => Promise<unknown>} action
 */
async function act(button, action) {
  if (button) button.disabled = true;
  clearError();
  try {
    await action();
  } catch (err) {
    showError(err);
  } finally {
    if (button) button.disabled = false;
  }
}

// ---- signing in -------------------------------------------------------------------------

function showAuth() {
  byId("loading").hidden = true;
  byId("app-view").hidden = true;
  byId("who").hidden = true;
  byId("auth-view").hidden = false;
  byId("otp-form").hidden = pendingNumber === null;
  byId("phone-form").hidden = pendingNumber !== null;
}

/** @param {string} [message] */
function signedOut(message) {
  writeSession(null);
  currentRoom = null;
  rooms = [];
  pendingNumber = null;
  notify(message || "");
  showAuth();
}

/** @param {string} number */
async function requestCode(number) {
  /** @type {OtpSent} */
  const sent = await api("POST", "/auth/send-otp", { mobile_number: number }, { auth: false });
  pendingNumber = number;
  byId("otp-sent").textContent =
    `Code sent to ${number}; it works for ${Math.round(sent.expires_in / 60)} minutes.`;
  byId("dev-otp").hidden = !sent.otp;
  byId("dev-otp-code").textContent = sent.otp || "";
  const otp = byId("otp", HTMLInputElement);
  otp.value = "";
  showAuth();
  otp.focus();
}

byId("phone-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const submitter = event.submitter instanceof HTMLButtonElement ? event.submitter : null;
  const intent = submitter?.value === "signup" ? "signup" : "login";
  const number = byId("mobile", HTMLInputElement).value.trim();
  act(submitter, async () => {
    notify("");
    if (intent === "signup") {
      try {
        await api("POST", "/auth/signup", { mobile_number: number }, { auth: false });
        notify("Account created. Enter the code to log in.");
      } catch (err) {
        if (!(err instanceof ApiError) || err.code !== "conflict") throw err;
        notify("This number already has an account; logging in.");
      }
    }
    await requestCode(number);
  });
});

byId("use-dev-otp").addEventListener("click", () => {
  const otp = byId("otp", HTMLInputElement);
  otp.value = byId("dev-otp-code").textContent ?? "";
  otp.focus();
});

byId("otp-back").addEventListener("click", () => {
  pendingNumber = null;
  clearError();
  showAuth();
});

byId("otp-form").addEventListener("submit", (event) => {
  event.preventDefault();
  act(byId("verify", HTMLButtonElement), async () => {
    /** @type {LoggedIn} */
    const s = await api(
      "POST",
      "/auth/verify-otp",
      { mobile_number: pendingNumber, otp: byId("otp", HTMLInputElement).value.trim() },
      { auth: false },
    );
    writeSession({
      token: s.token,
      refresh_token: s.refresh_token,
      expires_at: Date.now() + s.expires_in * 1000,
      user: s.user,
    });
    pendingNumber = null;
    notify("");
    await showApp();
  });
});

byId("logout").addEventListener("click", () => {
  act(byId("logout", HTMLButtonElement), async () => {
    try {
      await api("POST", "/auth/logout", { refresh_token: session?.refresh_token });
    } finally {
      signedOut("You are logged out.");
    }
  });
});

// ---- plan and usage ---------------------------------------------------------------------

/** @param {Tier} tier */
function renderTier(tier) {
  const badge = byId("tier-badge");
  badge.textContent = tier === "pro" ? "Pro" : "Basic";
  badge.classList.toggle("pro", tier === "pro");
  byId("plan").textContent = tier === "pro" ? "Pro" : "Basic";
  byId("upgrade").hidden = tier === "pro";
}

/**
 * @param {number} remaining
 * @param {number} limit
 */
function renderRemaining(remaining, limit) {
  byId("remaining").textContent = String(remaining);
  const meter = byId("usage-meter", HTMLMeterElement);
  meter.max = Math.max(limit, 1);
  meter.value = Math.max(limit - remaining, 0);
}

/** @returns {Promise<SubscriptionStatus>} */
async function loadStatus() {
  /** @type {SubscriptionStatus} */
  const status = await api("GET", "/subscription/status");
  renderTier(status.tier);
  if (session?.user) writeSession({ ...session, user: { ...session.user, tier: status.tier } });
  byId("plan-status").textContent = status.status
    ? `(${status.status}${status.cancel_at_period_end ? ", cancels at period end" : ""})`
    : "";
  const usage = status.usage;
  renderRemaining(Math.max(usage.daily_limit - usage.used_today, 0), usage.daily_limit);
  byId("used").textContent = String(usage.used_today);
  byId("limit").textContent = String(usage.daily_limit);
  byId("resets").textContent = new Date(usage.resets_at).toLocaleString();
  return status;
}

byId("upgrade").addEventListener("click", () => {
  act(byId("upgrade", HTMLButtonElement), async () => {
    /** @type {{ checkout_url: string }} */
    const checkout = await api("POST", "/subscribe/pro", {});
    notify("Opening Stripe Checkout…");
    location.assign(checkout.checkout_url);
  });
});

/** Stripe confirms by webhook, which may land a moment after the redirect: poll the tier. */
async function awaitUpgrade() {
  notify("Payment received; waiting for Stripe to confirm…");
  const deadline = Date.now() + 30000;
  while (Date.now() < deadline) {
    const status = await loadStatus();
    if (status.tier === "pro") {
      notify(`Welcome to Pro: your daily limit is now ${status.usage.daily_limit} prompts.`);
      return;
    }
    await new Promise((r) => setTimeout(r, 1000));
  }
  notify("Stripe has not confirmed the payment yet; reload in a minute.");
}

// ---- chatrooms --------------------------------------------------------------------------

function renderRooms() {
  const list = byId("rooms");
  list.replaceChildren();
  for (const room of rooms) {
    const item = el("li");
    const button = el("button", room.id === currentRoom ? "room active" : "room");
    button.type = "button";
    button.dataset.id = room.id;
    button.append(el("span", "", room.title), el("small", "", String(room.message_count)));
    button.addEventListener("click", () => act(null, () => openRoom(room.id)));
    item.append(button);
    list.append(item);
  }
  byId("rooms-empty").hidden = rooms.length > 0;
}

async function loadRooms() {
  /** @type {{ chatrooms: Chatroom[] }} */
  const page = await api("GET", "/chatroom?limit=100");
  rooms = page.chatrooms;
  renderRooms();
}

byId("new-room").addEventListener("submit", (event) => {
  event.preventDefault();
  act(byId("create-room", HTMLButtonElement), async () => {
    const title = byId("room-title", HTMLInputElement);
    /** @type {{ chatroom: Chatroom }} */
    const created = await api("POST", "/chatroom", { title: title.value });
    title.value = "";
    // The list is cached server-side; add the new room here rather than re-reading it.
    rooms = [created.chatroom, ...rooms.filter((r) => r.id !== created.chatroom.id)];
    await openRoom(created.chatroom.id);
  });
});

const REPLY_CONTROLS = /** @type {const} */ ([
  ["stop", "Stop"],
  ["regenerate", "Regenerate"],
  ["resume", "Resume"],
]);

/**
 * @param {Message} message
 * @returns {HTMLLIElement}
 */
function messageNode(message) {
  const node = el("li", `msg ${message.role}`);
  node.dataset.id = message.id || "";
  node.append(
    el("div", "who", message.role === "user" ? "You" : "Gemini"),
    el("div", "text"),
    el("div", "meta"),
  );
  if (message.role === "model") {
    const actions = el("div", "actions");
    for (const [cls, label] of REPLY_CONTROLS) {
      const button = el("button", `link ${cls}`, label);
      button.type = "button";
      button.hidden = true;
      actions.append(button);
    }
    node.append(actions);
  }
  updateMessage(node, message);
  return node;
}

/**
 * @param {HTMLElement} node
 * @param {Message} message
 */
function updateMessage(node, message) {
  node.classList.toggle("pending", message.status === "pending");
  node.classList.toggle("failed", message.status === "failed");
  node.classList.toggle("cancelled", message.status === "cancelled");
  if (message.id) node.dataset.id = message.id;
  node.dataset.status = message.status;
  streamTexts.set(node, message.content || "");
  find(node, ".text").textContent =
    message.status === "failed" && !message.content
      ? `The reply failed (${message.error || "error"}).`
      : message.content;
  const meta = [];
  if (message.usage) {
    meta.push(`${message.usage.prompt_tokens} + ${message.usage.reply_tokens} tokens`);
  }
  if (message.status === "failed" && message.error) meta.push(`failed: ${message.error}`);
  if (message.status === "cancelled") meta.push("stopped");
  find(node, ".meta").textContent = meta.join(" · ");
  renderControls(node);
}

/** @param {HTMLElement} node */
function renderControls(node) {
  if (!node.classList.contains("model")) return;
  const status = node.dataset.status;
  const live = node.dataset.live === "1";
  find(node, "button.stop").hidden = status !== "pending" || !node.dataset.id;
  find(node, "button.resume").hidden = status !== "pending" || live || !node.dataset.id;
  find(node, "button.regenerate").hidden = status === "pending" || !node.dataset.id;
}

/**
 * Applies one event of a reply's stream to its bubble; a delta's id is kept to resume after it.
 * @param {HTMLElement} node
 * @param {ServerEvent} frame
 * @returns {boolean} true once the stream is over
 */
function applyReplyEvent(node, frame) {
  const data = frame.data || {};
  if (frame.event === "delta") {
    const text = (streamTexts.get(node) || "") + (data.text || "");
    streamTexts.set(node, text);
    if (frame.id) node.dataset.lastEventId = frame.id;
    find(node, ".text").textContent = text;
    return false;
  }
  if (frame.event === "done" || frame.event === "cancelled") {
    node.dataset.live = "";
    updateMessage(node, data.reply);
    return true;
  }
  if (frame.event === "error") {
    node.dataset.live = "";
    if (data.reply) updateMessage(node, data.reply);
    else {
      updateMessage(node, {
        role: "model",
        content: streamTexts.get(node) || "",
        status: "failed",
        error: data.error?.code,
      });
    }
    showError(
      new ApiError(0, data.error || { code: "upstream_error", message: "The reply failed." }),
    );
    return true;
  }
  return false;
}

/** @param {HTMLElement} node */
function interrupted(node) {
  node.dataset.live = "";
  renderControls(node);
  notify("The stream was cut; press Resume to pick it up.");
}

/**
 * The path of a reply in the open chatroom.
 * @param {HTMLElement} node
 */
function replyPath(node) {
  return `/chatroom/${encodeURIComponent(currentRoom ?? "")}/messages/${encodeURIComponent(node.dataset.id ?? "")}`;
}

/** @param {HTMLElement} node */
async function followReply(node) {
  const path = `${replyPath(node)}/stream`;
  node.dataset.live = "1";
  renderControls(node);
  let finished = false;
  try {
    const res = await send("GET", path, {
      accept: "text/event-stream",
      headers: { "last-event-id": node.dataset.lastEventId || "0" },
    });
    notify("");
    await readEvents(res.body, (frame) => {
      if (applyReplyEvent(node, frame)) finished = true;
      scrollDown();
    });
  } finally {
    if (!finished) interrupted(node);
  }
}

byId("messages").addEventListener("click", (event) => {
  const button = event.target instanceof Element ? event.target.closest("button") : null;
  const node = button?.closest(".msg.model");
  if (!button || !(node instanceof HTMLElement) || !currentRoom) return;
  const path = replyPath(node);
  if (button.classList.contains("stop")) {
    act(button, async () => {
      /** @type {{ message: Message }} */
      const body = await api("POST", `${path}/cancel`);
      if (node.dataset.live !== "1") updateMessage(node, body.message);
    });
  } else if (button.classList.contains("regenerate")) {
    act(button, async () => {
      /** @type {{ reply: Message }} */
      const body = await api("POST", `${path}/regenerate`);
      node.dataset.lastEventId = "";
      updateMessage(node, body.reply);
      await followReply(node);
      await loadStatus().catch(() => {});
    });
  } else if (button.classList.contains("resume")) {
    act(button, () => followReply(node));
  }
});

function scrollDown() {
  const list = byId("messages");
  list.scrollTop = list.scrollHeight;
}

/** @param {string} id */
async function openRoom(id) {
  /** @type {ChatroomDetail} */
  const detail = await api("GET", `/chatroom/${encodeURIComponent(id)}`);
  currentRoom = id;
  const known = rooms.findIndex((r) => r.id === id);
  if (known >= 0) rooms[known] = detail.chatroom;
  renderRooms();
  byId("room-name").textContent = detail.chatroom.title;
  const list = byId("messages");
  list.replaceChildren();
  for (const m of detail.messages) list.append(messageNode(m));
  if (detail.messages.length === 0) list.append(el("li", "empty", "No messages yet. Say hello."));
  const prompt = byId("prompt", HTMLTextAreaElement);
  prompt.disabled = false;
  byId("send", HTMLButtonElement).disabled = false;
  prompt.focus();
  scrollDown();
}

// ---- sending a prompt with a streamed reply ----------------------------------------------

/**
 * @param {string} frame
 * @returns {ServerEvent}
 */
function parseFrame(frame) {
  let event = "message";
  let id = "";
  const data = [];
  for (const line of frame.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  }
  return { event, id, data: data.length > 0 ? JSON.parse(data.join("\n")) : null };
}

/**
 * Reads Server-Sent Events from a fetch body: frames end with a blank line.
 * @param {ReadableStream<Uint8Array<ArrayBuffer>> | null} body
 * @param {(frame: ServerEvent) => void} onEvent
 */
async function readEvents(body, onEvent) {
  if (!body) throw new Error("The stream had no body.");
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer = (buffer + value).replace(/\r\n?/g, "\n");
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (frame.trim()) onEvent(parseFrame(frame));
      end = buffer.indexOf("\n\n");
    }
  }
  if (buffer.trim()) onEvent(parseFrame(buffer));
}

/** @param {string} content */
async function sendPrompt(content) {
  const roomId = currentRoom;
  const list = byId("messages");
  list.querySelector(".empty")?.remove();
  const mine = messageNode({ role: "user", content, status: "complete" });
  const reply = messageNode({ role: "model", content: "", status: "pending" });
  list.append(mine, reply);
  scrollDown();
  let res;
  try {
    res = await send("POST", `/chatroom/${encodeURIComponent(roomId ?? "")}/message`, {
      body: { content },
      accept: "text/event-stream",
    });
  } catch (err) {
    // A refused prompt (quota, validation) leaves nothing behind: take the bubbles back.
    mine.remove();
    reply.remove();
    throw err;
  }
  const remaining = res.headers.get("ratelimit-remaining");
  const limit = res.headers.get("ratelimit-limit");
  if (remaining !== null && limit !== null) renderRemaining(Number(remaining), Number(limit));
  const replyUrl = res.headers.get("location") || "";
  reply.dataset.id = replyUrl.slice(replyUrl.lastIndexOf("/") + 1);
  reply.dataset.live = "1";
  renderControls(reply);
  let finished = false;
  try {
    await readEvents(res.body, (frame) => {
      const data = frame.data || {};
      if (frame.event === "message" && data.message) updateMessage(mine, data.message);
      else if (applyReplyEvent(reply, frame)) finished = true;
      scrollDown();
    });
  } catch {
    // Dropped mid-stream: the reply goes on server-side (Resume).
  } finally {
    if (!finished) interrupted(reply);
    const room = rooms.find((r) => r.id === roomId);
    if (room && finished) room.message_count += 2;
    renderRooms();
    await loadStatus().catch(() => {});
  }
}

byId("prompt-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const prompt = byId("prompt", HTMLTextAreaElement);
  const content = prompt.value;
  if (streaming || !currentRoom || !content.trim()) return;
  streaming = true;
  prompt.value = "";
  act(byId("send", HTMLButtonElement), () => sendPrompt(content)).finally(() => {
    streaming = false;
    prompt.focus();
  });
});

byId("prompt").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    byId("prompt-form", HTMLFormElement).requestSubmit();
  }
});

// ---- start ------------------------------------------------------------------------------

async function showApp() {
  byId("loading").hidden = true;
  byId("auth-view").hidden = true;
  byId("app-view").hidden = false;
  byId("who").hidden = false;
  byId("who-number").textContent = session?.user ? session.user.mobile_number : "";
  renderTier(session?.user ? session.user.tier : "basic");
  await Promise.all([loadRooms(), loadStatus()]);
  const first = rooms[0];
  if (first && !currentRoom) await openRoom(first.id);
}

async function start() {
  const params = new URLSearchParams(location.search);
  const checkout = params.get("checkout");
  if (checkout) history.replaceState(null, "", location.pathname);
  if (!session) {
    if (checkout) notify("Log in to see your plan.");
    showAuth();
    return;
  }
  await act(null, showApp);
  if (!session) return;
  if (checkout === "success") await act(null, awaitUpgrade);
  else if (checkout === "canceled") notify("Checkout was canceled; you are still on Basic.");
}

start();
