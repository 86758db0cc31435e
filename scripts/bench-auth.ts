// Measures, inside workerd, the CPU cost of one password hash (PBKDF2-SHA256, 100,000
// iterations) and one access-token verification (jose HS256).
//
//   node scripts/bench-auth.ts            (or: npm run bench:auth)
//
// workerd freezes clocks inside a request (Spectre mitigation), so timing is taken from outside:
// each request runs the operation n times, and the cost of one is the slope between n = N and
// n = 0 (the HTTP round trip cancels out). The work is synchronous CPU in the isolate, so the
// slope is CPU time. Local workerd has no 100,000-iteration cap; production does (see ADR 0002).
import { unstable_startWorker } from "wrangler";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

async function timeRequest(url: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(url);
  const body = (await res.json()) as { ok: boolean };
  if (!res.ok || !body.ok) throw new Error(`${url} failed: ${res.status}`);
  return performance.now() - started;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
};

async function perOperation(base: string, path: string, n: number): Promise<number> {
  await timeRequest(`${base}${path}?n=${n}`); // warm-up
  const zero: number[] = [];
  const many: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    zero.push(await timeRequest(`${base}${path}?n=0`));
    many.push(await timeRequest(`${base}${path}?n=${n}`));
  }
  return (median(many) - median(zero)) / n;
}

const worker = await unstable_startWorker({
  name: "bench-auth",
  entrypoint: "scripts/bench-auth/worker.ts",
  compatibilityDate: "2026-08-01",
  compatibilityFlags: ["nodejs_compat"],
  dev: {
    server: { hostname: "127.0.0.1", port: 0 },
    inspector: false,
    watch: false,
    liveReload: false,
    logLevel: "warn",
  },
} as Parameters<typeof unstable_startWorker>[0]);
try {
  await worker.ready;
  const base = (await worker.url).toString().replace(/\/$/, "");
  const hash = await perOperation(base, "/hash", 20);
  const verify = await perOperation(base, "/verify-password", 20);
  const token = await perOperation(base, "/verify-token", 2000);
  console.log(
    JSON.stringify(
      {
        runtime: "workerd (wrangler unstable_startWorker)",
        rounds: ROUNDS,
        password_hash_ms: Number(hash.toFixed(2)),
        password_verify_ms: Number(verify.toFixed(2)),
        access_token_verify_ms: Number(token.toFixed(4)),
      },
      null,
      2,
    ),
  );
} finally {
  await worker.dispose();
}
