// The Worker bundle as Cloudflare would receive it (`wrangler deploy --dry-run`, which minifies
// because wrangler.jsonc says `"minify": true`, the setting `npm run deploy` uses too): its
// gzip size against the 400 KiB budget, the heaviest packages in it (esbuild's metafile), and
// the startup CPU time that `wrangler check startup` profiles for that same bundle.
//
// It also checks the two things the bundle's size depends on and a dependency update could
// quietly break (docs/adr/0006-bundle-budget.md): each `alias` in wrangler.jsonc replaces only
// imports made by the package it was written for, and no bundled code reads a class's or
// function's own name (wrangler.jsonc sets `keep_names: false`) outside the places reviewed.
//
//   node scripts/check-bundle.ts        (or: npm run bundle:check; exits 1 over budget)
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { experimental_readRawConfig, unstable_readConfig } from "wrangler";

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
  /** What the alias and name checks found wrong (empty when all is well). */
  problems: string[];
}

const kib = (bytes: number) => Number((bytes / 1024).toFixed(1));

interface Metafile {
  inputs: Record<string, { imports: { path: string; original?: string }[] }>;
  outputs: Record<string, { bytes: number; inputs: Record<string, { bytesInOutput: number }> }>;
}

/**
 * The package each alias target stands in for. wrangler's alias matches an import specifier
 * such as `./compile.js` whoever imports it, so an alias is only safe while that package alone
 * uses it.
 */
export const ALIAS_TARGETS: Record<string, string> = {
  "./src/build/zod-locales.ts": "zod",
  "./src/build/zod-unused.ts": "zod",
  "./src/build/stripe-unused.ts": "stripe",
};

/**
 * Bundled files that read `constructor.name` or `new.target.name`, and why the minified names
 * (`keep_names: false`) change nothing there. A file not listed here fails the check.
 */
export const NAME_READS: Record<string, string> = {
  "node_modules/@neondatabase/serverless/index.mjs":
    "isInstance() falls back to comparing names; Neon's own build pins its names with __name()",
  "node_modules/@google/genai/dist/web/index.mjs":
    "errors of the Interactions client, which the app never calls (ApiError sets its name literally)",
  "node_modules/stripe/esm/Error.js":
    "StripeError.type of two generic errors; the app tells Stripe errors apart with instanceof",
  "node_modules/jose/dist/webapi/util/errors.js":
    "JOSEError.name; the app checks instanceof errors.JOSEError, jose itself checks .code",
  "node_modules/jose/dist/webapi/lib/key.js": "the wording of a key-type error message",
  "node_modules/drizzle-orm/utils.js": "compares with the built-in Object, which keeps its name",
  "node_modules/zod/v4/core/util.js": "the type named in a validation message (built-ins)",
  "node_modules/zod/v4/core/schemas.js": "an encode error's message; zod names its classes itself",
  "node_modules/zod/v4/classic/schemas.js":
    "an encode error's message; zod names its classes itself",
};

/** Alias imports made by a package other than the one the alias is for, and unused aliases. */
export function aliasProblems(meta: Metafile, alias: Record<string, string>): string[] {
  const problems: string[] = [];
  const used = new Set<string>();
  for (const [importer, input] of Object.entries(meta.inputs)) {
    for (const imp of input.imports) {
      const target = imp.original === undefined ? undefined : alias[imp.original];
      if (target === undefined || imp.original === undefined) continue;
      used.add(imp.original);
      const pkg = ALIAS_TARGETS[target];
      if (pkg === undefined) {
        problems.push(`alias target ${target} is not listed in ALIAS_TARGETS`);
      } else if (!importer.includes(`node_modules/${pkg}/`)) {
        problems.push(`alias "${imp.original}" also replaces an import in ${importer}`);
      }
    }
  }
  for (const key of Object.keys(alias)) {
    if (!used.has(key)) problems.push(`alias "${key}" matches no import (stale after an update?)`);
  }
  return problems;
}

/** Bundled files that read a class's or function's own name and are not reviewed in NAME_READS. */
export function nameReadProblems(output: Metafile["outputs"][string]): string[] {
  const problems: string[] = [];
  for (const [path, input] of Object.entries(output.inputs)) {
    if (input.bytesInOutput === 0 || path.startsWith("<") || path.includes(":")) continue;
    let source: string;
    try {
      source = readFileSync(resolve(root, path), "utf8");
    } catch {
      continue;
    }
    const reads = source.match(/\bconstructor\.name\b|\bnew\.target\.name\b/g)?.length ?? 0;
    if (reads > 0 && NAME_READS[path] === undefined) {
      problems.push(
        `${path} reads a class or function name ${reads}x; the deployed bundle does not keep names (keep_names: false): review it and list it in NAME_READS`,
      );
    }
  }
  return problems;
}

function mainOutput(meta: Metafile): Metafile["outputs"][string] | undefined {
  return Object.entries(meta.outputs).find(([name]) => name.endsWith(".js"))?.[1];
}

function heaviestModules(meta: Metafile): { module: string; kib: number }[] {
  const output = mainOutput(meta);
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
      ["deploy", "--dry-run", "--outdir", join(dir, "out"), "--metafile", join(dir, "meta.json")],
      { cwd: root, env: quietEnv, maxBuffer: 16 * 1024 * 1024 },
    );
    const printed = /Total Upload: [\d.]+ KiB \/ gzip: ([\d.]+) KiB/.exec(stdout);
    const code = readFileSync(join(dir, "out", "index.js"));
    const gzip = kib(gzipSync(code).length);
    const wranglerGzip = printed ? Number(printed[1]) : null;
    const meta = JSON.parse(readFileSync(join(dir, "meta.json"), "utf8")) as Metafile;
    const config = unstable_readConfig({ config: join(root, "wrangler.jsonc") });
    const output = mainOutput(meta);
    const problems = [
      ...aliasProblems(meta, config.alias ?? {}),
      ...(output ? nameReadProblems(output) : ["the metafile lists no .js output"]),
    ];
    if (config.keep_names !== false) problems.push("wrangler.jsonc should set keep_names: false");
    if (config.minify !== true) problems.push("wrangler.jsonc should set minify: true");
    return {
      minified_kib: kib(code.length),
      wrangler_gzip_kib: wranglerGzip,
      gzip_kib: gzip,
      budget_kib: BUNDLE_BUDGET_KIB,
      within_budget: Math.max(gzip, wranglerGzip ?? 0) < BUNDLE_BUDGET_KIB,
      heaviest: heaviestModules(meta),
      problems,
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
 * wrangler.jsonc as a config for profiling: the same build settings, with the required secrets
 * given as plain vars (the development values of .dev.vars.example). `wrangler check startup`
 * cannot reproduce declared secrets, and without them the Worker's startup config check stops
 * the module. Paths become absolute, since the copy lives in a temporary folder.
 */
function startupConfig(): Record<string, unknown> {
  const { rawConfig } = experimental_readRawConfig({ config: join(root, "wrangler.jsonc") });
  const { secrets: _secrets, ...config } = rawConfig as Record<string, unknown> & {
    vars?: Record<string, string>;
    alias?: Record<string, string>;
    assets?: { directory: string };
  };
  const devVars: Record<string, string> = {};
  for (const line of readFileSync(join(root, ".dev.vars.example"), "utf8").split("\n")) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (m) devVars[m[1] as string] = (m[2] as string).replaceAll("<random>", "x".repeat(48));
  }
  return {
    ...config,
    main: resolve(root, String(config.main)),
    ...(config.assets ? { assets: { directory: resolve(root, config.assets.directory) } } : {}),
    alias: Object.fromEntries(
      Object.entries(config.alias ?? {}).map(([from, to]) => [from, resolve(root, to)]),
    ),
    vars: { ...devVars, ...config.vars },
  };
}

/**
 * Profiles the global scope of the minified bundle in a local workerd (`wrangler check
 * startup`). Local CPU, not Cloudflare's: a relative figure, not the deploy-time number.
 */
export async function measureStartup(runs = 3): Promise<StartupReport> {
  const dir = mkdtempSync(join(tmpdir(), "startup-"));
  try {
    const bundle = join(dir, "worker.bundle");
    const config = join(dir, "wrangler.json");
    writeFileSync(config, JSON.stringify(startupConfig()));
    await run(wrangler, ["deploy", "--dry-run", "-c", config, "--outfile", bundle], {
      cwd: root,
      env: quietEnv,
      maxBuffer: 16 * 1024 * 1024,
    });
    const actives: number[] = [];
    for (let i = 0; i < runs; i++) {
      const { stdout } = await run(
        wrangler,
        [
          "check",
          "startup",
          "-c",
          config,
          "--worker",
          bundle,
          "--outfile",
          join(dir, `startup-${i}.cpuprofile`),
        ],
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
  for (const problem of report.problems) console.error(`FAIL: ${problem}`);
  if (!report.within_budget) {
    console.error(`FAIL: the bundle exceeds ${report.budget_kib} KiB gzip`);
  }
  if (!report.within_budget || report.problems.length > 0) process.exit(1);
  console.log("OK: within budget; aliases and name reads as reviewed in ADR 6");
}
