// The round-trip report: a plain-text table on stdout, optional Markdown and JSON copies.
import { writeFileSync } from "node:fs";
import type { BundleReport, StartupReport } from "../check-bundle.ts";
import { ms1, table } from "../support/http.ts";
import type { Measured } from "./measure.ts";

export interface Report {
  latency: number;
  samples: number;
  warmup: number;
  results: Measured[];
  bundle?: BundleReport | undefined;
  startup?: StartupReport | undefined;
  /** Extra sections (streaming latency) printed after the table and kept in the JSON. */
  extra?: Record<string, unknown>;
}

/** One line per case as it is measured, so a long run shows progress. */
export function progressLine(r: Measured, latency: number): string {
  const z = r.at[0] as { p50: number };
  const h = r.at[latency] as { p50: number };
  return (
    `${r.label}: p50 ${ms1(z.p50)} → ${ms1(h.p50)} ms, ${r.rounds} round(s)` +
    (r.target === undefined ? "" : ` (target ${r.target}: ${r.pass ? "pass" : "FAIL"})`)
  );
}

function rows(report: Report): { header: string[]; rows: (string | number)[][] } {
  const L = report.latency;
  const header = [
    "endpoint",
    "p50 @0",
    "p95 @0",
    `p50 @${L}`,
    `p95 @${L}`,
    "rounds",
    "target",
    "pass",
  ];
  return {
    header,
    rows: report.results.map((r) => [
      r.label,
      ms1(r.at[0]?.p50 ?? Number.NaN),
      ms1(r.at[0]?.p95 ?? Number.NaN),
      ms1(r.at[L]?.p50 ?? Number.NaN),
      ms1(r.at[L]?.p95 ?? Number.NaN),
      r.rounds,
      r.target ?? "-",
      r.pass === null ? "-" : r.pass ? "yes" : "NO",
    ]),
  };
}

export function printReport(report: Report): void {
  const t = rows(report);
  if (t.rows.length > 0) console.log(`\n${table(t.header, t.rows)}`);
  const { bundle, startup } = report;
  if (bundle) {
    console.log(
      `\nbundle: ${bundle.gzip_kib} KiB gzip (wrangler ${bundle.wrangler_gzip_kib} KiB), ${bundle.minified_kib} KiB minified; budget ${bundle.budget_kib} KiB → ${bundle.within_budget ? "ok" : "OVER"}`,
    );
    console.log(
      `heaviest: ${bundle.heaviest
        .slice(0, 8)
        .map((m) => `${m.module} ${m.kib}`)
        .join(", ")} (KiB minified)`,
    );
  }
  if (startup) {
    console.log(
      `startup: ${startup.active_ms} ms CPU (wrangler check startup, runs ${startup.runs.join(", ")})`,
    );
  }
}

export function writeMarkdown(file: string, report: Report): void {
  const t = rows(report);
  const md = [
    `| ${t.header.join(" | ")} |`,
    `|${t.header.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`,
    ...t.rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
  writeFileSync(file, `${md}\n`);
}

export function writeJson(file: string, report: Report): void {
  const { latency, samples, warmup, results, bundle, startup, extra } = report;
  writeFileSync(
    file,
    JSON.stringify(
      { latency_ms: latency, samples, warmup, results, bundle, startup, ...extra },
      null,
      2,
    ),
  );
}
