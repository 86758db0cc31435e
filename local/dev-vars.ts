import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";

/** Parses a .dev.vars (dotenv) file: KEY=VALUE lines, # comments, optional quotes. */
export function parseDevVars(text: string): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const m = /^\s*([A-Z0-9_]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (!m?.[1] || line.trimStart().startsWith("#")) continue;
    vars[m[1]] = (m[2] ?? "").replace(/^(["'])(.*)\1$/, "$2");
  }
  return vars;
}

/** Creates .dev.vars from the example on first start, each <random> replaced by 32 random bytes. */
export function ensureDevVars(
  path: string,
  examplePath: string,
): { vars: Record<string, string>; created: boolean } {
  let created = false;
  if (!existsSync(path)) {
    const example = readFileSync(examplePath, "utf8");
    const filled = example.replaceAll("<random>", () => randomBytes(32).toString("hex"));
    writeFileSync(path, filled, { mode: 0o600 });
    created = true;
  }
  return { vars: parseDevVars(readFileSync(path, "utf8")), created };
}
