// Starts the Worker (worker/build, made by scripts/build-worker) under `wrangler dev --local` with
// tests/worker/harness.mjs, in front of $SDK_UPSTREAM_URL, records to $SDK_SINK_URL; prints
// `WORKER <url>`, then runs until its stdin closes (tests/sdk/conftest.py) and stops wrangler.
import { startWorker, stopAll, removeDir } from "../../worker/harness.mjs";

const upstream = process.env.SDK_UPSTREAM_URL;
const sink = process.env.SDK_SINK_URL;
if (!upstream || !sink) {
  console.error("worker.mjs: set SDK_UPSTREAM_URL and SDK_SINK_URL");
  process.exit(2);
}
let worker;
const stop = async (code) => {
  await stopAll();
  if (worker) removeDir(worker.dir);
  process.exit(code);
};
try {
  worker = await startWorker({ UPSTREAM_BASE_URL: upstream, LOG_SINK_URL: sink });
} catch (err) {
  console.error(String(err?.stack ?? err));
  await stop(1);
}
process.stdout.write(`WORKER ${worker.url}\n`);
process.stdin.on("end", () => stop(0));
process.stdin.on("close", () => stop(0));
process.stdin.resume();
process.on("SIGTERM", () => stop(0));
// Bounded: a forgotten worker ends after an hour.
setTimeout(() => stop(0), 3600_000).unref();
