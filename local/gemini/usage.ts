import { Tally, type UsageMeter } from "../usage.ts";

/**
 * Gemini: every generateContent / streamGenerateContent request counts against the per-minute
 * request quota, answered or refused; tokens are what a paid project is billed for — prompt
 * tokens as input, reply and thinking tokens as output (https://ai.google.dev/gemini-api/docs/pricing).
 */
export class GeminiUsage implements UsageMeter {
  calls = 0;
  /** Calls answered with an error status (bad key, bad request, injected faults). */
  failed = 0;
  inputTokens = 0;
  outputTokens = 0;
  readonly byMethod = new Tally();

  call(method: string, status: number): void {
    this.calls++;
    this.byMethod.add(method);
    if (status >= 400) this.failed++;
  }

  tokens(input: number, output: number): void {
    this.inputTokens += input;
    this.outputTokens += output;
  }

  snapshot() {
    return {
      calls: this.calls,
      by_method: { generateContent: 0, streamGenerateContent: 0, ...this.byMethod.toJSON() },
      input_tokens: this.inputTokens,
      output_tokens: this.outputTokens,
      failed: this.failed,
    };
  }

  reset(): void {
    this.calls = 0;
    this.failed = 0;
    this.inputTokens = 0;
    this.outputTokens = 0;
    this.byMethod.clear();
  }
}
