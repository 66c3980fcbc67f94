// V8 CPU profile of the Worker on the metered SSE case, through wrangler dev's inspector port
// (the DevTools protocol's Profiler domain): self time per function, grouped, printed as a table.
// Run: node tests/worker/profile.mjs [N] [--floor] [--wasm]   (after scripts/build-worker; for
// Rust function names build with names kept: `wasm-opt = ["-Oz", "-g"]` in worker/Cargo.toml and
// CARGO_PROFILE_RELEASE_STRIP=false). The sampler slows workerd ~3x: read shares, not times.
import { join } from "node:path";
import {
  ROOT, startUpstream, startWorker, stopAll, fixturesDir, removeDir, requestBody,
} from "./harness.mjs";

const N = Math.min(Number(process.argv[2] ?? 200), 2000);
const floor = process.argv.includes("--floor");
const FIXTURE = "openrouter-stream-with-reasoning";
const fixtures = fixturesDir([FIXTURE]);
const dirs = [];
try {
  const upstream = await startUpstream(fixtures);
  const worker = floor
    ? await startWorker({ UPSTREAM_BASE_URL: upstream.url }, [], [], join(ROOT, "tests/worker/js-floor/index.js"))
    : await startWorker({ UPSTREAM_BASE_URL: upstream.url });
  dirs.push(worker.dir);
  const once = async () => {
    const res = await fetch(worker.url + "/api/v1/chat/completions", {
      method: "POST",
      headers: {
        authorization: "Bearer sk-bench", "content-type": "application/json",
        "x-replay-fixture": FIXTURE, "x-replay-event-delay-ms": "0",
      },
      body: JSON.stringify(requestBody(FIXTURE)),
      signal: AbortSignal.timeout(30_000),
    });
    await res.arrayBuffer();
  };
  for (let i = 0; i < 20; i++) await once();
  const targets = await (await fetch(`http://127.0.0.1:${worker.inspector}/json`)).json();

  const target = targets.find((t) => t.webSocketDebuggerUrl) ?? targets[0];
  const ws = new WebSocket(target.webSocketDebuggerUrl, { headers: { origin: "http://localhost" } });
  await new Promise((ok, fail) => { ws.onopen = ok; ws.onerror = fail; });
  let id = 0;
  const pending = new Map();
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.id && pending.has(msg.id)) { pending.get(msg.id)(msg); pending.delete(msg.id); }
  };
  const send = (method, params = {}) => new Promise((ok) => {
    const n = ++id; pending.set(n, ok); ws.send(JSON.stringify({ id: n, method, params }));
  });
  await send("Profiler.enable");
  await send("Profiler.setSamplingInterval", { interval: 50 });
  await send("Profiler.start");
  for (let i = 0; i < N; i++) await once();
  const { result } = await send("Profiler.stop");
  ws.close();
  const profile = result.profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  const dt = profile.timeDeltas;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const f = node.callFrame;
    const key = `${f.functionName || "(anonymous)"} ${f.url ? f.url.slice(-40) : ""}:${f.lineNumber}`;
    self.set(key, (self.get(key) ?? 0) + (dt[i] ?? 0));
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  const groups = new Map();
  for (const [k, us] of self) {
    const g = k.startsWith("(idle)") ? "idle" : k.startsWith("(program)") ? "V8/workerd native (program)"
      : k.startsWith("(garbage") ? "garbage collector" : k.includes("asm://wasm") || k.includes("wasm-function") ? "wasm (Rust)"
      : k.includes("wasm-to-js") || k.includes("js-to-wasm") ? "JS<->wasm crossings"
      : /\.js:\d+$/.test(k) ? "JavaScript (bundle, glue)" : "built-ins (streams, fetch, …)";
    groups.set(g, (groups.get(g) ?? 0) + us);
  }
  for (const [g, us] of [...groups].sort((a, b) => b[1] - a[1])) {
    console.log(`group ${(us / 1000 / N).toFixed(2)} ms/req  ${((100 * us) / total).toFixed(1)}%  ${g}`);
  }
  const rows = [...self.entries()].sort((a, b) => b[1] - a[1]);
  console.log(`${floor ? "floor" : "metered"} SSE, ${N} requests; sampled ${(total / 1000).toFixed(0)} ms wall`);
  for (const [k, us] of rows.filter(([k]) => !process.argv.includes("--wasm") || k.includes("wasm")).slice(0, 60)) {
    console.log(`${(us / 1000 / N).toFixed(3)} ms/req  ${((100 * us) / total).toFixed(1)}%  ${k}`);
  }
} finally {
  await stopAll();
  for (const dir of dirs) removeDir(dir);
  removeDir(fixtures);
}
