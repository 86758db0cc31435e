// `npm run capacity:check`: recomputes every generated table of docs/capacity.md from the measured
// counts (`npm run cost`'s JSON) and docs/capacity.json (assumptions, published limits and prices),
// and fails when the doc says anything else, so its figures cannot drift from their inputs.
//
//   npm run capacity:check                          # check (CI)
//   npm run capacity:check -- --write               # regenerate the tables in place
//   npm run capacity:check -- --counts bench-results/cost.json   # against a fresh run
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { readBlocks, renderBlocks, writeBlocks } from "./cost/capacity-doc.ts";
import { type CapacityInputs, type CostRun, checkInputs } from "./cost/capacity-model.ts";

const root = resolve(import.meta.dirname, "..");
const { values: args } = parseArgs({
  options: {
    doc: { type: "string", default: "docs/capacity.md" },
    inputs: { type: "string", default: "docs/capacity.json" },
    counts: { type: "string" },
    write: { type: "boolean", default: false },
  },
});

const at = (p: string) => resolve(root, p);
const inputs = JSON.parse(readFileSync(at(args.inputs), "utf8")) as CapacityInputs;
const countsFile = args.counts ?? inputs.measurement.file;
const run = JSON.parse(readFileSync(at(countsFile), "utf8")) as CostRun;

const problems = checkInputs(inputs, run);
if (problems.length > 0) {
  console.error(`capacity inputs are inconsistent:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  process.exit(1);
}

const doc = readFileSync(at(args.doc), "utf8");
const expected = renderBlocks(inputs, run);

if (args.write) {
  const written = writeBlocks(doc, expected);
  writeFileSync(at(args.doc), written);
  const missing = Object.keys(expected).filter((name) => !(name in readBlocks(written)));
  if (missing.length > 0) {
    console.error(`${args.doc} has no place for: ${missing.join(", ")}`);
    process.exit(1);
  }
  console.log(`${args.doc}: ${Object.keys(expected).length} tables regenerated from ${countsFile}`);
  process.exit(0);
}

const actual = readBlocks(doc);
const drifted: string[] = [];
for (const [name, text] of Object.entries(expected)) {
  if (!(name in actual)) {
    drifted.push(
      `block "${name}" is missing (<!-- capacity:${name} --> ... <!-- /capacity:${name} -->)`,
    );
    continue;
  }
  if (actual[name] !== text) {
    const want = text.split("\n");
    const have = (actual[name] ?? "").split("\n");
    const i = want.findIndex((line, j) => line !== have[j]);
    const line = i === -1 ? Math.min(want.length, have.length) : i;
    drifted.push(
      `block "${name}" differs at its line ${line + 1}:\n      doc:      ${have[line] ?? "(nothing)"}\n      computed: ${want[line] ?? "(nothing)"}`,
    );
  }
}
for (const name of Object.keys(actual)) {
  if (!(name in expected)) drifted.push(`block "${name}" is not one the check knows`);
}

if (drifted.length > 0) {
  console.error(
    `${args.doc} does not match ${countsFile} + ${args.inputs}:\n${drifted.map((d) => `  - ${d}`).join("\n")}\nRun \`npm run capacity:check -- --write\` after changing the inputs on purpose.`,
  );
  process.exit(1);
}
console.log(
  `${args.doc}: ${Object.keys(expected).length} tables match ${countsFile} and ${args.inputs}${inputs.measurement.placeholder ? " (placeholder counts)" : ""}`,
);
