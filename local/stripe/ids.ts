import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

function randomAlnum(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (const b of bytes) out += ALPHABET[b % ALPHABET.length];
  return out;
}

/** Lengths of the random part as Stripe's test-mode ids have them (`cus_` 14, `sub_` 24, ...). */
const LENGTHS: Record<string, number> = {
  cus: 14,
  prod: 14,
  si: 14,
  req: 14,
  cs_test: 58,
  bps: 24,
  bpc: 24,
};

/** An uppercase code such as a customer's invoice prefix ("7F3K2Q9B"). */
export function randomCode(length: number): string {
  return randomAlnum(length).toUpperCase();
}

export function newId(prefix: string): string {
  return `${prefix}_${randomAlnum(LENGTHS[prefix] ?? 24)}`;
}

export function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/** One calendar month later, clamped to the month's last day like Stripe's billing anchor. */
export function addMonth(unixSeconds: number, anchorDay?: number): number {
  const d = new Date(unixSeconds * 1000);
  const day = anchorDay ?? d.getUTCDate();
  const target = new Date(
    Date.UTC(
      d.getUTCFullYear(),
      d.getUTCMonth() + 1,
      1,
      d.getUTCHours(),
      d.getUTCMinutes(),
      d.getUTCSeconds(),
    ),
  );
  const lastDay = new Date(
    Date.UTC(target.getUTCFullYear(), target.getUTCMonth() + 1, 0),
  ).getUTCDate();
  target.setUTCDate(Math.min(day, lastDay));
  return Math.floor(target.getTime() / 1000);
}
