// Headless Chromium for the browser suites (playground, /docs): Debian's package driven by
// playwright-core, failing closed on any request that leaves the Worker and the local cloud.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext, Page, Response } from "playwright-core";
import { afterEach } from "vitest";
import { cloudUrl, workerUrl } from "../support/api.ts";

/** Debian's package; CI installs it with `apt-get install -y chromium`. */
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
export const ARTIFACTS = fileURLToPath(new URL("./artifacts/", import.meta.url));

/**
 * Loads the driver and checks the browser. Throws, never skips, when either is missing, so each
 * browser test fails with the fix in its message instead of the playground going untested.
 */
async function loadChromium(): Promise<typeof import("playwright-core").chromium> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `Chromium not found at ${CHROMIUM}: install it (Debian: apt-get install -y chromium) or set CHROMIUM_PATH.`,
    );
  }
  try {
    return (await import("playwright-core")).chromium;
  } catch (err) {
    throw new Error(`playwright-core is not installed (npm install -D playwright-core): ${err}`);
  }
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Requests the page tried to make to anything but the Worker and the local cloud. */
  blocked: string[];
  /** Uncaught page errors and CSP violations. */
  problems: string[];
  /** Every response to the Worker: "METHOD /path STATUS". */
  calls: string[];
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

export async function openBrowser(): Promise<Browser> {
  const chromium = await loadChromium();
  const profile = mkdtempSync(join(tmpdir(), "playground-e2e-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
  });
  cleanups.push(async () => {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  });
  const allowed = new Set([new URL(workerUrl).origin, new URL(cloudUrl).origin]);
  const blocked: string[] = [];
  const problems: string[] = [];
  const calls: string[] = [];
  // Fail closed: the page has no CDN and may only talk to the Worker and the local Stripe.
  await context.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (allowed.has(url.origin)) return route.continue();
    blocked.push(url.href);
    return route.abort();
  });
  const page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (err) => problems.push(`page error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error" && /Content Security Policy/i.test(msg.text())) {
      problems.push(`CSP: ${msg.text()}`);
    }
  });
  page.on("response", (res: Response) => {
    const url = new URL(res.url());
    if (url.origin === new URL(workerUrl).origin) {
      calls.push(`${res.request().method()} ${url.pathname} ${res.status()}`);
    }
  });
  return { context, page, blocked, problems, calls };
}
