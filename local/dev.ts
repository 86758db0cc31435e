// `npm run dev`: the local cloud plus `wrangler dev` at http://127.0.0.1:8787, offline.
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { unstable_readConfig } from "wrangler";
import { parseEnv } from "../src/env.ts";
import { ensureDevVars } from "./dev-vars.ts";
import { startFromVars } from "./main.ts";

const root = resolve(import.meta.dirname, "..");
const { vars, created } = ensureDevVars(
  resolve(root, ".dev.vars"),
  resolve(root, ".dev.vars.example"),
);
if (created) console.log("Created .dev.vars with fresh development secrets.");

// Fail before starting anything when the configuration is wrong, naming the variable.
parseEnv(vars);

const usesLocalCloud = Object.values(vars).some((v) => v.includes("127.0.0.1:8788"));
const started = Date.now();
const cloud = usesLocalCloud ? await startFromVars(vars) : undefined;

// With `secrets.required` in wrangler.jsonc, wrangler dev takes from .dev.vars only the declared
// vars and secrets, dropping the rest (APP_URL, the local-cloud URLs, ...). Those go in as --var;
// secrets stay in .dev.vars so wrangler never prints them.
const secrets = new Set(
  unstable_readConfig({ config: resolve(root, "wrangler.jsonc") }).secrets?.required ?? [],
);
const varArgs = Object.entries(vars)
  .filter(([key]) => !secrets.has(key))
  .flatMap(([key, value]) => ["--var", `${key}:${value}`]);

const wrangler = spawn(
  resolve(root, "node_modules/.bin/wrangler"),
  [
    "dev",
    ...varArgs,
    "--ip",
    "127.0.0.1",
    "--port",
    "8787",
    "--test-scheduled",
    "--show-interactive-dev-session=false",
  ],
  {
    cwd: root,
    stdio: ["ignore", "pipe", "inherit"],
    // Offline: no metrics, and no fetch of Cloudflare's Request.cf data from the internet.
    env: {
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      ...process.env,
      WRANGLER_SEND_METRICS: "false",
    },
  },
);

let bannerShown = false;
wrangler.stdout.on("data", (chunk: Buffer) => {
  process.stdout.write(chunk);
  if (!bannerShown && chunk.toString().includes("Ready on")) {
    bannerShown = true;
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    console.log(`
  ┌──────────────────────────────────────────────────────────────┐
  │ Gemini Chat API is up (${seconds} s)
  │   Playground  http://127.0.0.1:8787/
  │   API         http://127.0.0.1:8787        (health: /health)
  │   Docs        http://127.0.0.1:8787/docs   (/openapi.json)
  │   Local cloud ${cloud ? `${cloud.url}  (Neon, Upstash, QStash, Gemini, Stripe)` : "off: using the vendors in .dev.vars"}
  │ Ctrl-C stops everything.
  └──────────────────────────────────────────────────────────────┘`);
  }
});

let stopping = false;
async function stop(code: number) {
  if (stopping) return;
  stopping = true;
  wrangler.kill("SIGTERM");
  await cloud?.close();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
wrangler.on("exit", (code) => void stop(code ?? 1));
