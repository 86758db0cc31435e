// The capacity model behind docs/capacity.md: measured vendor calls per operation (from
// `npm run cost`) × a day's mix of operations per user × daily active users, set against the
// vendors' published limits and prices (docs/capacity.json). Pure functions, so the doc's tables
// can be regenerated and checked (scripts/check-capacity.ts).
import { type Counts, METRICS, type Metric, zeroCounts } from "./usage.ts";

/** The JSON `npm run cost` writes (the parts the model reads). */
export interface CostRun {
  generated_at: string;
  command: string;
  mix: Record<string, number>;
  prompts: number;
  operations: Record<string, { runs: number; per_operation: Counts }>;
}

export interface Limit {
  id: string;
  vendor: string;
  plan: string;
  limit: string;
  value: number;
  demand: DemandKey;
  /** One of the plans a new deployment starts on (free plans, Gemini Tier 1). */
  start?: boolean;
  /** One of the paid plans the doc recommends moving to. */
  paid?: boolean;
  move: string;
  /** Key into `sources`: the page that publishes the limit. */
  source: string;
}

export interface CapacityInputs {
  measurement: { file: string; placeholder: boolean; note: string };
  scales: number[];
  assumptions: {
    per_user_day: Record<string, number>;
    prompt_operations: string[];
    peak_factor: number;
    days_per_month: number;
    worker_cpu_ms_per_request: number;
    gemini_input_tokens_per_prompt: number;
    gemini_output_tokens_per_prompt: number;
    gemini_reply_seconds: number;
    neon_statements_per_cu_second: number;
    neon_min_cu: number;
    pro_price_usd: number;
  };
  prices: {
    workers_paid_base_usd_month: number;
    workers_included_requests_month: number;
    workers_usd_per_million_requests: number;
    workers_included_cpu_ms_month: number;
    workers_usd_per_million_cpu_ms: number;
    upstash_redis_usd_per_100k_commands: number;
    qstash_usd_per_100k_messages: number;
    qstash_fixed_plans: { name: string; messages_per_day: number; usd_month: number }[];
    neon_launch_usd_per_cu_hour: number;
    gemini_usd_per_million_input_tokens: number;
    gemini_usd_per_million_output_tokens: number;
    stripe_card_percent: number;
    stripe_card_fixed_usd: number;
  };
  limits: Limit[];
  sources: Record<string, string>;
}

export const DEMANDS = {
  prompts_day: "prompts/day",
  worker_requests_day: "Worker requests/day",
  worker_requests_peak_s: "Worker requests/s at peak",
  neon_requests_day: "Neon HTTP requests/day",
  neon_statements_day: "Neon statements/day",
  neon_statements_peak_s: "Neon statements/s at peak",
  neon_cu_peak: "Neon CU at peak",
  neon_cu_hours_month: "Neon CU-hours/month",
  redis_commands_day: "Redis commands/day",
  redis_commands_month: "Redis commands/month",
  redis_commands_peak_s: "Redis commands/s at peak",
  qstash_messages_day: "QStash messages/day",
  qstash_in_flight_peak: "QStash deliveries in flight at peak",
  gemini_calls_day: "Gemini calls/day",
  gemini_rpm_peak: "Gemini requests/min at peak",
  gemini_tpm_peak: "Gemini input tokens/min at peak",
  stripe_calls_day: "Stripe API calls/day",
  stripe_calls_peak_s: "Stripe API calls/s at peak",
} as const;
export type DemandKey = keyof typeof DEMANDS;
export type Demand = Record<DemandKey, number>;

/** Fails unless every operation of the mix was measured (no silent zero for a missing one). */
export function checkInputs(inputs: CapacityInputs, run: CostRun): string[] {
  const problems: string[] = [];
  for (const op of Object.keys(inputs.assumptions.per_user_day)) {
    const m = run.operations[op];
    if (!m) problems.push(`the mix names "${op}", which ${inputs.measurement.file} does not hold`);
    else if (m.runs === 0) problems.push(`"${op}" was never measured (0 runs)`);
  }
  for (const op of inputs.assumptions.prompt_operations) {
    if (!(op in inputs.assumptions.per_user_day)) {
      problems.push(`prompt operation "${op}" is not in the per-user-day mix`);
    }
  }
  for (const l of inputs.limits) {
    if (!(l.demand in DEMANDS)) problems.push(`limit ${l.id}: unknown demand "${l.demand}"`);
    if (!inputs.sources[l.source]) problems.push(`limit ${l.id}: no source "${l.source}"`);
  }
  return problems;
}

/** Vendor calls one daily active user causes in a day. */
export function perUserDay(inputs: CapacityInputs, run: CostRun): Counts {
  const out = zeroCounts();
  for (const [op, times] of Object.entries(inputs.assumptions.per_user_day)) {
    const per = run.operations[op]?.per_operation;
    if (!per) continue;
    for (const k of METRICS) out[k] += times * (per[k] ?? 0);
  }
  return out;
}

export function promptsPerUserDay(inputs: CapacityInputs): number {
  const a = inputs.assumptions;
  return a.prompt_operations.reduce((n, op) => n + (a.per_user_day[op] ?? 0), 0);
}

/** Vendor calls per 1,000 prompts under the mix. */
export function per1000Prompts(inputs: CapacityInputs, run: CostRun): Counts {
  const day = perUserDay(inputs, run);
  const prompts = promptsPerUserDay(inputs);
  const out = zeroCounts();
  for (const k of METRICS) out[k] = (day[k] / prompts) * 1000;
  return out;
}

const SECONDS_PER_DAY = 86_400;
const MINUTES_PER_DAY = 1_440;

export function demandAt(inputs: CapacityInputs, run: CostRun, users: number): Demand {
  const a = inputs.assumptions;
  const day = perUserDay(inputs, run);
  const daily = (k: Metric) => day[k] * users;
  const peakPerSecond = (perDay: number) => (perDay / SECONDS_PER_DAY) * a.peak_factor;
  const statementsPeak = peakPerSecond(daily("neon_statements"));
  const cuAverage = Math.max(
    a.neon_min_cu,
    daily("neon_statements") / SECONDS_PER_DAY / a.neon_statements_per_cu_second,
  );
  const geminiRpm = (daily("gemini_calls") / MINUTES_PER_DAY) * a.peak_factor;
  return {
    prompts_day: promptsPerUserDay(inputs) * users,
    worker_requests_day: daily("worker_requests"),
    worker_requests_peak_s: peakPerSecond(daily("worker_requests")),
    neon_requests_day: daily("neon_requests"),
    neon_statements_day: daily("neon_statements"),
    neon_statements_peak_s: statementsPeak,
    neon_cu_peak: Math.max(a.neon_min_cu, statementsPeak / a.neon_statements_per_cu_second),
    neon_cu_hours_month: cuAverage * 24 * a.days_per_month,
    redis_commands_day: daily("redis_commands"),
    redis_commands_month: daily("redis_commands") * a.days_per_month,
    redis_commands_peak_s: peakPerSecond(daily("redis_commands")),
    qstash_messages_day: daily("qstash_messages"),
    // Each queued delivery holds a slot while Gemini answers.
    qstash_in_flight_peak: peakPerSecond(daily("qstash_deliveries")) * a.gemini_reply_seconds,
    gemini_calls_day: daily("gemini_calls"),
    gemini_rpm_peak: geminiRpm,
    gemini_tpm_peak: geminiRpm * a.gemini_input_tokens_per_prompt,
    stripe_calls_day: daily("stripe_calls"),
    stripe_calls_peak_s: peakPerSecond(daily("stripe_calls")),
  };
}

export interface MonthlyCost {
  workers: number;
  neon: number;
  redis: number;
  qstash: number;
  qstash_plan: string;
  gemini: number;
  total: number;
  per_1000_prompts: number;
  /** Stripe's card fees on the month's Pro payments: revenue-side, not in the total. */
  stripe_fees: number;
}

/** List-price monthly bill on the paid plans (storage and bandwidth left out). */
export function monthlyCost(inputs: CapacityInputs, run: CostRun, users: number): MonthlyCost {
  const a = inputs.assumptions;
  const p = inputs.prices;
  const d = demandAt(inputs, run, users);
  const month = a.days_per_month;
  const requests = d.worker_requests_day * month;
  const cpuMs = requests * a.worker_cpu_ms_per_request;
  const workers =
    p.workers_paid_base_usd_month +
    (Math.max(0, requests - p.workers_included_requests_month) / 1e6) *
      p.workers_usd_per_million_requests +
    (Math.max(0, cpuMs - p.workers_included_cpu_ms_month) / 1e6) * p.workers_usd_per_million_cpu_ms;
  const neon = d.neon_cu_hours_month * p.neon_launch_usd_per_cu_hour;
  const redis = (d.redis_commands_month / 1e5) * p.upstash_redis_usd_per_100k_commands;
  let qstash = ((d.qstash_messages_day * month) / 1e5) * p.qstash_usd_per_100k_messages;
  let qstashPlan = "Pay as You Go";
  const fixed = p.qstash_fixed_plans.find((f) => f.messages_per_day >= d.qstash_messages_day);
  if (fixed && fixed.usd_month < qstash) {
    qstash = fixed.usd_month;
    qstashPlan = fixed.name;
  }
  const geminiPerCall =
    (a.gemini_input_tokens_per_prompt * p.gemini_usd_per_million_input_tokens +
      a.gemini_output_tokens_per_prompt * p.gemini_usd_per_million_output_tokens) /
    1e6;
  const gemini = d.gemini_calls_day * month * geminiPerCall;
  const total = workers + neon + redis + qstash + gemini;
  const subscriptions =
    (a.per_user_day["subscribe Pro (checkout + pay + webhook)"] ?? 0) * users * month;
  const stripeFees =
    subscriptions * ((a.pro_price_usd * p.stripe_card_percent) / 100 + p.stripe_card_fixed_usd);
  return {
    workers,
    neon,
    redis,
    qstash,
    qstash_plan: qstashPlan,
    gemini,
    total,
    per_1000_prompts: total / ((d.prompts_day * month) / 1000),
    stripe_fees: stripeFees,
  };
}

/** Demand over limit (1 = exactly at the limit). */
export function utilisation(inputs: CapacityInputs, run: CostRun, users: number, l: Limit): number {
  return demandAt(inputs, run, users)[l.demand] / l.value;
}

/** The limit with the highest utilisation among those `pick` selects. */
export function firstWall(
  inputs: CapacityInputs,
  run: CostRun,
  users: number,
  pick: (l: Limit) => boolean,
): { limit: Limit; utilisation: number } | null {
  let best: { limit: Limit; utilisation: number } | null = null;
  for (const l of inputs.limits.filter(pick)) {
    const u = utilisation(inputs, run, users, l);
    if (!best || u > best.utilisation) best = { limit: l, utilisation: u };
  }
  return best;
}
