// The self-hosted stack (local cloud + Worker) in a process of its own, so the load run's CPU
// sampling can tell the load generator from the local cloud (which otherwise share one Node
// thread). Prints one JSON line, {"workerUrl","cloudUrl"}, once ready; stops when its stdin ends
// (the parent exited) or on SIGTERM.
//
//   node scripts/support/stack-process.ts '{"MAX_PENDING_REPLIES_BASIC":"1000"}'
import { selfHost } from "./self-host.ts";

const vars = JSON.parse(process.argv[2] ?? "{}") as Record<string, string>;
const hosted = await selfHost({ vars });
process.stdout.write(
  `${JSON.stringify({ workerUrl: hosted.workerUrl, cloudUrl: hosted.cloudUrl })}\n`,
);

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await hosted.close().catch(() => {});
  process.exit(0);
}
process.on("SIGTERM", () => void stop());
process.stdin.on("end", () => void stop());
process.stdin.resume();
