import { describe, expect, it } from "vitest";
import { readBlocks, renderBlocks, writeBlocks } from "../../scripts/cost/capacity-doc.ts";
import {
  type CapacityInputs,
  type CostRun,
  checkInputs,
  demandAt,
  firstWall,
  monthlyCost,
  per1000Prompts,
  perUserDay,
} from "../../scripts/cost/capacity-model.ts";
import { type Counts, zeroCounts } from "../../scripts/cost/usage.ts";

const counts = (partial: Partial<Counts>): Counts => ({ ...zeroCounts(), ...partial });

const run: CostRun = {
  generated_at: "2026-12-07T00:00:00.000Z",
  command: "npm run cost",
  mix: {},
  prompts: 2,
  operations: {
    prompt: {
      runs: 2,
      per_operation: counts({
        worker_requests: 3,
        neon_statements: 10,
        redis_commands: 6,
        qstash_messages: 2,
        qstash_deliveries: 1,
        gemini_calls: 1,
      }),
    },
    login: { runs: 1, per_operation: counts({ worker_requests: 1, redis_commands: 4 }) },
  },
};

function inputs(overrides: Partial<CapacityInputs["assumptions"]> = {}): CapacityInputs {
  return {
    measurement: { file: "x.json", placeholder: false, note: "" },
    scales: [1000],
    assumptions: {
      per_user_day: { prompt: 4, login: 0.5 },
      prompt_operations: ["prompt"],
      peak_factor: 2,
      days_per_month: 30,
      worker_cpu_ms_per_request: 1,
      gemini_input_tokens_per_prompt: 1000,
      gemini_output_tokens_per_prompt: 100,
      gemini_reply_seconds: 5,
      neon_statements_per_cu_second: 100,
      neon_min_cu: 0.25,
      pro_price_usd: 10,
      ...overrides,
    },
    prices: {
      workers_paid_base_usd_month: 5,
      workers_included_requests_month: 10_000_000,
      workers_usd_per_million_requests: 0.3,
      workers_included_cpu_ms_month: 30_000_000,
      workers_usd_per_million_cpu_ms: 0.02,
      upstash_redis_usd_per_100k_commands: 0.2,
      qstash_usd_per_100k_messages: 1,
      qstash_fixed_plans: [{ name: "Fixed 1M", messages_per_day: 1_000_000, usd_month: 180 }],
      neon_launch_usd_per_cu_hour: 0.1,
      gemini_usd_per_million_input_tokens: 1,
      gemini_usd_per_million_output_tokens: 4,
      stripe_card_percent: 2.9,
      stripe_card_fixed_usd: 0.3,
    },
    limits: [
      {
        id: "q",
        vendor: "QStash",
        plan: "Free",
        limit: "1,000 messages/day",
        value: 1000,
        demand: "qstash_messages_day",
        start: true,
        move: "pay",
        source: "s",
      },
      {
        id: "r",
        vendor: "Redis",
        plan: "Free",
        limit: "500,000 commands/month",
        value: 500_000,
        demand: "redis_commands_month",
        start: true,
        move: "pay",
        source: "s",
      },
    ],
    sources: { s: "https://example.com/pricing" },
  };
}

describe("capacity model", () => {
  it("weights each operation's measured calls by how often a user does it in a day", () => {
    const day = perUserDay(inputs(), run);
    expect(day.worker_requests).toBe(4 * 3 + 0.5 * 1);
    expect(day.redis_commands).toBe(4 * 6 + 0.5 * 4);
    expect(per1000Prompts(inputs(), run).redis_commands).toBe((26 / 4) * 1000);
  });

  it("turns daily calls into peak rates with the peak factor", () => {
    const d = demandAt(inputs(), run, 86_400);
    // 86,400 users × 12.5 requests a day = 12.5/s on average, 25/s at a peak factor of 2.
    expect(d.worker_requests_peak_s).toBeCloseTo(25);
    expect(d.gemini_rpm_peak).toBeCloseTo(((4 * 86_400) / 1440) * 2);
    expect(d.gemini_tpm_peak).toBeCloseTo(d.gemini_rpm_peak * 1000);
    // 4 deliveries per user a day: 4/s average, 8/s at peak, each held 5 s.
    expect(d.qstash_in_flight_peak).toBeCloseTo(40);
  });

  it("never sizes Neon below its minimum compute, and bills it all month", () => {
    const d = demandAt(inputs(), run, 10);
    expect(d.neon_cu_peak).toBe(0.25);
    expect(d.neon_cu_hours_month).toBe(0.25 * 24 * 30);
  });

  it("bills only the Workers usage above the included allowance", () => {
    expect(monthlyCost(inputs(), run, 1000).workers).toBe(5);
    const big = monthlyCost(inputs(), run, 1_000_000);
    const requests = 12.5 * 1_000_000 * 30;
    expect(big.workers).toBeCloseTo(
      5 + ((requests - 10_000_000) / 1e6) * 0.3 + ((requests - 30_000_000) / 1e6) * 0.02,
    );
  });

  it("takes a fixed QStash plan when it fits and costs less than pay-as-you-go", () => {
    // 8 messages per user a day: 100,000 users = 800,000/day, 24M a month = $240 pay-as-you-go.
    const c = monthlyCost(inputs(), run, 100_000);
    expect(c.qstash_plan).toBe("Fixed 1M");
    expect(c.qstash).toBe(180);
    expect(monthlyCost(inputs(), run, 1000).qstash_plan).toBe("Pay as You Go");
  });

  it("names the most exceeded limit as the first wall", () => {
    // 1,000 users: 8,000 QStash messages/day (8×), 780,000 Redis commands/month (1.56×).
    const wall = firstWall(inputs(), run, 1000, (l) => l.start === true);
    expect(wall?.limit.id).toBe("q");
    expect(wall?.utilisation).toBeCloseTo(8);
  });

  it("refuses a mix that names an operation the run did not measure", () => {
    const bad = inputs({ per_user_day: { prompt: 4, "open chatroom": 2 } });
    expect(checkInputs(bad, run)).toEqual([
      'the mix names "open chatroom", which x.json does not hold',
    ]);
    expect(checkInputs(inputs(), run)).toEqual([]);
  });
});

describe("capacity doc blocks", () => {
  it("fills the marked blocks and reads back exactly what it wrote", () => {
    const blocks = renderBlocks(inputs(), run);
    const empty = Object.keys(blocks)
      .map((name) => `<!-- capacity:${name} -->\n<!-- /capacity:${name} -->`)
      .join("\n\ntext\n\n");
    const written = writeBlocks(empty, blocks);
    expect(readBlocks(written)).toEqual(blocks);
  });

  it("notices a figure edited by hand", () => {
    const blocks = renderBlocks(inputs(), run);
    const doc = writeBlocks("<!-- capacity:scale -->\n<!-- /capacity:scale -->", blocks);
    const edited = doc.replace("| prompts/day | 4,000 |", "| prompts/day | 4,500 |");
    expect(edited).not.toBe(doc);
    expect(readBlocks(edited).scale).not.toBe(blocks.scale);
  });
});
