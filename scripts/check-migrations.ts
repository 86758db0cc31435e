// Fails when src/db/schema and the committed migrations in drizzle/ disagree: drizzle-kit
// generate must find nothing to do. Any file it writes is removed again.
import { execFileSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";

const root = resolve(import.meta.dirname, "..");
const dirs = [join(root, "drizzle"), join(root, "drizzle/meta")];
const list = () => new Set(dirs.flatMap((d) => readdirSync(d).map((f) => join(d, f))));

const before = list();
const output = execFileSync(
  join(root, "node_modules/.bin/drizzle-kit"),
  ["generate", "--name", "schema_drift_check"],
  {
    cwd: root,
    encoding: "utf8",
  },
);
const added = [...list()].filter((f) => !before.has(f));
for (const f of added) rmSync(f);

if (added.length > 0) {
  // generate also rewrote the journal; restore it from git so the tree is left as it was.
  execFileSync("git", ["checkout", "--", "drizzle/meta/_journal.json"], { cwd: root });
  console.error(
    "Schema and migrations disagree. Run `npm run db:generate` and commit the result.\n",
  );
  console.error(output);
  process.exit(1);
}
console.log("Migrations match the schema.");
