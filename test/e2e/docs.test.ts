// /docs in headless Chromium: Scalar's reference renders from the Worker alone (its bundle is a
// static asset, no CDN), under the pages' nonce CSP, and its try-it client sends a real request.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, test } from "vitest";
import { call, workerUrl } from "../support/api.ts";
import { createSession } from "../support/session.ts";
import { ARTIFACTS, openBrowser } from "./browser.ts";

describe("/docs (Scalar API reference)", () => {
  test("is served with the pages' nonce CSP, loading its bundle from this origin", async () => {
    const res = await fetch(`${workerUrl}/docs`);
    expect(res.status).toBe(200);
    const csp = res.headers.get("content-security-policy") ?? "";
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    const html = await res.text();
    const scripts = [...html.matchAll(/<script\b([^>]*)>/g)].map((m) => m[1] ?? "");
    expect(scripts.length).toBeGreaterThan(0);
    for (const attrs of scripts) expect(attrs).toContain(`nonce="${nonce}"`);
    const src = /<script src="([^"]+)"/.exec(html)?.[1] ?? "";
    expect(src).toMatch(/^\/docs\/scalar\/api-reference-[\d.]+\.js$/);
    // The bundle is a static asset served by the Worker itself, not a CDN.
    const bundle = await fetch(`${workerUrl}${src}`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get("content-type")).toMatch(/javascript/);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(1_000_000);
  });

  test("a reader expands an operation and sends it with the try-it client", async () => {
    const session = await createSession({ name: "Docs reader" });
    const title = `Docs ${crypto.randomUUID().slice(0, 8)}`;
    const room = await call("POST", "/chatroom", { token: session.token, body: { title } });
    expect(room.status).toBe(201);

    const { page, blocked, problems, calls } = await openBrowser();
    await page.goto(`${workerUrl}/docs`);
    // Rendered from /openapi.json: the tag groups appear in the sidebar.
    const chatGroup = page.getByRole("button", { name: /Open Group - Chat/ }).first();
    await chatGroup.waitFor({ state: "visible", timeout: 20_000 });
    await chatGroup.click();
    await page
      .getByText("The caller's chatrooms, newest activity first (cached per user)")
      .first()
      .click();

    const tryIt = page.getByRole("button", { name: /Test Request\s*\(get \/chatroom\)/ });
    await tryIt.waitFor({ state: "visible" });
    await tryIt.click();
    const token = page.getByPlaceholder("Token").last();
    await token.waitFor({ state: "visible" });
    await token.click();
    await page.keyboard.type(session.token);
    const sent = page.waitForResponse(
      (r) => new URL(r.url()).pathname === "/chatroom" && r.request().method() === "GET",
    );
    await page
      .getByRole("button", { name: /Send get request to/ })
      .first()
      .click();
    const response = await sent;
    expect(response.status()).toBe(200);
    expect(response.request().headers().authorization).toBe(`Bearer ${session.token}`);
    await page.getByText(title).first().waitFor({ state: "visible" });
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "docs-try-it.png") });

    expect(calls).toContain("GET /openapi.json 200");
    expect(calls.some((c) => /^GET \/docs\/scalar\/api-reference-[\d.]+\.js 200$/.test(c))).toBe(
      true,
    );
    // Nothing left this origin (no CDN, fonts, telemetry or request proxy).
    expect(blocked).toEqual([]);
    // The CSP is the playground's, unchanged: scripts and stylesheets run by nonce. Scalar's
    // components also write style attributes, which that CSP refuses; the page works without
    // them, so those reports are the only ones tolerated.
    expect(problems.filter((p) => !/Applying inline style violates/.test(p))).toEqual([]);
  });
});
