import { defineConfig } from "vitest/config";

const offline = ["test/support/offline.ts"];

// Four layers: unit (pure modules), contract (each local-cloud stand-in driven by the vendor's
// own SDK), api (the real Worker in workerd over HTTP against the local cloud) and faults (api
// tests that switch a global fault such as "database down", run after the others, one by one),
// plus e2e (the playground page in headless Chromium against the same Worker, run last).
export default defineConfig({
  test: {
    projects: [
      { test: { name: "unit", include: ["test/unit/**/*.test.ts"], setupFiles: offline } },
      {
        test: {
          name: "contract",
          include: ["test/contract/**/*.test.ts"],
          setupFiles: offline,
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: "api",
          include: ["test/api/**/*.test.ts"],
          exclude: ["test/api/faults/**"],
          globalSetup: ["test/support/global-setup.ts"],
          setupFiles: offline,
          testTimeout: 30_000,
          hookTimeout: 60_000,
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: "faults",
          include: ["test/api/faults/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          setupFiles: offline,
          fileParallelism: false,
          testTimeout: 30_000,
          hookTimeout: 60_000,
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          globalSetup: ["test/support/global-setup.ts"],
          setupFiles: offline,
          testTimeout: 90_000,
          hookTimeout: 60_000,
          // Chromium on a loaded 2-core runner can take longer than vitest's 1 s default to
          // repaint after a request; a condition that never holds still fails.
          expect: { poll: { timeout: 10_000 } },
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
