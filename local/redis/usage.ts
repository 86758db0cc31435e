import { Tally, type UsageMeter } from "../usage.ts";

/**
 * Upstash bills Redis by COMMAND, not by HTTP request ($0.20 per 100K commands on Pay-As-You-Go:
 * https://upstash.com/docs/redis/overall/billing, https://upstash.com/pricing/redis): a pipeline
 * or MULTI/EXEC transaction of N commands is N billable commands in one request. EVAL/EVALSHA is
 * one command however many `redis.call`s the script makes: the pricing page counts commands
 * received, and Upstash's own ratelimit-js moved from SCRIPT LOAD + EVALSHA to a single EVAL to
 * spend one command instead of two (upstash/ratelimit-js#137).
 * Only authorised requests past the fault switches are counted (what Upstash would have run).
 */
export class RedisUsage implements UsageMeter {
  requests = 0;
  commands = 0;
  readonly byCommand = new Tally();

  count(commands: readonly string[][]): void {
    this.requests++;
    this.commands += commands.length;
    for (const [name = ""] of commands) this.byCommand.add(name.toUpperCase());
  }

  snapshot() {
    return {
      requests: this.requests,
      commands: this.commands,
      by_command: this.byCommand.toJSON(),
    };
  }

  reset(): void {
    this.requests = 0;
    this.commands = 0;
    this.byCommand.clear();
  }
}
