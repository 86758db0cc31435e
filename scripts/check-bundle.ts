// The Worker bundle as Cloudflare would receive it (`wrangler deploy --dry-run`, which minifies
// because wrangler.jsonc says `"minify": true`, the setting `npm run deploy` uses too): its
// gzip size against the 400 KiB budget, the heaviest packages in it (esbuild's metafile), and
// the startup CPU time that `wrangler check startup` profiles for that same bundle.
//
//   node scripts/check-bundle.ts        (or: npm run bundle:check; exits 1 over budget)
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";

const run = promisify(execFile);
const root = resolve(import.meta.dirname, "..");
const wrangler = resolve(root, "node_modules/.bin/wrangler");
const quietEnv = { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" };

/** The budget CI enforces, in KiB of gzip. */
export const BUNDLE_BUDGET_KIB = 400;

export interface BundleReport {
  minified_kib: number;
  /** What wrangler prints as "gzip:" for the upload (the figure Cloudflare's limit uses). */
  wrangler_gzip_kib: number | null;
  /** gzip (zlib default level) of the minified index.js, measured here. */
  gzip_kib: number;
  budget_kib: number;
  within_budget: boolean;
  /** Minified bytes contributed per package (or src/ folder), heaviest first. */
  heaviest: { module: string; kib: number }[];
}

const kib = (bytes: number) => Number((bytes / 1024).toFixed(1));

interface Metafile {
  outputs: Record<string, { bytes: number; inputs: Record<string, { bytesInOutput: number }> }>;
}

function heaviestModules(meta: Metafile): { module: string; kib: number }[] {
  const output = Object.entries(meta.outputs).find(([name]) => name.endsWith(".js"))?.[1];
  if (!output) return [];
  const byModule = new Map<string, number>();
  for (const [path, input] of Object.entries(output.inputs)) {
    const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\/(.*)$/.exec(path);
    // zod's locales are worth seeing apart from the rest of zod.
    const key = pkg
      ? pkg[1] === "zod" && pkg[2]?.includes("/locales/")
        ? "zod (locales)"
        : (pkg[1] as string)
      : path
          .replace(/^.*?\bsrc\//, "src/")
          .split("/")
          .slice(0, 2)
          .join("/");
    byModule.set(key, (byModule.get(key) ?? 0) + input.bytesInOutput);
  }
  return [...byModule.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([module, bytes]) => ({ module, kib: kib(bytes) }));
}

/** Builds the deployable bundle in a temporary folder and measures it. */
export async function measureBundle(): Promise<BundleReport> {
  const dir = mkdtempSync(join(tmpdir(), "bundle-"));
  try {
    const { stdout } = await run(
      wrangler,
      [
        "deploy",
        "--dry-run",
        "--outdir",
        join(dir, "out"),
        "--metafile",
        join(dir, "meta.json"),
      ],
      { cwd: root, env: quietEnv, maxBuffer: 16 * 1024 * 1024 },
    );
    const printed = /Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/.exec(stdout);
    const code = readFileSync(join(dir, "out", "index.js"));
    const gzip = kib(gzipSync(code).length);
    const wranglerGzip = printed ? Number(printed[1]) : null;
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as Metafile;
    return {
      minified_kib: kib(code.length),
      wrangler_gzip_kib: wranglerGzip,
      gzip_kib: gzip,
      budget_kib: BUNDLE_BUDGET_KIB,
      within_budget: Math.max(gzip, wranglerGzip ?? 0) < BUNDLE_BUDGET_KIB,
      heaviest: heaviestModules(meta),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface StartupReport {
  /** CPU time of the startup phase (median over runs), from `wrangler check startup`. */
  active_ms: number;
  runs: number[];
}

/**
 * Profiles the global scope of the minified bundle in a local workerd (`wrangler check
 * startup`). Local CPU, not Cloudflare's: a relative figure, not the deploy-time number.
 */
export async function measureStartup(runs = 3): Promise<StartupReport> {
  const dir = mkdtempSync(join(tmpdir(), "startup-"));
  try {
    const bundle = join(dir, "worker.bundle");
    await run(wrangler, ["deploy", "--dry-run", "--outfile", bundle], {
      cwd: root,
      env: quietEnv,
      maxBuffer: 16 * 1024 * 1024,
    });
    const actives: number[] = [];
    for (let i = 0; i < runs; i++) {
      const { stdout } = await run(
        wrangler,
        ["check", "startup", "--worker", bundle, "--outfile", join(dir, `startup-${i}.cpuprofile`)],
        { cwd: root, env: quietEnv, maxBuffer: 16 * 1024 * 1024 },
      );
      const active = /Active: ([\d.]+) ms/.exec(stdout);
      if (!active) throw new Error(`wrangler check startup printed no "Active:" line:\n${stdout}`);
      actives.push(Number(active[1]));
    }
    const sorted = [...actives].sort((a, b) => a - b);
    return { active_ms: sorted[Math.floor(sorted.length / 2)] as number, runs: actives };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const report = await measureBundle();
  console.log(
    `Worker bundle: ${report.minified_kib} KiB minified, ${report.gzip_kib} KiB gzip` +
      ` (wrangler: ${report.wrangler_gzip_kib ?? "?"} KiB); budget ${report.budget_kib} KiB gzip`,
  );
  console.log("Heaviest modules (minified KiB):");
  for (const m of report.heaviest.slice(0, 12)) {
    console.log(`  ${m.module.padEnd(36)} ${m.kib.toFixed(1).padStart(7)}`);
  }
  if (!report.within_budget) {
    console.error(`FAIL: the bundle exceeds ${report.budget_kib} KiB gzip`);
    process.exit(1);
  }
  console.log("OK: within budget");
}
