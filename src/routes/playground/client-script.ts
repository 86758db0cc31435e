/**
 * The playground's browser code, inlined under the page's CSP nonce. Plain ES2020 in a string so
 * no bundler touches it (no build step); it writes user data with textContent only, never as HTML.
 * Tokens live in sessionStorage; a refresh is single-flight because refresh tokens rotate and
 * presenting a rotated one revokes the whole session.
 */
export const PLAYGROUND_SCRIPT = String.raw`
"use strict";
(() => {
  const KEY = "playground.session";
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  };

  let session = readSession();
  let refreshing = null;
  let rooms = [];
  let currentRoom = null;
  let streaming = false;
  let pendingNumber = null;

  function readSession() {
    try {
      return JSON.parse(sessionStorage.getItem(KEY) || "null");
    } catch {
      return null;
    }
  }
  function writeSession(next) {
    session = next;
    if (next) sessionStorage.setItem(KEY, JSON.stringify(next));
    else sessionStorage.removeItem(KEY);
  }

  // ---- messages to the person -------------------------------------------------------------

  function notify(text) {
    const box = $("notice");
    box.textContent = text;
    box.hidden = !text;
  }
  function clearError() {
    const box = $("error");
    box.replaceChildren();
    box.hidden = true;
  }
  function showError(err) {
    const box = $("error");
    box.replaceChildren();
    const line = el("div");
    line.append(el("strong", "", err.message || "Something went wrong."));
    if (err.code) line.append(" ", el("code", "", err.code));
    if (err.retryAfter) line.append(" · try again in " + err.retryAfter + " s");
    if (err.requestId) line.append(" · request ", el("code", "", err.requestId));
    box.append(line);
    if (Array.isArray(err.details) && err.details.length > 0) {
      const list = el("ul");
      for (const d of err.details) {
        const where = d && d.path ? d.path + ": " : "";
        list.append(el("li", "", where + (d && d.message ? d.message : JSON.stringify(d))));
      }
      box.append(list);
    } else if (err.details && typeof err.details === "object") {
      box.append(el("div", "", JSON.stringify(err.details)));
    }
    box.hidden = false;
  }

  // ---- the API ----------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, error, headers) {
      super(error.message);
      this.status = status;
      this.code = error.code;
      this.requestId = error.request_id || (headers && headers.get("x-request-id"));
      this.details = error.details;
      this.retryAfter = headers && headers.get("retry-after");
    }
  }

  async function errorOf(res) {
    let body = null;
    try {
      body = await res.json();
    } catch {}
    const error = body && body.error ? body.error : { code: "http_" + res.status, message: "The server answered " + res.status + "." };
    return new ApiError(res.status, error, res.headers);
  }

  function refreshTokens() {
    if (!refreshing) {
      const presented = session && session.refresh_token;
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
        const pair = await res.json();
        writeSession(Object.assign({}, session, {
          token: pair.token,
          refresh_token: pair.refresh_token,
          expires_at: Date.now() + pair.expires_in * 1000,
        }));
      })().finally(() => {
        refreshing = null;
      });
    }
    return refreshing;
  }

  /** One API call: JSON in, Response out; refreshes the access token before it expires or on a 401. */
  async function send(method, path, options) {
    const opts = options || {};
    const auth = opts.auth !== false;
    if (auth) {
      if (!session) throw new ApiError(401, { code: "unauthorized", message: "Log in first." });
      if (Date.now() > session.expires_at - 15000) await refreshTokens();
    }
    let sentToken = null;
    const attempt = () => {
      const headers = Object.assign({ accept: opts.accept || "application/json" }, opts.headers || {});
      if (opts.body !== undefined) headers["content-type"] = "application/json";
      if (auth) {
        sentToken = session.token;
        headers.authorization = "Bearer " + sentToken;
      }
      return fetch(path, {
        method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      });
    };
    let res = await attempt();
    if (res.status === 401 && auth && session) {
      // Another call may have refreshed meanwhile: then retry with its token instead of rotating again.
      if (session.token === sentToken) await refreshTokens();
      else if (refreshing) await refreshing;
      if (!session) throw await errorOf(res);
      res = await attempt();
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  async function api(method, path, body, options) {
    const res = await send(method, path, Object.assign({ body }, options));
    return res.status === 204 ? null : res.json();
  }

  /** Runs an action with its button disabled, showing any failure in the error box. */
  async function act(button, fn) {
    if (button) button.disabled = true;
    clearError();
    try {
      await fn();
    } catch (err) {
      showError(err);
    } finally {
      if (button) button.disabled = false;
    }
  }

  // ---- signing in -------------------------------------------------------------------------

  function showAuth() {
    $("loading").hidden = true;
    $("app-view").hidden = true;
    $("who").hidden = true;
    $("auth-view").hidden = false;
    $("otp-form").hidden = pendingNumber === null;
    $("phone-form").hidden = pendingNumber !== null;
  }

  function signedOut(message) {
    writeSession(null);
    currentRoom = null;
    rooms = [];
    pendingNumber = null;
    notify(message || "");
    showAuth();
  }

  async function requestCode(number) {
    const sent = await api("POST", "/auth/send-otp", { mobile_number: number }, { auth: false });
    pendingNumber = number;
    $("otp-sent").textContent = "Code sent to " + number + "; it works for " + Math.round(sent.expires_in / 60) + " minutes.";
    const dev = $("dev-otp");
    dev.hidden = !sent.otp;
    $("dev-otp-code").textContent = sent.otp || "";
    $("otp").value = "";
    showAuth();
    $("otp").focus();
  }

  $("phone-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const intent = event.submitter && event.submitter.value === "signup" ? "signup" : "login";
    const number = $("mobile").value.trim();
    act(event.submitter, async () => {
      notify("");
      if (intent === "signup") {
        try {
          await api("POST", "/auth/signup", { mobile_number: number }, { auth: false });
          notify("Account created. Enter the code to log in.");
        } catch (err) {
          if (err.code !== "conflict") throw err;
          notify("This number already has an account; logging in.");
        }
      }
      await requestCode(number);
    });
  });

  $("use-dev-otp").addEventListener("click", () => {
    $("otp").value = $("dev-otp-code").textContent;
    $("otp").focus();
  });

  $("otp-back").addEventListener("click", () => {
    pendingNumber = null;
    clearError();
    showAuth();
  });

  $("otp-form").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("verify"), async () => {
      const s = await api("POST", "/auth/verify-otp", { mobile_number: pendingNumber, otp: $("otp").value.trim() }, { auth: false });
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

  $("logout").addEventListener("click", () => {
    act($("logout"), async () => {
      try {
        await api("POST", "/auth/logout", { refresh_token: session.refresh_token });
      } finally {
        signedOut("You are logged out.");
      }
    });
  });

  // ---- plan and usage ---------------------------------------------------------------------

  function renderTier(tier) {
    const badge = $("tier-badge");
    badge.textContent = tier === "pro" ? "Pro" : "Basic";
    badge.classList.toggle("pro", tier === "pro");
    $("plan").textContent = tier === "pro" ? "Pro" : "Basic";
    $("upgrade").hidden = tier === "pro";
  }

  function renderRemaining(remaining, limit) {
    $("remaining").textContent = String(remaining);
    const meter = $("usage-meter");
    meter.max = Math.max(limit, 1);
    meter.value = Math.max(limit - remaining, 0);
  }

  async function loadStatus() {
    const status = await api("GET", "/subscription/status");
    renderTier(status.tier);
    if (session && session.user) writeSession(Object.assign({}, session, { user: Object.assign({}, session.user, { tier: status.tier }) }));
    $("plan-status").textContent = status.status ? "(" + status.status + (status.cancel_at_period_end ? ", cancels at period end" : "") + ")" : "";
    const usage = status.usage;
    renderRemaining(Math.max(usage.daily_limit - usage.used_today, 0), usage.daily_limit);
    $("used").textContent = String(usage.used_today);
    $("limit").textContent = String(usage.daily_limit);
    $("resets").textContent = new Date(usage.resets_at).toLocaleString();
    return status;
  }

  $("upgrade").addEventListener("click", () => {
    act($("upgrade"), async () => {
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
        notify("Welcome to Pro: your daily limit is now " + status.usage.daily_limit + " prompts.");
        return;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    notify("Stripe has not confirmed the payment yet; reload in a minute.");
  }

  // ---- chatrooms --------------------------------------------------------------------------

  function renderRooms() {
    const list = $("rooms");
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
    $("rooms-empty").hidden = rooms.length > 0;
  }

  async function loadRooms() {
    const page = await api("GET", "/chatroom?limit=100");
    rooms = page.chatrooms;
    renderRooms();
  }

  $("new-room").addEventListener("submit", (event) => {
    event.preventDefault();
    act($("create-room"), async () => {
      const created = await api("POST", "/chatroom", { title: $("room-title").value });
      $("room-title").value = "";
      // The list is cached server-side; add the new room here rather than re-reading it.
      rooms = [created.chatroom].concat(rooms.filter((r) => r.id !== created.chatroom.id));
      await openRoom(created.chatroom.id);
    });
  });

  function messageNode(message) {
    const node = el("li", "msg " + message.role);
    node.dataset.id = message.id || "";
    node.append(el("div", "who", message.role === "user" ? "You" : "Gemini"), el("div", "text"), el("div", "meta"));
    if (message.role === "model") {
      const actions = el("div", "actions");
      for (const [cls, label] of [["stop", "Stop"], ["regenerate", "Regenerate"], ["resume", "Resume"]]) {
        const button = el("button", "link " + cls, label);
        button.type = "button";
        button.hidden = true;
        actions.append(button);
      }
      node.append(actions);
    }
    updateMessage(node, message);
    return node;
  }

  function updateMessage(node, message) {
    node.classList.toggle("pending", message.status === "pending");
    node.classList.toggle("failed", message.status === "failed");
    node.classList.toggle("cancelled", message.status === "cancelled");
    if (message.id) node.dataset.id = message.id;
    node.dataset.status = message.status;
    node.streamText = message.content || "";
    node.querySelector(".text").textContent = message.status === "failed" && !message.content ? "The reply failed (" + (message.error || "error") + ")." : message.content;
    const meta = [];
    if (message.usage) meta.push(message.usage.prompt_tokens + " + " + message.usage.reply_tokens + " tokens");
    if (message.status === "failed" && message.error) meta.push("failed: " + message.error);
    if (message.status === "cancelled") meta.push("stopped");
    node.querySelector(".meta").textContent = meta.join(" · ");
    renderControls(node);
  }

  function renderControls(node) {
    if (!node.classList.contains("model")) return;
    const status = node.dataset.status;
    const live = node.dataset.live === "1";
    node.querySelector("button.stop").hidden = status !== "pending" || !node.dataset.id;
    node.querySelector("button.resume").hidden = status !== "pending" || live || !node.dataset.id;
    node.querySelector("button.regenerate").hidden = status === "pending" || !node.dataset.id;
  }

  // True once the stream is over; a delta's id is kept to resume after it.
  function applyReplyEvent(node, frame) {
    const data = frame.data || {};
    if (frame.event === "delta") {
      node.streamText = (node.streamText || "") + (data.text || "");
      if (frame.id) node.dataset.lastEventId = frame.id;
      node.querySelector(".text").textContent = node.streamText;
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
      else updateMessage(node, { role: "model", content: node.streamText || "", status: "failed", error: data.error && data.error.code });
      showError(new ApiError(0, data.error || { code: "upstream_error", message: "The reply failed." }));
      return true;
    }
    return false;
  }

  function interrupted(node) {
    node.dataset.live = "";
    renderControls(node);
    notify("The stream was cut; press Resume to pick it up.");
  }

  async function followReply(node) {
    const path = "/chatroom/" + encodeURIComponent(currentRoom) + "/messages/" + encodeURIComponent(node.dataset.id) + "/stream";
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

  $("messages").addEventListener("click", (event) => {
    const button = event.target.closest("button");
    const node = button && button.closest(".msg.model");
    if (!node || !currentRoom) return;
    const path = "/chatroom/" + encodeURIComponent(currentRoom) + "/messages/" + encodeURIComponent(node.dataset.id);
    if (button.classList.contains("stop")) {
      act(button, async () => {
        const body = await api("POST", path + "/cancel");
        if (node.dataset.live !== "1") updateMessage(node, body.message);
      });
    } else if (button.classList.contains("regenerate")) {
      act(button, async () => {
        const body = await api("POST", path + "/regenerate");
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
    const list = $("messages");
    list.scrollTop = list.scrollHeight;
  }

  async function openRoom(id) {
    const detail = await api("GET", "/chatroom/" + encodeURIComponent(id));
    currentRoom = id;
    const known = rooms.findIndex((r) => r.id === id);
    if (known >= 0) rooms[known] = detail.chatroom;
    renderRooms();
    $("room-name").textContent = detail.chatroom.title;
    const list = $("messages");
    list.replaceChildren();
    for (const m of detail.messages) list.append(messageNode(m));
    if (detail.messages.length === 0) list.append(el("li", "empty", "No messages yet. Say hello."));
    $("prompt").disabled = false;
    $("send").disabled = false;
    $("prompt").focus();
    scrollDown();
  }

  // ---- sending a prompt with a streamed reply ----------------------------------------------

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

  /** Reads Server-Sent Events from a fetch body: frames end with a blank line. */
  async function readEvents(body, onEvent) {
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

  async function sendPrompt(content) {
    const roomId = currentRoom;
    const list = $("messages");
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    const mine = messageNode({ role: "user", content, status: "complete" });
    const reply = messageNode({ role: "model", content: "", status: "pending" });
    list.append(mine, reply);
    scrollDown();
    let res;
    try {
      res = await send("POST", "/chatroom/" + encodeURIComponent(roomId) + "/message", {
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
    const location = res.headers.get("location") || "";
    reply.dataset.id = location.slice(location.lastIndexOf("/") + 1);
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

  $("prompt-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const content = $("prompt").value;
    if (streaming || !currentRoom || !content.trim()) return;
    streaming = true;
    $("prompt").value = "";
    act($("send"), () => sendPrompt(content)).finally(() => {
      streaming = false;
      $("prompt").focus();
    });
  });

  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("prompt-form").requestSubmit();
    }
  });

  // ---- start ------------------------------------------------------------------------------

  async function showApp() {
    $("loading").hidden = true;
    $("auth-view").hidden = true;
    $("app-view").hidden = false;
    $("who").hidden = false;
    $("who-number").textContent = session.user ? session.user.mobile_number : "";
    renderTier(session.user ? session.user.tier : "basic");
    await Promise.all([loadRooms(), loadStatus()]);
    if (rooms.length > 0 && !currentRoom) await openRoom(rooms[0].id);
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
})();
`;
