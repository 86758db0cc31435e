// `npm run openapi:lint`: lints the OpenAPI document the Worker serves with Redocly's recommended
// ruleset (redocly.yaml); exits non-zero on any error or warning.
//
//   node scripts/openapi-lint.ts                 starts the Worker briefly (no local cloud needed)
//   node scripts/openapi-lint.ts --from <file>   lints that file instead
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { documentFromWorker } from "./postman.ts";

const root = resolve(import.meta.dirname, "..");
const i = process.argv.indexOf("--from");
let file = i >= 0 ? process.argv[i + 1] : undefined;
const dir = mkdtempSync(join(tmpdir(), "openapi-lint-"));
try {
  if (!file) {
    file = join(dir, "openapi.json");
    writeFileSync(file, `${JSON.stringify(await documentFromWorker(), null, 2)}\n`);
  }
  // On this Node (the pinned 24 under npm run), not whatever `node` the CLI's shebang finds.
  execFileSync(
    process.execPath,
    [
      resolve(root, "node_modules/@redocly/cli/bin/cli.js"),
      "lint",
      file,
      "--config",
      resolve(root, "redocly.yaml"),
      "--max-problems",
      "200",
    ],
    {
      cwd: root,
      stdio: "inherit",
      env: { ...process.env, REDOCLY_TELEMETRY: "off", REDOCLY_SUPPRESS_UPDATE_NOTICE: "true" },
    },
  );
} catch (err) {
  process.exitCode = (err as { status?: number }).status ?? 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
