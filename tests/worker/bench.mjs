// CPU time per request of the Worker in local workerd (`wrangler dev --local`), measured from
// outside: workerd's user+system CPU (from /proc) over N sequential requests, divided by N.
// It includes workerd's own HTTP work (client and upstream sockets, wrangler's entry worker), so
// it is an upper bound of the Worker's CPU time; the unmetered pass-through line is the baseline.
// Run: scripts/test-worker --bench   (or: node tests/worker/bench.mjs [N])
import { join } from "node:path";
import {
  ROOT, startUpstream, startWorker, stopAll, fixturesDir, removeDir, requestBody, workerdCpuSeconds,
} from "./harness.mjs";

const N = Math.min(Number(process.argv[2] ?? 300), 2000);
const CHAT = "/api/v1/chat/completions";
const cases = [
  { label: "pass-through (GET /api/v1/models, no metering)", fixture: "openrouter-cache-instructions-e2e", path: "/api/v1/models", method: "GET" },
  { label: "pass-through SSE (POST /api/v1/other, no metering)", fixture: "openrouter-stream-with-reasoning", path: "/api/v1/other" },
  // The same JSON call on a path that is not metered: the difference to the next row is what
  // metering a call costs once (request and record), whatever the stream does.
  { label: "pass-through JSON POST (POST /api/v1/other, no metering)", fixture: "openrouter-cache-instructions-e2e", path: "/api/v1/other" },
  { label: "JSON chat completion (metered, 1.4 KB)", fixture: "openrouter-cache-instructions-e2e" },
  { label: "SSE chat completion (metered, 110 events, 30 KB)", fixture: "openrouter-stream-with-reasoning" },
  // The floor: the same stream through a plain-JS Worker with a forwarding TransformStream.
  { label: "SSE chat completion, plain-JS TransformStream Worker (floor)", fixture: "openrouter-stream-with-reasoning", floor: true },
];
// LLM_COST_BENCH_BASELINE=<another build's index.js>: that build on the same metered stream, in
// the same interleaved run (before/after comparisons of a change).
const BASELINE = process.env.LLM_COST_BENCH_BASELINE;
if (BASELINE) {
  cases.push({ label: `SSE chat completion (metered) with the baseline build ${BASELINE}`, fixture: "openrouter-stream-with-reasoning", baseline: true });
}

const fixtures = fixturesDir(cases.map((c) => c.fixture));
const dirs = [];
try {
  const upstream = await startUpstream(fixtures);
  const [worker, floor, baseline] = await Promise.all([
    startWorker({ UPSTREAM_BASE_URL: upstream.url }),
    startWorker({ UPSTREAM_BASE_URL: upstream.url }, [], [], join(ROOT, "tests/worker/js-floor/index.js")),
    // LLM_COST_BENCH_BASELINE_TOML: its top-level wrangler.toml lines (e.g. `keep_names = true`,
    // wrangler's default, to compare with worker/wrangler.toml's `keep_names = false`).
    BASELINE
      ? startWorker({ UPSTREAM_BASE_URL: upstream.url }, [], [], BASELINE,
        process.env.LLM_COST_BENCH_BASELINE_TOML ? process.env.LLM_COST_BENCH_BASELINE_TOML.split("\n") : null)
      : null,
  ]);
  const target = (c) => (c.floor ? floor : c.baseline ? baseline : worker);
  const once = async (c) => {
    const res = await fetch(target(c).url + (c.path ?? CHAT), {
      method: c.method ?? "POST",
      headers: {
        authorization: "Bearer sk-bench", "content-type": "application/json",
        "x-replay-fixture": c.fixture, "x-replay-event-delay-ms": "0",
      },
      body: c.method === "GET" ? undefined : JSON.stringify(requestBody(c.fixture)),
      signal: AbortSignal.timeout(30_000),
    });
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${c.label}: HTTP ${res.status}`);
  };
  // The cases take turns in rounds of N / ROUNDS requests, so each sees the same share of a
  // machine that other work shares (run one after another, the floor's row moved by ±20 % between
  // runs while the metered row did not: the comparison was noise).
  const ROUNDS = 6;
  const per = Math.max(1, Math.floor(N / ROUNDS));
  console.log(`requests per case: ${per * ROUNDS} (sequential, ${ROUNDS} interleaved rounds, after 20 warm-up requests)`);
  for (const c of cases) for (let i = 0; i < 20; i++) await once(c);
  const stats = cases.map(() => ({ cpu: 0, wall: 0, lat: [] }));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [k, c] of cases.entries()) {
      const cpu0 = workerdCpuSeconds(target(c).pgid);
      const t0 = performance.now();
      for (let i = 0; i < per; i++) {
        const s = performance.now();
        await once(c);
        stats[k].lat.push(performance.now() - s);
      }
      stats[k].wall += performance.now() - t0;
      stats[k].cpu += workerdCpuSeconds(target(c).pgid) - cpu0;
    }
  }
  for (const [k, c] of cases.entries()) {
    const { cpu, wall, lat } = stats[k];
    const n = lat.length;
    lat.sort((a, b) => a - b);
    console.log(
      `${c.label}: workerd CPU ${((cpu * 1000) / n).toFixed(2)} ms/request, ` +
        `latency p50 ${lat[Math.floor(n / 2)].toFixed(1)} ms p99 ${lat[Math.floor(n * 0.99)].toFixed(1)} ms, ` +
        `wall ${(wall / 1000).toFixed(1)} s`,
    );
  }
  const metered = stats[cases.findIndex((c) => c.label.startsWith("SSE chat completion (metered"))];
  const floorStats = stats[cases.findIndex((c) => c.floor)];
  const over = metered.cpu / metered.lat.length / (floorStats.cpu / floorStats.lat.length) - 1;
  console.log(`metered SSE over the plain-JS floor: ${(over * 100).toFixed(1)} % (target: at most 10 %)`);
  dirs.push(worker.dir, floor.dir, ...(baseline ? [baseline.dir] : []));
} finally {
  await stopAll(); // first: wrangler writes into its directory until it stops
  for (const dir of dirs) removeDir(dir);
  removeDir(fixtures);
}
