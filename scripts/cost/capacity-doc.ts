// The generated parts of docs/capacity.md: each lives between `<!-- capacity:NAME -->` and
// `<!-- /capacity:NAME -->`, rendered here from the model, so the check can compare them verbatim.
import {
  type CapacityInputs,
  type CostRun,
  DEMANDS,
  type DemandKey,
  demandAt,
  firstWall,
  type Limit,
  type MonthlyCost,
  monthlyCost,
  per1000Prompts,
  perUserDay,
  promptsPerUserDay,
  utilisation,
} from "./capacity-model.ts";
import { METRICS, type Metric } from "./usage.ts";

function group(n: number): string {
  const s = String(Math.round(Math.abs(n)));
  const grouped = s.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return n < 0 ? `-${grouped}` : grouped;
}

/** Counts: large figures rounded and grouped, 1 decimal from 10, 3 significant digits below. */
export function num(n: number): string {
  if (Number.isInteger(n) || Math.abs(n) >= 100) return group(n);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return String(Number(n.toPrecision(3)));
}

export function usd(n: number): string {
  if (n >= 100) return `$${group(n)}`;
  if (n >= 1) return `$${n.toFixed(2)}`;
  if (n >= 0.01) return `$${n.toFixed(3)}`;
  return `$${n.toFixed(4)}`;
}

export function percent(ratio: number): string {
  const p = ratio * 100;
  if (p < 0.1) return "<0.1%";
  if (p < 10) return `${p.toFixed(1)}%`;
  return `${group(p)}%`;
}

/** A Markdown table; the first `textColumns` columns align left, the figures right. */
function mdTable(header: string[], rows: string[][], textColumns = 1): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const align = header.map((_, i) => (i < textColumns ? "---" : "---:"));
  return [line(header), line(align), ...rows.map(line)].join("\n");
}

const users = (n: number) => `${num(n)} DAU`;

const METRIC_LABELS: Record<Metric, string> = {
  worker_requests: "Worker requests",
  neon_requests: "Neon HTTP requests",
  neon_statements: "Neon statements",
  redis_requests: "Redis REST requests",
  redis_commands: "Redis commands (billed)",
  qstash_messages: "QStash messages (billed)",
  qstash_publishes: "QStash publishes",
  qstash_deliveries: "QStash deliveries",
  qstash_callbacks: "QStash callbacks",
  qstash_retries: "QStash retries",
  gemini_calls: "Gemini calls",
  gemini_input_tokens: "Gemini input tokens (stand-in)",
  gemini_output_tokens: "Gemini output tokens (stand-in)",
  stripe_calls: "Stripe API calls",
  stripe_webhooks: "Stripe webhooks to the Worker",
};

const OPERATION_COLUMNS: Metric[] = [
  "worker_requests",
  "neon_requests",
  "neon_statements",
  "redis_commands",
  "redis_requests",
  "qstash_messages",
  "gemini_calls",
  "stripe_calls",
];

function measurementBlock(inputs: CapacityInputs, run: CostRun): string {
  const when = `\`${run.command}\`, ${run.generated_at.slice(0, 10)}, ${num(run.prompts)} prompts`;
  if (inputs.measurement.placeholder) {
    return `> **Placeholder counts.** ${inputs.measurement.note}\n> Source run: ${when}.`;
  }
  const note = inputs.measurement.note ? ` ${inputs.measurement.note}` : "";
  return `Measured with ${when} (\`${inputs.measurement.file}\`).${note}`;
}

function operationsBlock(run: CostRun): string {
  const rows = Object.entries(run.operations).map(([op, m]) => [
    op,
    num(m.runs),
    ...OPERATION_COLUMNS.map((k) => num(m.per_operation[k] ?? 0)),
  ]);
  return mdTable(
    [
      "operation (mean per run)",
      "runs",
      "Worker req",
      "Neon req",
      "Neon stmt",
      "Redis cmd",
      "Redis req",
      "QStash msg",
      "Gemini",
      "Stripe",
    ],
    rows,
  );
}

function mixBlock(inputs: CapacityInputs, run: CostRun): string {
  const a = inputs.assumptions;
  const mix = mdTable(
    ["operation", "per user per day"],
    Object.entries(a.per_user_day).map(([op, n]) => [op, num(n)]),
  );
  const day = perUserDay(inputs, run);
  const per1000 = per1000Prompts(inputs, run);
  const calls = mdTable(
    ["vendor metric", "per user per day", "per 1,000 prompts"],
    METRICS.filter((k) => !k.startsWith("gemini_") || k === "gemini_calls").map((k) => [
      METRIC_LABELS[k],
      num(day[k]),
      num(per1000[k]),
    ]),
  );
  return `${mix}\n\n${num(promptsPerUserDay(inputs))} prompts per user per day. Vendor calls that mix causes:\n\n${calls}`;
}

const SCALE_ROWS: DemandKey[] = [
  "prompts_day",
  "worker_requests_day",
  "worker_requests_peak_s",
  "neon_requests_day",
  "neon_statements_day",
  "neon_statements_peak_s",
  "neon_cu_peak",
  "neon_cu_hours_month",
  "redis_commands_day",
  "redis_commands_peak_s",
  "qstash_messages_day",
  "qstash_in_flight_peak",
  "gemini_calls_day",
  "gemini_rpm_peak",
  "gemini_tpm_peak",
  "stripe_calls_day",
];

function scaleBlock(inputs: CapacityInputs, run: CostRun): string {
  const demands = inputs.scales.map((n) => demandAt(inputs, run, n));
  return mdTable(
    ["demand", ...inputs.scales.map(users)],
    SCALE_ROWS.map((k) => [DEMANDS[k], ...demands.map((d) => num(d[k]))]),
  );
}

function sourceLink(inputs: CapacityInputs, key: string): string {
  const url = inputs.sources[key];
  if (!url) return "-";
  const u = new URL(url);
  return `[${u.hostname}${u.pathname}](${url})`;
}

function limitsBlock(inputs: CapacityInputs, run: CostRun): string {
  return mdTable(
    ["vendor", "plan", "limit", "source", ...inputs.scales.map(users)],
    inputs.limits.map((l) => [
      l.vendor,
      l.plan,
      l.limit,
      sourceLink(inputs, l.source),
      ...inputs.scales.map((n) => {
        const u = utilisation(inputs, run, n, l);
        return u >= 1 ? `**${percent(u)}**` : percent(u);
      }),
    ]),
    4,
  );
}

function wallsBlock(inputs: CapacityInputs, run: CostRun): string {
  const name = (l: Limit) => `${l.vendor} ${l.plan}: ${l.limit}`;
  const describe = (w: ReturnType<typeof firstWall>) =>
    !w
      ? "-"
      : w.utilisation >= 1
        ? `**${name(w.limit)}** (${percent(w.utilisation)}). Move: ${w.limit.move}`
        : `none; closest ${name(w.limit)} (${percent(w.utilisation)})`;
  const alsoOver = (n: number, pick: (l: Limit) => boolean, first: Limit | undefined) =>
    inputs.limits
      .filter((l) => pick(l) && l !== first)
      .map((l) => ({ l, u: utilisation(inputs, run, n, l) }))
      .filter(({ u }) => u >= 1)
      .sort((a, b) => b.u - a.u)
      .map(({ l, u }) => `${name(l)} (${percent(u)})`)
      .join("; ") || "-";
  return mdTable(
    [
      "scale",
      "first wall on the starting plans",
      "also over on the starting plans",
      "first wall on the paid plans",
      "also over on the paid plans",
    ],
    inputs.scales.map((n) => {
      const isStart = (l: Limit) => l.start === true;
      const isPaid = (l: Limit) => l.paid === true;
      const start = firstWall(inputs, run, n, isStart);
      const paid = firstWall(inputs, run, n, isPaid);
      return [
        users(n),
        describe(start),
        alsoOver(n, isStart, start?.limit),
        describe(paid),
        alsoOver(n, isPaid, paid?.limit),
      ];
    }),
    5,
  );
}

function movesBlock(inputs: CapacityInputs): string {
  return mdTable(
    ["vendor", "plan", "limit", "what moves it"],
    inputs.limits.map((l) => [l.vendor, l.plan, l.limit, l.move]),
    4,
  );
}

function costBlock(inputs: CapacityInputs, run: CostRun): string {
  const costs = inputs.scales.map((n) => monthlyCost(inputs, run, n));
  const row = (label: string, pick: (c: (typeof costs)[number]) => string) => [
    label,
    ...costs.map(pick),
  ];
  return mdTable(
    ["monthly, list prices", ...inputs.scales.map(users)],
    [
      row("Cloudflare Workers Paid (requests + CPU)", (c) => usd(c.workers)),
      row("Neon Launch (compute)", (c) => usd(c.neon)),
      row("Upstash Redis Pay as You Go", (c) => usd(c.redis)),
      row("QStash", (c) => `${usd(c.qstash)} (${c.qstash_plan})`),
      row("Gemini API", (c) => usd(c.gemini)),
      row("**total**", (c) => `**${usd(c.total)}**`),
      row("**per 1,000 prompts**", (c) => `**${usd(c.per_1000_prompts)}**`),
      row("Stripe card fees on Pro payments (from revenue)", (c) => usd(c.stripe_fees)),
    ],
  );
}

function costShareBlock(inputs: CapacityInputs, run: CostRun): string {
  const shares = inputs.scales.map((n) => {
    const c = monthlyCost(inputs, run, n);
    return `${percent(c.gemini / c.total)} at ${num(n)} DAU`;
  });
  return `Gemini's share of the bill: ${shares.join(", ")}.`;
}

function costPer1000Block(inputs: CapacityInputs, run: CostRun): string {
  const costs = inputs.scales.map((n) => ({
    c: monthlyCost(inputs, run, n),
    thousands: (demandAt(inputs, run, n).prompts_day * inputs.assumptions.days_per_month) / 1000,
  }));
  const row = (label: string, pick: (c: MonthlyCost) => number) => [
    label,
    ...costs.map(({ c, thousands }) => usd(pick(c) / thousands)),
  ];
  return mdTable(
    ["per 1,000 prompts", ...inputs.scales.map(users)],
    [
      row("Cloudflare Workers", (c) => c.workers),
      row("Neon", (c) => c.neon),
      row("Upstash Redis", (c) => c.redis),
      row("QStash", (c) => c.qstash),
      row("Gemini API", (c) => c.gemini),
      row("**all vendors**", (c) => c.total),
    ],
  );
}

const PRICE_ROWS: [keyof CapacityInputs["prices"], string, string][] = [
  ["workers_paid_base_usd_month", "Workers Paid, per month (USD)", "workers_pricing"],
  [
    "workers_included_requests_month",
    "Workers Paid, requests included per month",
    "workers_pricing",
  ],
  [
    "workers_usd_per_million_requests",
    "Workers, per further million requests (USD)",
    "workers_pricing",
  ],
  ["workers_included_cpu_ms_month", "Workers Paid, CPU ms included per month", "workers_pricing"],
  [
    "workers_usd_per_million_cpu_ms",
    "Workers, per further million CPU ms (USD)",
    "workers_pricing",
  ],
  ["neon_launch_usd_per_cu_hour", "Neon Launch, per CU-hour (USD)", "neon_plans"],
  [
    "upstash_redis_usd_per_100k_commands",
    "Upstash Redis Pay as You Go, per 100K commands (USD)",
    "upstash_redis_pricing",
  ],
  [
    "qstash_usd_per_100k_messages",
    "QStash Pay as You Go, per 100K messages (USD)",
    "qstash_pricing",
  ],
  [
    "gemini_usd_per_million_input_tokens",
    "Gemini (default model), per 1M input tokens (USD)",
    "gemini_pricing",
  ],
  [
    "gemini_usd_per_million_output_tokens",
    "Gemini (default model), per 1M output tokens (USD)",
    "gemini_pricing",
  ],
  ["stripe_card_percent", "Stripe, card charge (% of amount)", "stripe_pricing"],
  ["stripe_card_fixed_usd", "Stripe, card charge fixed part (USD)", "stripe_pricing"],
];

function pricesBlock(inputs: CapacityInputs): string {
  const source = (key: string) => sourceLink(inputs, key);
  const prices = PRICE_ROWS.map(([key, label, src]) => [
    label,
    num(inputs.prices[key] as number),
    source(src),
  ]);
  for (const f of inputs.prices.qstash_fixed_plans) {
    prices.push([
      `QStash ${f.name}, per month (USD; up to ${num(f.messages_per_day)} messages/day)`,
      num(f.usd_month),
      source("qstash_pricing"),
    ]);
  }
  return mdTable(["price", "value", "source"], prices);
}

/** Every generated block of the doc, by name. */
export function renderBlocks(inputs: CapacityInputs, run: CostRun): Record<string, string> {
  return {
    measurement: measurementBlock(inputs, run),
    prices: pricesBlock(inputs),
    operations: operationsBlock(run),
    mix: mixBlock(inputs, run),
    scale: scaleBlock(inputs, run),
    limits: limitsBlock(inputs, run),
    walls: wallsBlock(inputs, run),
    moves: movesBlock(inputs),
    cost: costBlock(inputs, run),
    "cost-per-1000": costPer1000Block(inputs, run),
    "cost-share": costShareBlock(inputs, run),
  };
}

const BLOCK = /<!-- capacity:([a-z0-9-]+) -->\n([\s\S]*?)\n?<!-- \/capacity:\1 -->/g;

/** The doc's blocks as written. */
export function readBlocks(doc: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of doc.matchAll(BLOCK)) out[m[1] as string] = (m[2] as string).trim();
  return out;
}

/** The doc with every block replaced by its rendering. */
export function writeBlocks(doc: string, blocks: Record<string, string>): string {
  return doc.replace(BLOCK, (whole, name: string) =>
    name in blocks
      ? `<!-- capacity:${name} -->\n${blocks[name]}\n<!-- /capacity:${name} -->`
      : whole,
  );
}
