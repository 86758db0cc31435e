// `npm run vendor:scalar -- <version>`: replaces public/docs/scalar/api-reference-<old>.js with
// @scalar/api-reference's standalone (UMD) bundle of that version, fetched with `npm pack`, and
// points src/routes/docs.ts at it. The bundle is a static asset (wrangler.jsonc `assets`), not
// part of the Worker bundle; the version in its name lets browsers cache it for good.
import { execFileSync } from "node:child_process";
import {
  copyFileSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const version = process.argv[2];
if (!version || !/^\d+\.\d+\.\d+$/.test(version)) {
  console.error("usage: npm run vendor:scalar -- <x.y.z>");
  process.exit(2);
}
const root = resolve(import.meta.dirname, "..");
const dir = resolve(root, "public/docs/scalar");
const tmp = mkdtempSync(join(tmpdir(), "scalar-"));
try {
  const tgz = execFileSync("npm", ["pack", `@scalar/api-reference@${version}`, "--silent"], {
    cwd: tmp,
    encoding: "utf8",
  }).trim();
  execFileSync("tar", ["xzf", tgz, "package/dist/browser/standalone.js"], { cwd: tmp });
  for (const old of readdirSync(dir)) rmSync(join(dir, old));
  const name = `api-reference-${version}.js`;
  copyFileSync(join(tmp, "package/dist/browser/standalone.js"), join(dir, name));
  const docs = resolve(root, "src/routes/docs.ts");
  writeFileSync(docs, readFileSync(docs, "utf8").replace(/api-reference-\d+\.\d+\.\d+\.js/, name));
  console.log(`public/docs/scalar/${name} written; src/routes/docs.ts points at it.`);
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
