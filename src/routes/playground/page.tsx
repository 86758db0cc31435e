import { raw } from "hono/html";
import { PLAYGROUND_CSS } from "./styles";

interface PageProps {
  /** CSP nonce for the one inline style and the one script (public/playground/app.js). */
  nonce: string;
  /** True when send-otp echoes the code (OTP_DELIVERY=response), so the page can say so. */
  codesInResponse: boolean;
}

function AuthView(props: { codesInResponse: boolean }) {
  return (
    <section id="auth-view" class="card auth" hidden>
      <h2>Sign up or log in</h2>
      <p class="muted">
        We text a 6-digit code to your number.
        {props.codesInResponse
          ? " This deployment shows the code here instead (development only)."
          : ""}
      </p>
      <form id="phone-form">
        <label>
          Mobile number
          <input
            id="mobile"
            name="mobile"
            type="tel"
            autocomplete="tel"
            placeholder="+1 555 010 0000"
            maxlength={32}
            required
          />
        </label>
        <div class="row">
          <button type="submit" value="login" id="send-code">
            Send login code
          </button>
          <button type="submit" value="signup" id="sign-up" class="secondary">
            Sign up
          </button>
        </div>
      </form>
      <form id="otp-form" hidden>
        <p id="otp-sent" class="muted" />
        <p id="dev-otp" class="dev-otp" hidden>
          Development code: <code id="dev-otp-code" />{" "}
          <button type="button" id="use-dev-otp" class="link">
            Use it
          </button>
        </p>
        <label>
          6-digit code
          <input
            id="otp"
            name="otp"
            inputmode="numeric"
            autocomplete="one-time-code"
            pattern="[0-9]{6}"
            maxlength={6}
            required
          />
        </label>
        <div class="row">
          <button type="submit" id="verify">
            Verify and log in
          </button>
          <button type="button" id="otp-back" class="link">
            Use another number
          </button>
        </div>
      </form>
    </section>
  );
}

function Sidebar() {
  return (
    <aside class="side">
      <div class="card">
        <h2>Chatrooms</h2>
        <form id="new-room">
          <input
            id="room-title"
            name="title"
            maxlength={100}
            placeholder="New chatroom title"
            aria-label="New chatroom title"
            required
          />
          <button type="submit" id="create-room">
            Create
          </button>
        </form>
        <ul id="rooms" />
        <p id="rooms-empty" class="muted" hidden>
          No chatrooms yet.
        </p>
      </div>
      <div class="card">
        <h2>Plan and usage</h2>
        <p>
          Plan: <strong id="plan">…</strong> <span id="plan-status" class="muted" />
        </p>
        <p>
          <span id="remaining" class="remaining">
            …
          </span>{" "}
          prompts left today
        </p>
        <meter id="usage-meter" min={0} max={1} value={0} />
        <p class="muted">
          Used <span id="used">…</span> of <span id="limit">…</span>; resets{" "}
          <span id="resets">…</span>
        </p>
        <button type="button" id="upgrade">
          Upgrade to Pro
        </button>
      </div>
    </aside>
  );
}

function ChatView() {
  return (
    <section class="chat card">
      <h2 id="room-name">Pick or create a chatroom</h2>
      <ol id="messages" aria-live="polite" />
      <form id="prompt-form">
        <textarea
          id="prompt"
          name="content"
          rows={3}
          maxlength={4000}
          placeholder="Ask something… (Enter sends, Shift+Enter adds a line)"
          aria-label="Prompt"
          required
          disabled
        />
        <button type="submit" id="send" disabled>
          Send
        </button>
      </form>
    </section>
  );
}

/**
 * The playground's browser code: a static asset under public/ (wrangler.jsonc `assets`), checked
 * by tsc (tsconfig.playground.json) and Biome, outside the Worker bundle.
 */
const PLAYGROUND_SCRIPT_SRC = "/playground/app.js";

/**
 * The whole playground: a static shell the script brings to life with the JSON API. The script is
 * a module, so it runs once the document is parsed.
 */
export function PlaygroundPage(props: PageProps) {
  return (
    <>
      {raw("<!doctype html>")}
      <html lang="en">
        <head>
          <meta charset="utf-8" />
          <meta name="viewport" content="width=device-width, initial-scale=1" />
          <title>Gemini Chat playground</title>
          <link rel="icon" href="data:," />
          <style nonce={props.nonce} dangerouslySetInnerHTML={{ __html: PLAYGROUND_CSS }} />
        </head>
        <body>
          <header class="top">
            <h1>
              Gemini Chat <span>playground</span>
            </h1>
            <div id="who" hidden>
              <span id="who-number" />
              <span id="tier-badge" class="badge" />
              <button type="button" id="logout" class="link">
                Log out
              </button>
            </div>
            <nav>
              <a href="/docs">API reference</a>
              <a href="/openapi.json">OpenAPI</a>
            </nav>
          </header>
          <main>
            <div id="notice" class="notice" role="status" hidden />
            <div id="error" class="error" role="alert" hidden />
            <p id="loading" class="empty">
              Loading…
            </p>
            <noscript>
              <p class="empty">The playground needs JavaScript.</p>
            </noscript>
            <AuthView codesInResponse={props.codesInResponse} />
            <section id="app-view" class="app" hidden>
              <Sidebar />
              <ChatView />
            </section>
          </main>
          <script type="module" src={PLAYGROUND_SCRIPT_SRC} nonce={props.nonce} />
        </body>
      </html>
    </>
  );
}
