import type { Handler } from "hono";
import { html } from "hono/html";
import type { AppEnv } from "../context";

/**
 * A self-contained reference page for /openapi.json: no CDN, so it renders offline and under a
 * strict CSP. It lists every operation with its parameters, body schema and responses.
 */
export const docsPage: Handler<AppEnv> = (c) =>
  c.html(html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Gemini Chat API reference</title>
    <style>
      body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 960px; padding: 1rem 2rem; color: #1d1d1f; }
      h1 { margin-bottom: 0; } .op { border: 1px solid #ddd; border-radius: 8px; margin: .75rem 0; padding: .5rem 1rem; }
      .m { display: inline-block; min-width: 4.5em; font-weight: 700; text-transform: uppercase; }
      .get { color: #0a7; } .post { color: #06c; } .patch { color: #b60; } .delete { color: #c22; }
      code, pre { font: 13px ui-monospace, monospace; } pre { background: #f6f6f6; padding: .5rem; overflow: auto; }
      summary { cursor: pointer; } .lock { color: #888; font-size: 12px; }
    </style>
  </head>
  <body>
    <h1>Gemini Chat API</h1>
    <p>Machine-readable document: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
    <main id="ops">Loading…</main>
    <script>
      const esc = (s) => String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]);
      const show = (v) => "<pre>" + esc(JSON.stringify(v, null, 2)) + "</pre>";
      fetch("/openapi.json").then((r) => r.json()).then((doc) => {
        document.title = doc.info.title + " reference";
        const out = [];
        for (const [path, item] of Object.entries(doc.paths)) {
          for (const [method, op] of Object.entries(item)) {
            const secured = (op.security || []).length > 0;
            out.push('<section class="op"><details><summary><span class="m ' + method + '">' + method + "</span> <code>" + esc(path) + "</code> " + esc(op.summary || "") + (secured ? ' <span class="lock">🔒 bearer</span>' : "") + "</summary>" +
              (op.description ? "<p>" + esc(op.description) + "</p>" : "") +
              (op.parameters ? "<h4>Parameters</h4>" + show(op.parameters) : "") +
              (op.requestBody ? "<h4>Body</h4>" + show(op.requestBody.content) : "") +
              "<h4>Responses</h4>" + Object.entries(op.responses).map(([s, r]) => "<p><b>" + s + "</b> " + esc(r.description) + "</p>").join("") +
              "</details></section>");
          }
        }
        document.getElementById("ops").innerHTML = out.join("") || "No operations.";
      });
    </script>
  </body>
</html>`);
