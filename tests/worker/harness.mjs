// Test harness: starts the replaying upstream, the collector and `wrangler dev --local` (real
// workerd) on 127.0.0.1, all bounded in time, and stops every process it started.
import assert from "node:assert/strict";
import { spawn, execFileSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import {
  mkdtempSync, readFileSync, readdirSync, writeFileSync, copyFileSync, rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const RECORDINGS = join(ROOT, "fixtures/recordings");
const WORKER = join(ROOT, "worker");

const children = [];

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.on("error", fail);
    srv.listen(0, "127.0.0.1", () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

export function startProcess(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? ROOT,
    env: { ...process.env, ...(opts.env ?? {}) },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true, // own process group: stop() also ends wrangler's workerd child
  });
  const proc = { name, child, out: "", exited: false };
  child.stdout.on("data", (d) => (proc.out += d.toString()));
  child.stderr.on("data", (d) => (proc.out += d.toString()));
  child.on("exit", () => (proc.exited = true));
  children.push(proc);
  return proc;
}

export async function waitFor(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await check();
    if (v) return v;
    await sleep(50);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts a python helper that prints `LISTENING <port>` first; resolves to its base URL. */
async function startHelper(name, script, args) {
  const proc = startProcess(name, "python3", [join(ROOT, "tests/support", script), ...args]);
  const port = await waitFor(
    `${name} to listen`,
    () => {
      if (proc.exited) throw new Error(`${name} exited: ${proc.out}`);
      const m = proc.out.match(/^LISTENING (\d+)/m);
      return m && Number(m[1]);
    },
    10_000,
  );
  return { proc, url: `http://127.0.0.1:${port}` };
}

/**
 * Fixtures directory for the replaying upstream: the recordings this suite uses, copied (the
 * recordings stay read-only).
 */
export function fixturesDir(names) {
  const dir = mkdtempSync(join(tmpdir(), "llm-cost-worker-fixtures-"));
  for (const name of names) {
    for (const ext of [".json", ".sse", ".meta.json"]) {
      try {
        copyFileSync(join(RECORDINGS, name + ext), join(dir, name + ext));
      } catch {
        /* a fixture has either .json or .sse */
      }
    }
  }
  return dir;
}

export async function startUpstream(fixtures) {
  return startHelper("replay_upstream", "replay_upstream.py", ["--fixtures", fixtures, "--port", "0"]);
}

export async function startPricingServer() {
  return startHelper("pricing_server", "pricing_server.py", ["--port", "0"]);
}

export async function startCollector() {
  return startHelper("collector", "collector.py", ["--port", "0"]);
}

function compatibilityDate() {
  const toml = readFileSync(join(WORKER, "wrangler.toml"), "utf8");
  const m = toml.match(/^compatibility_date\s*=\s*"([^"]+)"/m);
  if (!m) throw new Error("no compatibility_date in worker/wrangler.toml");
  return m[1];
}

/** worker/wrangler.toml's `keep_names` line (how wrangler bundles), if it has one. */
function keepNames() {
  const toml = readFileSync(join(WORKER, "wrangler.toml"), "utf8");
  return toml.match(/^keep_names\s*=\s*(true|false)\s*$/m)?.[0] ?? null;
}

/** wrangler.toml lines binding the budget Durable Object class (`scriptName`: to another
 *  Worker's class, e.g. one that is not running, as a broken store). */
export function budgetBinding(scriptName = null) {
  const lines = [
    `[[durable_objects.bindings]]`,
    `name = "BUDGETS"`,
    `class_name = "BudgetLedger"`,
  ];
  if (scriptName) lines.push(`script_name = ${JSON.stringify(scriptName)}`);
  else lines.push(`[[migrations]]`, `tag = "v1"`, `new_sqlite_classes = ["BudgetLedger"]`);
  return lines;
}

/**
 * Runs the built bundle (worker/build, made by scripts/build-worker) under `wrangler dev --local`.
 * The config is generated (same name, main and compatibility date as worker/wrangler.toml, test
 * vars, then `extra` wrangler.toml lines such as bindings) so wrangler does not rebuild; `args`
 * go to `wrangler dev` (e.g. `--test-scheduled`); `main` is another Worker's entry (the bench's
 * plain-JS floor); `top`: top-level wrangler.toml lines instead of worker/wrangler.toml's
 * `keep_names` (the bench's baseline). Resolves to `{ url, logs() }`.
 */
export async function startWorker(vars, extra = [], args = [], main = join(WORKER, "build/index.js"), top = null) {
  const dir = mkdtempSync(join(tmpdir(), "llm-cost-wrangler-"));
  const lines = [
    `name = "llm-cost-test"`,
    `main = ${JSON.stringify(main)}`,
    `compatibility_date = "${compatibilityDate()}"`,
    // Top-level keys (`top`, else worker/wrangler.toml's keep_names): before the first table.
    ...(top ?? (keepNames() ? [keepNames()] : [])),
    `[vars]`,
    ...Object.entries(vars).map(([k, v]) => `${k} = ${JSON.stringify(v)}`),
    ...extra,
  ];
  const config = join(dir, "wrangler.toml");
  writeFileSync(config, lines.join("\n") + "\n");
  const port = await freePort();
  const inspector = await freePort();
  const node = join(WORKER, "node_modules/.bin/node");
  const wrangler = join(WORKER, "node_modules/wrangler/bin/wrangler.js");
  const proc = startProcess(
    "wrangler",
    node,
    [
      wrangler, "dev", "--config", config, "--local", "--ip", "127.0.0.1", "--port", String(port),
      "--inspector-port", String(inspector), "--persist-to", join(dir, "state"),
      "--show-interactive-dev-session=false", ...args,
    ],
    {
      cwd: dir,
      env: {
        WRANGLER_SEND_METRICS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_LOG_PATH: join(dir, "logs"),
        NO_COLOR: "1",
        FORCE_COLOR: "0",
      },
    },
  );
  const url = `http://127.0.0.1:${port}`;
  await waitForWrangler("wrangler dev", proc, url);
  return { url, logs: () => proc.out, dir, pgid: proc.child.pid, inspector };
}

/** Waits (60 s at most) until the `wrangler dev` in `proc` (`name` in errors) says `Ready on`
 *  and answers at `url`; throws if it exits first. */
export async function waitForWrangler(name, proc, url) {
  await waitForAnswer(`${name} to be ready`, name, proc, url, () => /Ready on/.test(proc.out));
}

/** Waits (60 s at most) until `proc` (`name` in errors) is `ready()` and `url` answers a
 *  request; throws if it exits first. */
async function waitForAnswer(what, name, proc, url, ready = () => true) {
  await waitFor(
    what,
    async () => {
      if (proc.exited) throw new Error(`${name} exited:\n${proc.out}`);
      if (!ready()) return false;
      try {
        await fetch(url + "/_health", { signal: AbortSignal.timeout(2000) });
        return true;
      } catch {
        return false;
      }
    },
    60_000,
  );
}

/** The `workerd` binary wrangler runs (from worker/node_modules, scripts/install-worker-tools). */
export const WORKERD = join(WORKER, "node_modules/@cloudflare/workerd-linux-64/bin/workerd");

/**
 * Runs a Worker on `workerd serve` directly, without wrangler dev (no dev entry worker, proxy or
 * log forwarding): a generated capnp config with the Worker's modules (`main` and, for a
 * worker-build bundle, the `index_bg.wasm` next to it), `vars` as text bindings and no other
 * binding (no Queue, KV or Durable Object), outbound fetches allowed to 127.0.0.1 only.
 * Console lines go to workerd's stdout (`logs()`). Resolves to `{ url, logs(), dir, pgid }`.
 */
export async function startWorkerd(vars, main = join(WORKER, "build/index.js")) {
  const dir = mkdtempSync(join(tmpdir(), "llm-cost-workerd-"));
  const modules = [`(name = "index.js", esModule = embed "index.js")`];
  copyFileSync(main, join(dir, "index.js"));
  const wasm = join(dirname(main), "index_bg.wasm");
  if (readFileSync(main, "utf8").includes("index_bg.wasm")) {
    copyFileSync(wasm, join(dir, "index_bg.wasm"));
    modules.push(`(name = "index_bg.wasm", wasm = embed "index_bg.wasm")`);
  }
  const port = await freePort();
  const bindings = Object.entries(vars).map(([k, v]) => `(name = ${JSON.stringify(k)}, text = ${JSON.stringify(v)})`);
  const config = [
    `using Workerd = import "/workerd/workerd.capnp";`,
    `const config :Workerd.Config = (`,
    `  services = [`,
    `    (name = "main", worker = .worker),`,
    `    (name = "loopback", network = (allow = ["local"], deny = [])),`,
    `  ],`,
    `  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],`,
    `);`,
    `const worker :Workerd.Worker = (`,
    `  modules = [${modules.join(", ")}],`,
    `  compatibilityDate = "${compatibilityDate()}",`,
    `  bindings = [${bindings.join(", ")}],`,
    `  globalOutbound = "loopback",`,
    `);`,
  ];
  writeFileSync(join(dir, "config.capnp"), config.join("\n") + "\n");
  const proc = startProcess("workerd", WORKERD, ["serve", join(dir, "config.capnp")], { cwd: dir });
  const url = `http://127.0.0.1:${port}`;
  await waitForAnswer("workerd to answer", "workerd", proc, url);
  return { url, logs: () => proc.out, dir, pgid: proc.child.pid };
}

/** CPU seconds (user + system) used so far by the `workerd` processes of process group `pgid`. */
export function workerdCpuSeconds(pgid) {
  const hz = 100; // USER_HZ on Linux
  let ticks = 0;
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    } catch {
      continue;
    }
    const close = stat.lastIndexOf(")");
    const comm = stat.slice(stat.indexOf("(") + 1, close);
    const fields = stat.slice(close + 2).split(" "); // fields[0] is field 3 (state)
    if (comm !== "workerd" || Number(fields[2]) !== pgid) continue;
    ticks += Number(fields[11]) + Number(fields[12]); // utime, stime
  }
  return ticks / hz;
}

/** Stops every process this harness started (by process group id), then removes nothing else. */
export async function stopAll() {
  for (const proc of children.reverse()) {
    if (proc.exited) continue;
    try {
      process.kill(-proc.child.pid, "SIGTERM");
    } catch {
      /* already gone */
    }
  }
  await sleep(300);
  for (const proc of children) {
    if (proc.exited) continue;
    try {
      process.kill(-proc.child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
}

export function removeDir(dir) {
  rmSync(dir, { recursive: true, force: true });
}

/** The request body recorded with a fixture. */
export function requestBody(name) {
  return JSON.parse(readFileSync(join(RECORDINGS, name + ".meta.json"), "utf8")).request_body;
}

/** Sends `n` metered chat calls of a recorded JSON `fixture` through the Worker one at a time, each
 * with a fresh `x-request-id`, checks each is 200 and priced `exact`; returns the request ids. */
export async function meteredCalls(worker, n, { path, fixture, key }) {
  const ids = Array.from({ length: n }, () => randomUUID());
  for (const id of ids) {
    const res = await fetch(worker.url + path, {
      method: "POST",
      headers: {
        authorization: `Bearer ${key}`,
        "content-type": "application/json",
        "x-replay-fixture": fixture,
        "x-request-id": id,
      },
      body: JSON.stringify(requestBody(fixture)),
      signal: AbortSignal.timeout(30_000),
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("x-llm-cost-status"), "exact");
    await res.arrayBuffer();
  }
  return ids;
}

export function fixtureBytes(file) {
  return readFileSync(join(RECORDINGS, file));
}

/** `llm-cost price --request <req> [--config <json>] <fixture>` from the CLI, parsed. */
export function cliPrice(name, fixtureFile, config = null) {
  const dir = mkdtempSync(join(tmpdir(), "llm-cost-cli-"));
  const req = join(dir, "request.json");
  writeFileSync(req, JSON.stringify(requestBody(name)));
  const args = ["price", "--request", req];
  if (config) {
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    args.push("--config", join(dir, "config.json"));
  }
  args.push(join(RECORDINGS, fixtureFile));
  const cli = process.env.LLM_COST_CLI;
  const out = cli
    ? execFileSync(cli, args, { encoding: "utf8", timeout: 60_000 })
    : execFileSync("cargo", ["run", "-q", "-p", "llm-cost-cli", "--", ...args], {
        cwd: ROOT,
        encoding: "utf8",
        timeout: 300_000,
      });
  removeDir(dir);
  return JSON.parse(out.trim().split("\n").pop());
}

/** Polls the collector until `count` records arrived (or the time is up); returns them all. */
export async function collectorRecords(collectorUrl, count, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  let records = [];
  while (Date.now() < deadline) {
    records = await (await fetch(collectorUrl + "/_records")).json();
    if (records.length >= count) break;
    await sleep(50);
  }
  return records;
}

export async function resetCollector(collectorUrl) {
  await fetch(collectorUrl + "/_reset", { method: "POST" });
}

/** The `llm-cost` CLI binary (`LLM_COST_CLI`, else target/debug/llm-cost). */
export function collectBinary() {
  return process.env.LLM_COST_CLI ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug/llm-cost");
}

/** Starts the real `llm-cost collect --listen 127.0.0.1:<port> --out <outDir>`; resolves once
 *  it listens. */
export async function startCollect(port, outDir) {
  const collect = startProcess("collect", collectBinary(), [
    "collect", "--listen", `127.0.0.1:${port}`, "--out", outDir,
  ]);
  await waitFor("collect to listen", () => {
    if (collect.exited) throw new Error(`collect exited: ${collect.out}`);
    return /listening on/.test(collect.out);
  }, 10_000);
  return collect;
}

/** The records `llm-cost collect` stored in `outDir` (after its de-duplication), parsed. */
export function collectedRecords(outDir) {
  return readdirSync(outDir)
    .filter((f) => f.endsWith(".ndjson"))
    .flatMap((f) => readFileSync(join(outDir, f), "utf8").split("\n").filter(Boolean))
    .map((l) => JSON.parse(l));
}

/** The cost records a Worker wrote to its log (`console.log`, one JSON line per call). */
export function loggedRecords(logs) {
  return logs
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("{") && l.includes('"cost_status"'))
    .map((l) => JSON.parse(l));
}

/**
 * The Worker's accounting lines (docs/WORKER.md "The accounting identity"): `delivered` (records
 * in acknowledged queue batches) and `dropped` (by reason, with the dropped `request_id`s).
 */
export function accounting(logs) {
  const out = { delivered: 0, dropped: {}, droppedIds: [] };
  // wrangler prints console.warn lines as `▲ [WARNING] <line>` with colour codes: strip them.
  for (const raw of logs.replace(/\x1b\[[0-9;]*m/g, "").split("\n")) {
    const at = raw.indexOf('{"llm_cost":');
    if (at < 0) continue;
    const line = JSON.parse(raw.slice(at).trim());
    if (line.llm_cost === "records_delivered") out.delivered += line.records;
    if (line.llm_cost === "records_dropped") {
      out.dropped[line.reason] = (out.dropped[line.reason] ?? 0) + line.records;
      out.droppedIds.push(...line.request_ids);
    }
  }
  out.droppedTotal = Object.values(out.dropped).reduce((a, b) => a + b, 0);
  return out;
}
