/**
 * Password hashing with PBKDF2-HMAC-SHA256 through WebCrypto (see docs/adr/0002-password-hashing.md).
 * Stored form: `pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>`, so the cost can be
 * raised later without invalidating existing hashes.
 */

/**
 * Exactly the production Workers cap: workerd refuses more than 100,000 iterations in production
 * while local workerd and Node accept any count, so a higher value would pass every local test
 * and fail every production login. A unit test pins this constant.
 */
export const PBKDF2_ITERATIONS = 100_000;
export const PBKDF2_MAX_ITERATIONS = 100_000;
export const SALT_BYTES = 16;
const HASH_BYTES = 32;
const SCHEME = "pbkdf2-sha256";

export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 128;

const encoder = new TextEncoder();
const LONE_SURROGATE = /\p{Cs}/u;

/** NFKC, so the same password typed on different keyboards/OSes hashes the same. */
export function normalizePassword(password: string): string {
  return password.normalize("NFKC");
}

/**
 * Why a password is unacceptable, or null when it is fine. Length counts Unicode code points of
 * the normalised form; nothing is ever truncated or case-folded.
 */
export function passwordProblem(password: string): string | null {
  if (LONE_SURROGATE.test(password)) return "The password contains invalid Unicode.";
  const length = [...normalizePassword(password)].length;
  if (length < PASSWORD_MIN_LENGTH) {
    return `The password must be at least ${PASSWORD_MIN_LENGTH} characters long.`;
  }
  if (length > PASSWORD_MAX_LENGTH) {
    return `The password must be at most ${PASSWORD_MAX_LENGTH} characters long.`;
  }
  return null;
}

async function derive(
  password: string,
  salt: Uint8Array<ArrayBuffer>,
  iterations: number,
): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(normalizePassword(password)),
    "PBKDF2",
    false,
    ["deriveBits"],
  );
  const bits = await crypto.subtle.deriveBits(
    { name: "PBKDF2", hash: "SHA-256", salt, iterations },
    key,
    HASH_BYTES * 8,
  );
  return new Uint8Array(bits);
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/=+$/, "");
}

function fromBase64(text: string): Uint8Array<ArrayBuffer> | null {
  if (!/^[A-Za-z0-9+/]+$/.test(text)) return null;
  try {
    return Uint8Array.from(atob(text + "=".repeat((4 - (text.length % 4)) % 4)), (c) =>
      c.charCodeAt(0),
    );
  } catch {
    return null;
  }
}

/** Compares in time that depends only on the length, never on where the bytes differ. */
export function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) diff |= (a[i] as number) ^ (b[i % b.length] ?? 0);
  return diff === 0;
}

export async function hashPassword(password: string): Promise<string> {
  const salt = crypto.getRandomValues(new Uint8Array(SALT_BYTES));
  const hash = await derive(password, salt, PBKDF2_ITERATIONS);
  return `${SCHEME}$${PBKDF2_ITERATIONS}$${toBase64(salt)}$${toBase64(hash)}`;
}

interface ParsedHash {
  iterations: number;
  salt: Uint8Array<ArrayBuffer>;
  hash: Uint8Array<ArrayBuffer>;
}

function parseHash(stored: string): ParsedHash | null {
  const [scheme, iter, salt, hash, ...rest] = stored.split("$");
  if (scheme !== SCHEME || rest.length > 0 || !iter || !salt || !hash) return null;
  const iterations = Number(iter);
  // A count above the production cap could never be verified in production.
  if (!/^[1-9][0-9]*$/.test(iter) || iterations > PBKDF2_MAX_ITERATIONS) return null;
  const saltBytes = fromBase64(salt);
  const hashBytes = fromBase64(hash);
  if (!saltBytes || !hashBytes || hashBytes.length !== HASH_BYTES) return null;
  return { iterations, salt: saltBytes, hash: hashBytes };
}

/** True when `password` matches `stored`; false for a mismatch or an unreadable stored value. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const candidate = await derive(password, parsed.salt, parsed.iterations);
  return constantTimeEqual(candidate, parsed.hash);
}

/** True when the stored hash was made with weaker parameters than today's. */
export function needsRehash(stored: string): boolean {
  const parsed = parseHash(stored);
  return !parsed || parsed.iterations < PBKDF2_ITERATIONS;
}

// A real hash of a random, discarded password: verifying against it costs exactly what a real
// check costs, so an unknown number or a user without a password answers in the same time.
const DUMMY_HASH = `${SCHEME}$${PBKDF2_ITERATIONS}$c2FsdHNhbHRzYWx0c2FsdA$Chmq1LIaSFPNFQ3pa4czNmg2PeZR94m7UEGMCWIOKMg`;

/** Burns the same CPU as `verifyPassword` and always answers false. */
export async function verifyAgainstDummy(password: string): Promise<false> {
  await verifyPassword(password, DUMMY_HASH);
  return false;
}
