/** The playground's stylesheet, inlined under the page's CSP nonce (no external assets). */
export const PLAYGROUND_CSS = `
:root { --bg: #f5f6fa; --card: #fff; --ink: #1d1f2b; --muted: #667085; --line: #e3e6ee;
  --accent: #3d5afe; --accent-ink: #fff; --user: #e8edff; --model: #f2f4f7; --bad: #b42318; --bad-bg: #fef3f2;
  --ok: #027a48; --ok-bg: #ecfdf3; --pro: #7a3dfe; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
header.top { display: flex; align-items: center; gap: 1rem; padding: .75rem 1.5rem; background: var(--card); border-bottom: 1px solid var(--line); }
header.top h1 { font-size: 1.15rem; margin: 0; }
header.top h1 span { color: var(--muted); font-weight: 400; }
header.top nav { margin-left: auto; display: flex; gap: 1rem; font-size: .9rem; }
#who { display: flex; align-items: center; gap: .5rem; font-size: .9rem; }
a { color: var(--accent); }
.badge { border-radius: 999px; padding: .05rem .6rem; font-size: .75rem; font-weight: 600; background: var(--model); color: var(--muted); text-transform: uppercase; letter-spacing: .03em; }
.badge.pro { background: var(--pro); color: #fff; }
main { max-width: 1200px; margin: 1rem auto; padding: 0 1.5rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 12px; padding: 1rem 1.25rem; }
.card h2 { font-size: 1rem; margin: 0 0 .75rem; }
.auth { max-width: 28rem; margin: 2rem auto; }
.app { display: grid; grid-template-columns: 300px 1fr; gap: 1rem; align-items: start; }
.side { display: grid; gap: 1rem; }
label { display: grid; gap: .25rem; font-size: .85rem; color: var(--muted); margin-bottom: .75rem; }
input, textarea { font: inherit; color: inherit; border: 1px solid var(--line); border-radius: 8px; padding: .5rem .65rem; width: 100%; background: #fff; }
input:focus, textarea:focus { outline: 2px solid var(--accent); outline-offset: -1px; }
button { font: inherit; border: 0; border-radius: 8px; padding: .5rem .9rem; background: var(--accent); color: var(--accent-ink); cursor: pointer; white-space: nowrap; }
button.secondary { background: #fff; color: var(--accent); border: 1px solid var(--accent); }
button.link { background: none; color: var(--accent); padding: .5rem 0; }
button:disabled { opacity: .5; cursor: default; }
.row { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; }
.notice, .error { margin: 0 0 1rem; padding: .65rem 1rem; border-radius: 8px; }
.notice { background: var(--ok-bg); color: var(--ok); }
.error { background: var(--bad-bg); color: var(--bad); }
.error code, .notice code { font-size: .85em; }
.error ul { margin: .25rem 0 0; padding-left: 1.2rem; }
.dev-otp { background: #fff8e1; border-radius: 8px; padding: .5rem .75rem; }
.dev-otp code { font-size: 1.1rem; letter-spacing: .15em; font-weight: 700; }
.muted { color: var(--muted); font-size: .85rem; }
#new-room { display: flex; gap: .5rem; margin-bottom: .75rem; }
#rooms { list-style: none; margin: 0; padding: 0; display: grid; gap: .25rem; max-height: 40vh; overflow: auto; }
#rooms button { width: 100%; text-align: left; background: none; color: var(--ink); border-radius: 8px; padding: .45rem .6rem; display: flex; justify-content: space-between; gap: .5rem; }
#rooms button:hover { background: var(--model); }
#rooms button.active { background: var(--user); font-weight: 600; }
#rooms small { color: var(--muted); font-weight: 400; }
.remaining { font-size: 1.6rem; font-weight: 700; }
meter { width: 100%; height: .75rem; }
.chat { display: grid; grid-template-rows: auto 1fr auto; min-height: 70vh; }
#messages { list-style: none; margin: 0; padding: 0; overflow: auto; max-height: 60vh; display: flex; flex-direction: column; gap: .6rem; }
.msg { max-width: 80%; padding: .5rem .8rem; border-radius: 12px; }
.msg.user { align-self: flex-end; background: var(--user); }
.msg.model { align-self: flex-start; background: var(--model); }
.msg.failed { background: var(--bad-bg); color: var(--bad); }
.msg .who { font-size: .75rem; color: var(--muted); font-weight: 600; }
.msg .text { white-space: pre-wrap; overflow-wrap: anywhere; }
.msg.pending .text::after { content: "▍"; animation: blink 1s steps(2) infinite; }
.msg .meta { font-size: .75rem; color: var(--muted); }
.msg.cancelled .text { color: var(--muted); }
.msg .actions { display: flex; gap: .75rem; }
.msg .actions button.link { padding: .1rem 0; font-size: .8rem; }
@keyframes blink { 50% { opacity: 0; } }
#prompt-form { display: flex; gap: .5rem; margin-top: .75rem; align-items: flex-end; }
#prompt-form textarea { resize: vertical; }
.empty { color: var(--muted); text-align: center; margin: 2rem 0; }
[hidden] { display: none !important; }
@media (max-width: 800px) { .app { grid-template-columns: 1fr; } }
`;
