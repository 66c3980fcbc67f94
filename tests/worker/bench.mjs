// CPU time per request of the Worker in local workerd (`wrangler dev --local`), measured from
// outside: workerd's user+system CPU (from /proc) over N sequential requests, divided by N.
// It includes workerd's own HTTP work (client and upstream sockets, wrangler's entry worker), so
// it is an upper bound of the Worker's CPU time; the unmetered pass-through line is the baseline.
// Run: scripts/test-worker --bench   (or: node tests/worker/bench.mjs [N] [--workerd | --workerd-only])
//   --workerd       also the metered streams and the floor on `workerd serve` directly (a capnp
//                   config with the bundle's modules and text vars, no wrangler dev machinery), in
//                   the same interleaved rounds; --workerd-only: those rows alone.
import { join } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import {
  ROOT, RECORDINGS, startUpstream, startWorker, startWorkerd, stopAll, fixturesDir, removeDir,
  requestBody, workerdCpuSeconds,
} from "./harness.mjs";

const N = Math.min(Number(process.argv[2] ?? 300), 2000);
const WORKERD_TOO = process.argv.includes("--workerd") || process.argv.includes("--workerd-only");
const WRANGLER = !process.argv.includes("--workerd-only");
const CHAT = "/api/v1/chat/completions";
const SSE = "openrouter-stream-with-reasoning";
// The long stream: the same recording with its content events repeated to LONG_EVENTS events
// (written into the bench's fixtures directory; usage and [DONE] stay last, once).
const LONG = "bench-stream-long";
const LONG_EVENTS = 1000;
const wrangler = [
  { label: "pass-through (GET /api/v1/models, no metering)", fixture: "openrouter-cache-instructions-e2e", path: "/api/v1/models", method: "GET" },
  { label: "pass-through SSE (POST /api/v1/other, no metering)", fixture: SSE, path: "/api/v1/other" },
  // The same JSON call on a path that is not metered: the difference to the next row is what
  // metering a call costs once (request and record), whatever the stream does.
  { label: "pass-through JSON POST (POST /api/v1/other, no metering)", fixture: "openrouter-cache-instructions-e2e", path: "/api/v1/other" },
  { label: "JSON chat completion (metered, 1.4 KB)", fixture: "openrouter-cache-instructions-e2e" },
  { label: "SSE chat completion (metered, 110 events, 30 KB)", fixture: SSE, metered: "short" },
  // The floor: the same stream through a plain-JS Worker with a forwarding TransformStream.
  { label: "SSE chat completion, plain-JS TransformStream Worker (floor)", fixture: SSE, floor: "short" },
  { label: `SSE chat completion (metered, ${LONG_EVENTS} events)`, fixture: LONG, body: SSE, metered: "long" },
  { label: `SSE chat completion ${LONG_EVENTS} events, plain-JS floor`, fixture: LONG, body: SSE, floor: "long" },
].map((c) => ({ ...c, runtime: "wrangler" }));
const direct = wrangler
  .filter((c) => c.metered || c.floor || c.label.startsWith("pass-through SSE"))
  .map((c) => ({ ...c, runtime: "workerd", label: `[workerd serve] ${c.label}` }));
const cases = [...(WRANGLER ? wrangler : []), ...(WORKERD_TOO ? direct : [])];
// LLM_COST_BENCH_BASELINE=<another build's index.js>: that build on the same metered streams, in
// the same interleaved run (before/after comparisons of a change). LLM_COST_BENCH_VARIANTS=
// "<label>=<index.js>;…": more builds (e.g. with one part switched off), on the short stream.
const BASELINE = process.env.LLM_COST_BENCH_BASELINE;
const builds = [];
if (BASELINE) builds.push({ name: "baseline", main: BASELINE, label: `baseline build ${BASELINE}`, long: true });
for (const spec of (process.env.LLM_COST_BENCH_VARIANTS ?? "").split(";").filter(Boolean)) {
  const at = spec.indexOf("=");
  builds.push({ name: spec.slice(0, at), main: spec.slice(at + 1), label: `variant ${spec.slice(0, at)}` });
}
for (const b of builds) {
  for (const c of cases.filter((c) => c.metered && (c.metered === "short" || b.long))) {
    cases.push({ ...c, metered: null, build: b.name, label: `${c.label} with the ${b.label}` });
  }
}

/** The long stream's .sse, from the recording: header events, then content events repeated. */
function writeLongStream(dir) {
  const text = readFileSync(join(RECORDINGS, SSE + ".sse"), "utf8");
  const events = text.split(/(?<=\n\n)/);
  const content = events.filter((e) => e.startsWith("data: {") && e.includes('"content":"') && !e.includes('"usage"') && e.includes('"finish_reason":null'));
  const tail = events.slice(events.findIndex((e) => e.includes('"finish_reason":"stop"')));
  const head = events.slice(0, events.indexOf(content[0]));
  const body = [];
  for (let i = 0; head.length + body.length + tail.length < LONG_EVENTS; i++) body.push(content[i % content.length]);
  writeFileSync(join(dir, LONG + ".sse"), [...head, ...body, ...tail].join(""));
}

const fixtures = fixturesDir(cases.map((c) => c.fixture));
const dirs = [];
try {
  writeLongStream(fixtures);
  const upstream = await startUpstream(fixtures);
  const vars = { UPSTREAM_BASE_URL: upstream.url };
  const floorMain = join(ROOT, "tests/worker/js-floor/index.js");
  // LLM_COST_BENCH_BASELINE_TOML: its top-level wrangler.toml lines (e.g. `keep_names = true`,
  // wrangler's default, to compare with worker/wrangler.toml's `keep_names = false`).
  const top = process.env.LLM_COST_BENCH_BASELINE_TOML ? process.env.LLM_COST_BENCH_BASELINE_TOML.split("\n") : null;
  const mains = { worker: join(ROOT, "worker/build/index.js"), floor: floorMain };
  for (const b of builds) mains[b.name] = b.main;
  const targets = {};
  const wanted = new Set(cases.map((c) => `${c.runtime}:${c.floor ? "floor" : c.build ?? "worker"}`));
  await Promise.all([...wanted].map(async (key) => {
    const [runtime, name] = key.split(":");
    targets[key] = runtime === "workerd"
      ? await startWorkerd(vars, mains[name])
      : await startWorker(vars, [], [], mains[name], name === "baseline" ? top : null);
    dirs.push(targets[key].dir);
  }));
  const target = (c) => targets[`${c.runtime}:${c.floor ? "floor" : c.build ?? "worker"}`];
  const once = async (c) => {
    const res = await fetch(target(c).url + (c.path ?? CHAT), {
      method: c.method ?? "POST",
      headers: {
        authorization: "Bearer sk-bench", "content-type": "application/json",
        "x-replay-fixture": c.fixture, "x-replay-event-delay-ms": "0",
      },
      body: c.method === "GET" ? undefined : JSON.stringify(requestBody(c.body ?? c.fixture)),
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
  // Each metered stream (and each build of it) against the floor on the same stream and runtime.
  const perReq = (k) => (stats[k].cpu * 1000) / stats[k].lat.length;
  for (const [k, c] of cases.entries()) {
    const stream = c.metered ?? (c.build ? cases.find((m) => m.metered && m.fixture === c.fixture && m.runtime === c.runtime)?.metered : null);
    if (!stream) continue;
    const f = cases.findIndex((x) => x.floor === stream && x.runtime === c.runtime);
    if (f < 0) continue;
    const over = perReq(k) / perReq(f) - 1;
    console.log(`over the floor: ${c.label}: +${(perReq(k) - perReq(f)).toFixed(2)} ms, ${(over * 100).toFixed(1)} % (target: at most 10 %)`);
  }
} finally {
  await stopAll(); // first: wrangler writes into its directory until it stops
  for (const dir of dirs) removeDir(dir);
  removeDir(fixtures);
}
