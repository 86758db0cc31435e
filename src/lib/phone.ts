/**
 * Mobile numbers are stored and keyed (database, OTP state, rate limits) in E.164 only, so a
 * number cannot slip past a limit by being written differently.
 *
 * Accepted: a leading `+`, then 8–15 ASCII digits (the first not 0), with spaces, dashes and
 * parentheses anywhere after the `+`; a parenthesised trunk prefix "(0)" is dropped. Rejected, never guessed at: no `+` (including the `00`
 * international prefix, which is not universal and would be ambiguous with national formats),
 * non-ASCII digits (full-width, Arabic-Indic), letters, control characters, dots, several numbers.
 */
export const MOBILE_NUMBER_RULE =
  "Use E.164: '+' then 8 to 15 digits (country code first); spaces, dashes and parentheses are allowed.";

/** Raw input longer than this is rejected before any parsing. */
export const MOBILE_NUMBER_MAX_INPUT = 32;

const ALLOWED = /^\+[0-9 ()-]+$/;
const E164 = /^\+[1-9][0-9]{7,14}$/;

/** Returns the E.164 form, or null when the input is not an acceptable mobile number. */
export function normalizeMobileNumber(input: string): string | null {
  if (input.length > MOBILE_NUMBER_MAX_INPUT) return null;
  const trimmed = input.replace(/^ +| +$/g, "");
  if (!ALLOWED.test(trimmed)) return null;
  // "(0)" is the written convention for a national trunk prefix that is dialled only inside the
  // country ("+44 (0)20 7946 0000" is +442079460000), so it is dropped, not kept as a digit.
  // A bare 0 after the country code is kept: in some plans (Italy) it belongs to the number.
  const normalized = `+${trimmed
    .slice(1)
    .replace(/\(\s*0\s*\)/g, "")
    .replace(/[ ()-]/g, "")}`;
  return E164.test(normalized) ? normalized : null;
}

/** For logs: keeps the country code area and the last two digits only. */
export function maskMobileNumber(e164: string): string {
  return `${e164.slice(0, 3)}${"*".repeat(Math.max(0, e164.length - 5))}${e164.slice(-2)}`;
}
