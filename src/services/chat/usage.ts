import { eq } from "drizzle-orm";
import { selectUsageDays } from "../../db/queries/usage";
import { users } from "../../db/schema/users";
import { UnauthorizedError, ValidationError } from "../../errors";
import type { ChatDeps } from "./deps";

/** Longest window GET /usage answers, in days (a quarter). */
export const USAGE_MAX_DAYS = 92;
/** The window when none is given: the last 30 days, today included. */
export const USAGE_DEFAULT_DAYS = 30;

export interface UsageDay {
  date: string;
  prompts: number;
  input_tokens: number;
  output_tokens: number;
  thought_tokens: number;
}

export interface UsageReport {
  days: UsageDay[];
  totals: Omit<UsageDay, "date">;
  limits: { prompts_per_day: number };
}

const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

function parseDay(value: string, name: string): number {
  const ms = Date.parse(`${value}T00:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}$/.test(value) || Number.isNaN(ms) || isoDay(ms) !== value) {
    throw new ValidationError(`${name} must be a date as YYYY-MM-DD.`);
  }
  return ms;
}

/**
 * The caller's daily usage from the ledger (one row per UTC day with activity; days without
 * any are listed with zeros), its totals, and the tier's daily prompt limit. One round: the
 * ledger and the tier in one batch.
 */
export async function getUsage(
  deps: Pick<ChatDeps, "db" | "clock" | "quota">,
  input: { userId: string; from?: string; to?: string },
): Promise<UsageReport> {
  const today = Date.parse(`${isoDay(deps.clock.now().getTime())}T00:00:00Z`);
  const toMs = input.to ? parseDay(input.to, "to") : today;
  const fromMs = input.from
    ? parseDay(input.from, "from")
    : toMs - (USAGE_DEFAULT_DAYS - 1) * DAY_MS;
  if (fromMs > toMs) throw new ValidationError("from must not be after to.");
  const span = (toMs - fromMs) / DAY_MS + 1;
  if (span > USAGE_MAX_DAYS) {
    throw new ValidationError(`At most ${USAGE_MAX_DAYS} days at once (asked for ${span}).`);
  }
  const from = isoDay(fromMs);
  const to = isoDay(toMs);
  const [rows, [user]] = await deps.db.batch([
    selectUsageDays(deps.db, input.userId, from, to),
    deps.db.select({ tier: users.tier }).from(users).where(eq(users.id, input.userId)).limit(1),
  ]);
  if (!user) throw new UnauthorizedError("The account no longer exists.");
  const byDay = new Map(rows.map((r) => [r.day, r]));
  const days: UsageDay[] = [];
  for (let ms = fromMs; ms <= toMs; ms += DAY_MS) {
    const r = byDay.get(isoDay(ms));
    days.push({
      date: isoDay(ms),
      prompts: r?.prompts ?? 0,
      input_tokens: r?.inputTokens ?? 0,
      output_tokens: r?.outputTokens ?? 0,
      thought_tokens: r?.thoughtTokens ?? 0,
    });
  }
  const totals = { prompts: 0, input_tokens: 0, output_tokens: 0, thought_tokens: 0 };
  for (const d of days) {
    totals.prompts += d.prompts;
    totals.input_tokens += d.input_tokens;
    totals.output_tokens += d.output_tokens;
    totals.thought_tokens += d.thought_tokens;
  }
  return {
    days,
    totals,
    limits: {
      prompts_per_day: user.tier === "pro" ? deps.quota.limits.pro : deps.quota.limits.basic,
    },
  };
}
