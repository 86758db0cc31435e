import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { describe, expect, test } from "vitest";
import { cloudUrl, control, uniqueMobileNumber, workerUrl } from "../support/api.ts";
import { createSession, type TestSession } from "../support/session.ts";
import { ARTIFACTS, openBrowser } from "./browser.ts";

const SESSION_KEY = "playground.session";
/** The playground's script, a static asset (public/playground/app.js). */
const SCRIPT_PATH = "/playground/app.js";

const text = async (page: Page, selector: string) =>
  (await page.locator(selector).textContent()) ?? "";

async function storedSession(page: Page) {
  return page.evaluate(
    (key) => JSON.parse(sessionStorage.getItem(key) ?? "null"),
    SESSION_KEY,
  ) as Promise<{ token: string; refresh_token: string; expires_at: number } | null>;
}

/** Opens the playground already logged in as `session`. */
async function loggedIn(session: TestSession) {
  const browser = await openBrowser();
  await browser.page.goto(`${workerUrl}/`);
  await browser.page.locator("#auth-view").waitFor({ state: "visible" });
  await browser.page.evaluate(
    ([key, value]) => sessionStorage.setItem(key as string, value as string),
    [
      SESSION_KEY,
      JSON.stringify({
        token: session.token,
        refresh_token: session.refresh_token,
        expires_at: Date.now() + 600_000,
        user: session.user,
      }),
    ],
  );
  await browser.page.reload();
  await browser.page.locator("#app-view").waitFor({ state: "visible" });
  return browser;
}

async function currentRoomId(page: Page) {
  return page.evaluate(() =>
    document.querySelector("#rooms button.active")?.getAttribute("data-id"),
  );
}

/** Makes the local Gemini stream the reply to a prompt containing `match` in 4 slow chunks. */
async function slowStream(match: string, ms: number) {
  const res = await control("gemini/faults", { match, kind: "slow_stream", times: 1, ms });
  expect(res.status).toBe(201);
}

describe("playground page", () => {
  test("is served with a nonce-based CSP that matches its only inline style and its one script", async () => {
    const [first, second] = await Promise.all([fetch(`${workerUrl}/`), fetch(`${workerUrl}/`)]);
    expect(first.status).toBe(200);
    expect(first.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = first.headers.get("content-security-policy") ?? "";
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("connect-src 'self'");
    expect(second.headers.get("content-security-policy")).not.toContain(nonce);

    const html = await first.text();
    expect(html.startsWith("<!doctype html>")).toBe(true);
    // One script, no inline code: the module from this origin's static assets, under the nonce.
    const scripts = [...html.matchAll(/<script\b([^>]*)>([^<]*)<\/script>/g)].map((m) => [
      m[1],
      m[2],
    ]);
    const styles = [...html.matchAll(/<style\b([^>]*)>/g)].map((m) => m[1]);
    expect(scripts).toEqual([[` type="module" src="${SCRIPT_PATH}" nonce="${nonce}"`, ""]]);
    expect(styles).toEqual([` nonce="${nonce}"`]);
    // No external assets: every src/href stays on this origin (or is a data: URL).
    const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1] ?? "");
    expect(refs.filter((r) => !r.startsWith("/") && !r.startsWith("data:"))).toEqual([]);
  });

  test("serves its script as the checked file in public/, as JavaScript", async () => {
    const res = await fetch(`${workerUrl}${SCRIPT_PATH}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^(text|application)\/javascript/);
    expect(await res.text()).toBe(readFileSync(join("public", SCRIPT_PATH), "utf8"));
  });

  test("a person signs up by OTP, chats with a streamed reply and upgrades to Pro through Checkout", async () => {
    const { page, blocked, problems, calls } = await openBrowser();
    const number = uniqueMobileNumber();
    const title = `Playground ${crypto.randomUUID().slice(0, 8)}`;
    const prompt = `Name three colours, please (${crypto.randomUUID().slice(0, 6)})`;

    await page.goto(`${workerUrl}/`);
    await page.locator("#auth-view").waitFor({ state: "visible" });

    // A malformed number shows the API's error shape: code, request id and the field's issue.
    await page.fill("#mobile", "not a number");
    await page.click("#send-code");
    await page.locator("#error").waitFor({ state: "visible" });
    const error = await text(page, "#error");
    expect(error).toContain("invalid_request");
    expect(error).toMatch(/request \S{8,}/);
    expect(error).toContain("mobile_number:");

    await page.fill("#mobile", number);
    await page.click("#sign-up");
    await page.locator("#otp-form").waitFor({ state: "visible" });
    expect(await page.locator("#error").isHidden()).toBe(true);
    const code = await text(page, "#dev-otp-code");
    expect(code).toMatch(/^[0-9]{6}$/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "playground-otp.png") });
    await page.fill("#otp", code);
    await page.click("#verify");

    await page.locator("#app-view").waitFor({ state: "visible" });
    expect(await text(page, "#who-number")).toBe(number);
    await expect.poll(() => text(page, "#plan")).toBe("Basic");
    await expect.poll(() => text(page, "#remaining")).toBe("5");
    expect((await storedSession(page))?.refresh_token).toBeTruthy();

    await page.fill("#room-title", title);
    await page.click("#create-room");
    await expect.poll(() => text(page, "#room-name")).toBe(title);
    await expect.poll(() => text(page, "#rooms button.active")).toContain(title);

    // Record every text the reply bubble shows, to see it grow as deltas arrive.
    await page.evaluate(() => {
      const seen: string[] = [];
      (window as unknown as { replyTexts: string[] }).replyTexts = seen;
      new MutationObserver((records) => {
        for (const r of records) {
          const target = r.target as Element;
          if (target.classList?.contains("text") && target.closest(".msg.model")) {
            // The added node keeps the text of that moment; the target has the latest only.
            for (const node of r.addedNodes) seen.push(node.textContent ?? "");
          }
        }
      }).observe(document.getElementById("messages") as Node, { subtree: true, childList: true });
    });
    const streamed = page.waitForResponse((r) => r.url().endsWith("/message"));
    await page.fill("#prompt", prompt);
    await page.keyboard.press("Enter");
    const response = await streamed;
    expect(response.status()).toBe(200);
    expect(response.headers()["content-type"]).toMatch(/^text\/event-stream/);

    const reply = page.locator('.msg.model[data-status="complete"] .text');
    await reply.waitFor({ state: "visible" });
    expect(await reply.textContent()).toContain(`Echo: ${prompt}`);
    expect(await text(page, ".msg.user .text")).toBe(prompt);
    const texts = await page.evaluate(
      () => (window as unknown as { replyTexts: string[] }).replyTexts,
    );
    const partial = texts.filter((t) => t.length > 0 && !t.includes("local Gemini stand-in"));
    expect(partial.length).toBeGreaterThan(0);
    await expect.poll(() => text(page, "#remaining")).toBe("4");
    await expect.poll(() => text(page, "#used")).toBe("1");

    // Upgrade: the API's Checkout URL, the local Stripe page's Pay button, back to the playground.
    await page.click("#upgrade");
    await page.waitForURL((url) => url.href.startsWith(`${cloudUrl}/stripe/checkout/`));
    await page.getByRole("button", { name: "Pay" }).click();
    await page.waitForURL((url) => url.href.startsWith(`${workerUrl}/`));
    await expect.poll(() => text(page, "#plan"), { timeout: 30_000 }).toBe("Pro");
    expect(await page.locator("#tier-badge").textContent()).toBe("Pro");
    await expect.poll(() => text(page, "#notice")).toContain("Welcome to Pro");
    expect(await page.locator("#upgrade").isHidden()).toBe(true);
    await expect.poll(() => text(page, "#remaining")).toBe("999");
    expect(new URL(page.url()).search).toBe("");
    // The chatroom and its streamed reply are still there after the round trip.
    await expect.poll(() => text(page, "#room-name")).toBe(title);
    expect(await reply.textContent()).toContain(`Echo: ${prompt}`);

    await page.screenshot({ path: join(ARTIFACTS, "playground.png"), fullPage: true });

    expect(calls).toContain("POST /subscribe/pro 200");
    expect(blocked).toEqual([]);
    expect(problems).toEqual([]);
  });

  test("stops a streaming reply, regenerates it, and resumes a stream cut by a reload", async () => {
    const session = await createSession();
    const { page, problems, calls } = await loggedIn(session);
    const title = `Controls ${crypto.randomUUID().slice(0, 8)}`;
    await page.fill("#room-title", title);
    await page.click("#create-room");
    await expect.poll(() => text(page, "#room-name")).toBe(title);

    // Stop: a slow stream, stopped after its first delta, keeps the text it had sent.
    const first = `Tell me about stopping (${crypto.randomUUID().slice(0, 6)})`;
    await slowStream(first, 1_000);
    await page.fill("#prompt", first);
    await page.keyboard.press("Enter");
    const bubble = page.locator(".msg.model").last();
    await expect.poll(() => bubble.locator(".text").textContent()).not.toBe("");
    await bubble.locator("button.stop").click();
    await expect.poll(() => bubble.getAttribute("data-status")).toBe("cancelled");
    const kept = (await bubble.locator(".text").textContent()) ?? "";
    expect(kept.startsWith("Echo:")).toBe(true);
    expect(kept).not.toContain("local Gemini stand-in");
    expect(await bubble.locator("button.stop").isHidden()).toBe(true);
    expect(calls.some((c) => /^POST \/chatroom\/\S+\/cancel 200$/.test(c))).toBe(true);

    // Regenerate: the bubble becomes the new reply and follows it to the end.
    const stoppedId = await bubble.getAttribute("data-id");
    await bubble.locator("button.regenerate").click();
    await expect.poll(() => bubble.getAttribute("data-status")).toBe("complete");
    expect(await bubble.getAttribute("data-id")).not.toBe(stoppedId);
    expect(await bubble.locator(".text").textContent()).toContain(`Echo: ${first}`);
    expect(calls.some((c) => /^POST \/chatroom\/\S+\/regenerate 202$/.test(c))).toBe(true);
    expect(calls.some((c) => /^GET \/chatroom\/\S+\/stream 200$/.test(c))).toBe(true);

    // Resume: a reload cuts the stream after its first delta; the generation runs on (past the
    // test stack's 3 s grace the queue finishes it), and the reopened chatroom offers Resume on
    // the pending reply, which follows it to its end.
    const second = `Tell me about resuming (${crypto.randomUUID().slice(0, 6)})`;
    await slowStream(second, 2_000);
    await page.fill("#prompt", second);
    await page.keyboard.press("Enter");
    const live = page.locator(".msg.model").last();
    await expect.poll(() => live.locator(".text").textContent()).not.toBe("");
    const replyId = await live.getAttribute("data-id");
    expect(replyId).toBeTruthy();
    await page.reload();
    await page.locator("#app-view").waitFor({ state: "visible" });
    await expect.poll(() => text(page, "#room-name")).toBe(title);
    const resumed = page.locator(`.msg.model[data-id="${replyId}"]`);
    // Chunks 2 s apart: the reply is still being written when the page is back.
    expect(await resumed.getAttribute("data-status")).toBe("pending");
    await resumed.locator("button.resume").click();
    await expect.poll(() => resumed.getAttribute("data-status")).toBe("complete");
    expect(await resumed.locator(".text").textContent()).toContain(`Echo: ${second}`);
    const roomId = await currentRoomId(page);
    expect(calls).toContain(`GET /chatroom/${roomId}/messages/${replyId}/stream 200`);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, "playground-controls.png"), fullPage: true });
    expect(problems).toEqual([]);
  });

  test("refreshes a rejected or expired access token once, without asking to log in again", async () => {
    const session = await createSession();
    const { page, problems, calls } = await openBrowser();
    await page.goto(`${workerUrl}/`);
    await page.locator("#auth-view").waitFor({ state: "visible" });

    // A rejected token: the page's two first calls both get 401 and share a single refresh
    // (refresh tokens rotate, so a second refresh with the same token would end the session).
    await page.evaluate(
      ([key, value]) => sessionStorage.setItem(key as string, value as string),
      [
        SESSION_KEY,
        JSON.stringify({
          token: "not-a-valid-token",
          refresh_token: session.refresh_token,
          expires_at: Date.now() + 600_000,
          user: session.user,
        }),
      ],
    );
    await page.reload();
    await page.locator("#app-view").waitFor({ state: "visible" });
    await expect.poll(() => text(page, "#remaining")).toBe("5");
    expect(calls.filter((c) => c.endsWith(" 401")).length).toBeGreaterThanOrEqual(1);
    expect(calls.filter((c) => c.startsWith("POST /auth/refresh"))).toEqual([
      "POST /auth/refresh 200",
    ]);
    const rotated = await storedSession(page);
    expect(rotated?.refresh_token).not.toBe(session.refresh_token);
    expect(rotated?.token).not.toBe("not-a-valid-token");

    // An expired token is refreshed before use, so no call is refused.
    await page.evaluate((key) => {
      const s = JSON.parse(sessionStorage.getItem(key) ?? "{}");
      sessionStorage.setItem(key, JSON.stringify({ ...s, expires_at: Date.now() - 1000 }));
    }, SESSION_KEY);
    calls.length = 0;
    await page.reload();
    await page.locator("#app-view").waitFor({ state: "visible" });
    await expect.poll(() => text(page, "#remaining")).toBe("5");
    expect(calls.filter((c) => c.startsWith("POST /auth/refresh"))).toEqual([
      "POST /auth/refresh 200",
    ]);
    expect(calls.filter((c) => c.endsWith(" 401"))).toEqual([]);
    expect((await storedSession(page))?.refresh_token).not.toBe(rotated?.refresh_token);
    expect(await page.locator("#auth-view").isHidden()).toBe(true);
    expect(problems).toEqual([]);
  });
});
