import { defineConfig } from "drizzle-kit";

// Migrations are generated from src/db/schema and applied with `npm run db:migrate` against
// DATABASE_URL (Neon's direct, non-pooled URL in production; any Postgres locally).
export default defineConfig({
  dialect: "postgresql",
  schema: "./src/db/schema/index.ts",
  out: "./drizzle",
  // The runtime client maps camelCase keys to snake_case columns (src/db/client.ts); generating
  // with the same casing keeps a column declared without an explicit name identical in both.
  casing: "snake_case",
  dbCredentials: { url: process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres" },
  strict: true,
  verbose: true,
});
