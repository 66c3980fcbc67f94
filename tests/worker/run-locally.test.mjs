// docs/WORKER.md "Run locally", as a user runs it: the documented command (read from the doc; only
// its ports and URLs pointed at local stand-ins), in worker/ with the real wrangler.toml. Checks
// that it starts without rebuilding, prints no `Request.cf` fetch noise, and meters a call whose
// record means what Envoy's does: `host` is the host the client called, `request_id` is the
// client's `cf-ray` when it sent one (as Cloudflare does) and a generated id otherwise.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import {
  ROOT, startUpstream, startCollector, startProcess, waitForWrangler, stopAll, fixturesDir, removeDir,
  freePort, requestBody, collectorRecords,
} from "./harness.mjs";

const FIXTURE = "openai-model-sees-multiple-images-openai-chat-1"; // gpt-5-mini, /v1/chat/completions

/** The `npm run dev` line of docs/WORKER.md's "Run locally" block. */
function documentedCommand() {
  const doc = readFileSync(join(ROOT, "docs/WORKER.md"), "utf8");
  const section = doc.split("## Run locally")[1]?.split("\n## ")[0] ?? "";
  const line = section.split("\n").find((l) => l.includes("npm run dev"));
  assert.ok(line, "docs/WORKER.md has a Run locally section with the npm run dev command");
  return line.trim();
}

let upstream, collector, worker, fixtures;

before(async () => {
  fixtures = fixturesDir([FIXTURE]);
  [upstream, collector] = await Promise.all([startUpstream(fixtures), startCollector()]);
  const port = await freePort();
  const command = documentedCommand()
    .replace("--port 8787", `--port ${port}`)
    .replace("UPSTREAM_BASE_URL:https://api.openai.com", `UPSTREAM_BASE_URL:${upstream.url}`)
    .replace("LOG_SINK_URL:http://127.0.0.1:9411/ingest", `LOG_SINK_URL:${collector.url}/ingest`);
  assert.ok(command.includes(upstream.url) && command.includes(String(port)), command);
  // Only for running beside other wrangler instances: a free inspector port.
  const full = `${command} --inspector-port ${await freePort()} --show-interactive-dev-session=false`;
  const env = { NO_COLOR: "1", FORCE_COLOR: "0" };
  delete process.env.CLOUDFLARE_CF_FETCH_ENABLED; // the npm script itself must set it
  const proc = startProcess("npm run dev", "bash", ["-c", full], { cwd: join(ROOT, "worker"), env });
  const url = `http://127.0.0.1:${port}`;
  await waitForWrangler("the documented npm run dev", proc, url);
  worker = { url, proc, port };
});

after(async () => {
  await stopAll();
  if (fixtures) removeDir(fixtures);
});

async function call(headers) {
  const res = await fetch(worker.url + "/v1/chat/completions", {
    method: "POST",
    headers: {
      authorization: "Bearer sk-test-not-a-real-key",
      "content-type": "application/json",
      "x-replay-fixture": FIXTURE,
      ...headers,
    },
    body: JSON.stringify(requestBody(FIXTURE)),
    signal: AbortSignal.timeout(30_000),
  });
  await res.arrayBuffer();
  return res;
}

test("the documented command starts without a rebuild and without Request.cf noise", () => {
  assert.match(worker.proc.out, /LLM_COST_SKIP_BUILD=1: keeping worker\/build\//);
  assert.doesNotMatch(worker.proc.out, /Request\.cf|workers\.cloudflare\.com/);
});

test("records: host is what the client called, request_id from cf-ray or generated", async () => {
  const res = await call({ "cf-ray": "8f1c2a3b4d5e6f70-LHR" });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-llm-cost-status"), "exact");
  await call({});
  const records = await collectorRecords(collector.url, 2, 10_000);
  assert.equal(records.length, 2, JSON.stringify(records));
  for (const r of records) {
    assert.equal(r.host, `127.0.0.1:${worker.port}`, "the host the client called, not the upstream's");
    assert.equal(r.provider, "openai");
    assert.equal(typeof r.request_id, "string");
  }
  const ids = records.map((r) => r.request_id);
  assert.ok(ids.includes("8f1c2a3b4d5e6f70-LHR"), JSON.stringify(ids));
  const generated = ids.find((id) => id !== "8f1c2a3b4d5e6f70-LHR");
  assert.match(generated, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
});
