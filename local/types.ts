import type { Hono } from "hono";
import type { UsageMeter } from "./usage.ts";

/** Keys and addresses the local cloud shares with the Worker under test or in development. */
export interface LocalCloudConfig {
  /** Port to listen on (0 picks a free one). */
  port: number;
  /** Extra delay added to every vendor call, imitating an edge-to-region round trip. */
  latencyMs: number;
  /** Multiplies QStash retry backoff (1 = real seconds; tests use ~0.001). */
  qstashTimeScale: number;
  /** When set, Neon SQL runs on this PostgreSQL instead of embedded PGlite. */
  databaseUrl?: string;
  /** Folder where embedded PGlite keeps its data; omitted = in memory. */
  pgliteDir?: string;
  /** When set, Upstash REST runs on this Redis instead of the embedded store. */
  redisUrl?: string;
  redisToken: string;
  qstashToken: string;
  qstashCurrentSigningKey: string;
  qstashNextSigningKey: string;
  geminiApiKey: string;
  stripeSecretKey: string;
  stripeWebhookSecret: string;
  stripeProPriceId: string;
  /** Where the local Stripe posts webhook events (the Worker's /webhook/stripe). */
  stripeWebhookUrl?: string;
  /** Start the local Stripe with its customer portal settings saved (dev and test seed). */
  stripePortalSettingsSaved?: boolean;
}

/**
 * One vendor stand-in. `app` serves the vendor's wire protocol under `prefix`; `control` (mounted
 * under /_control/<name>) lets tests switch faults and inspect state.
 */
export interface LocalService {
  name: string;
  prefix: string;
  app: Hono;
  control?: Hono;
  /** What the vendor would bill for, read at `GET /_control/usage` under `name`. */
  usage?: UsageMeter;
  /** Called once the server listens, with its base URL (e.g. for QStash to call itself). */
  onListen?(baseUrl: string): void;
  close(): Promise<void>;
}
