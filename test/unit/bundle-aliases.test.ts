// The aliases in wrangler.jsonc swap vendor modules for stand-ins in the deployed bundle
// (docs/adr/0006-bundle-budget.md). These tests fail when the app starts to use something a
// stand-in replaced, or when an update makes a replaced module part of a path the app runs.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { unstable_readConfig } from "wrangler";

const root = resolve(import.meta.dirname, "../..");
const alias = unstable_readConfig({ config: join(root, "wrangler.jsonc") }).alias ?? {};
const STRIPE_STUB = "./src/build/stripe-unused.ts";
const ZOD_STUB = "./src/build/zod-unused.ts";

function filesUnder(dir: string, suffix: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((f) => f.endsWith(suffix))
    .map((f) => join(dir, f));
}

describe("stripe-node's aliased resources", () => {
  const core = readFileSync(join(root, "node_modules/stripe/esm/stripe.core.js"), "utf8");
  /** Resource class → the module stripe.core.js imports it from. */
  const moduleOf = new Map(
    [...core.matchAll(/^import \{ (\w+),? \} from '(\.\/resources\/[^']+)';$/gm)].map(
      (m) => [m[1] as string, m[2] as string] as const,
    ),
  );
  /** Property of a Stripe instance → the resource class the constructor puts there. */
  const classOf = new Map(
    [...core.matchAll(/^\s+this\.(\w+) = new (\w+)\(this\);$/gm)].map(
      (m) => [m[1] as string, m[2] as string] as const,
    ),
  );
  /** `stripe().customers…` in every src module that imports stripe. */
  const used = new Set(
    filesUnder(join(root, "src"), ".ts")
      .map((f) => readFileSync(f, "utf8"))
      .filter((source) => /from "stripe"/.test(source))
      .flatMap((source) =>
        [...source.matchAll(/\bstripe\(\)\s*\.\s*(\w+)/g)].map((m) => m[1] as string),
      ),
  );

  it("finds what it checks (the patterns still match stripe-node and the app)", () => {
    expect(moduleOf.size).toBeGreaterThan(50);
    expect(classOf.size).toBeGreaterThan(50);
    expect(used).toContain("customers");
  });

  it("keeps the real module of every resource the app calls", () => {
    const stubbed = [...used].filter((prop) => {
      const cls = classOf.get(prop);
      const module = cls === undefined ? undefined : moduleOf.get(cls);
      return module !== undefined && alias[module] === STRIPE_STUB;
    });
    expect(stubbed, "remove these from the aliases in wrangler.jsonc").toEqual([]);
  });

  it("replaces only resource modules of stripe.core.js, and those the app does not call", () => {
    const aliased = Object.entries(alias)
      .filter(([, target]) => target === STRIPE_STUB)
      .map(([specifier]) => specifier);
    const resourceModules = new Set(moduleOf.values());
    const others = aliased.filter(
      (s) =>
        !resourceModules.has(s) &&
        s !== "./resources.js" &&
        s !== "./StripeEventNotificationHandler.js",
    );
    expect(others).toEqual([]);
  });
});

describe("zod's aliased modules", () => {
  const zod = join(root, "node_modules/zod/v4");
  /** Every zod module (ESM build) that imports or re-exports `specifier`. */
  const importersOf = (specifier: string) =>
    filesUnder(zod, ".js")
      .filter((f) => readFileSync(f, "utf8").includes(`from "${specifier}"`))
      .map((f) => relative(zod, f));

  it("replaces compile and fromJSONSchema, which only zod's namespace index re-exports", () => {
    expect(alias["./compile.js"]).toBe(ZOD_STUB);
    expect(alias["./from-json-schema.js"]).toBe(ZOD_STUB);
    // Were any other zod module to import them, the stand-ins would run in validation.
    expect(importersOf("./compile.js").sort()).toEqual(["core/index.js"]);
    expect(importersOf("./from-json-schema.js").sort()).toEqual(["classic/external.js"]);
  });

  it("leaves the app's own code free of what the stand-ins replace", () => {
    const sources = filesUnder(join(root, "src"), ".ts").map((f) => readFileSync(f, "utf8"));
    expect(sources.filter((s) => /\bz\.(compile|withParser|fromJSONSchema)\(/.test(s))).toEqual([]);
  });
});
