// Live prices in the real workerd runtime: a Cron Trigger (`wrangler dev --test-scheduled`,
// GET /__scheduled) fetches the price document from tests/support/pricing_server.py, the core
// checks it, the Worker stores it in KV (local KV in workerd), and isolates price with it within
// PRICES_CHECK_S. The expected costs come from the CLI pricing the same document (`--pricing`).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  ROOT, RECORDINGS, startUpstream, startPricingServer, startWorker, stopAll, fixturesDir, removeDir,
  requestBody, cliPrice, waitFor, sleep,
} from "./harness.mjs";

const CHAT = "/api/v1/chat/completions";
const JSON_FIXTURE = "openrouter-cache-instructions-e2e";

let upstream, pricing, worker, fixtures, work;

const bundled = () => JSON.parse(readFileSync(join(ROOT, "pricing-data/bundled.json"), "utf8"));

before(async () => {
  fixtures = fixturesDir([JSON_FIXTURE]);
  work = mkdtempSync(join(tmpdir(), "llm-cost-worker-prices-"));
  [upstream, pricing] = await Promise.all([startUpstream(fixtures), startPricingServer()]);
  await fetch(pricing.url + "/_document", { method: "PUT", body: JSON.stringify(bundled()) });
  worker = await startWorker(
    {
      UPSTREAM_BASE_URL: upstream.url,
      PRICES_URL: pricing.url + "/api/v1/models",
      PRICES_FORMAT: "openrouter",
      PRICES_CHECK_S: "1",
    },
    [
      `[[kv_namespaces]]`,
      `binding = "PRICES"`,
      `id = "llm-cost-prices-test"`,
      `[triggers]`,
      `crons = ["*/10 * * * *"]`,
    ],
    ["--test-scheduled"],
  );
});

after(async () => {
  await stopAll();
  for (const dir of [fixtures, work, worker?.dir]) if (dir) removeDir(dir);
});

function call() {
  return fetch(worker.url + CHAT, {
    method: "POST",
    headers: {
      authorization: "Bearer sk-or-test-live-prices-0123456789",
      "content-type": "application/json",
      "x-replay-fixture": JSON_FIXTURE,
    },
    body: JSON.stringify(requestBody(JSON_FIXTURE)),
    signal: AbortSignal.timeout(30_000),
  });
}

/** `llm-cost price --pricing <doc>` for the fixture: the record the CLI computes. */
function cliWithPricing(doc) {
  const docFile = join(work, `prices-${Date.now()}.json`);
  writeFileSync(docFile, JSON.stringify(doc));
  const req = join(work, "request.json");
  writeFileSync(req, JSON.stringify(requestBody(JSON_FIXTURE)));
  const cli = process.env.LLM_COST_CLI ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, "target"), "debug/llm-cost");
  const out = execFileSync(
    cli,
    ["price", "--pricing", docFile, "--request", req, join(RECORDINGS, JSON_FIXTURE + ".json")],
    { encoding: "utf8", timeout: 60_000 },
  );
  return JSON.parse(out.trim().split("\n").pop());
}

async function scheduled() {
  const res = await fetch(worker.url + "/__scheduled?cron=*/10+*+*+*+*", { signal: AbortSignal.timeout(30_000) });
  assert.equal(res.status, 200, await res.text());
}

test("a scheduled run with a changed price at the pricing server changes X-LLM-Cost", async () => {
  const bundledCost = cliPrice(JSON_FIXTURE, JSON_FIXTURE + ".json");
  const first = await call();
  await first.arrayBuffer();
  assert.equal(first.headers.get("x-llm-cost"), bundledCost.cost_usd, "the bundled table prices first");

  // The bundled document itself, fetched live, is the bundled table (the core adds
  // pricing-data/supplement.json's LiteLLM prices to a live OpenRouter document): nothing stored.
  const unchanged = () => (worker.logs().match(/llm-cost: prices unchanged/g) ?? []).length;
  await scheduled();
  await waitFor("the unchanged log line", () => unchanged() >= 1, 20_000);
  assert.doesNotMatch(worker.logs(), /stored in KV/);

  // A document pricing the fixture's model at other prompt and completion prices.
  const doc = bundled();
  const entry = doc.data.find((m) => m.id === bundledCost.priced_as);
  assert.ok(entry, `${bundledCost.priced_as} is in the bundled document`);
  Object.assign(entry.pricing, { prompt: "0.00005", completion: "0.0002" });
  await fetch(pricing.url + "/_document", { method: "PUT", body: JSON.stringify(doc) });
  const expected = cliWithPricing(doc);
  assert.notEqual(expected.cost_usd, bundledCost.cost_usd);

  await scheduled();
  await waitFor("the stored log line", () => /llm-cost: prices live-\S+ stored in KV/.test(worker.logs()), 20_000);
  const changed = await waitFor(
    "X-LLM-Cost to change",
    async () => {
      const res = await call();
      await res.arrayBuffer();
      const cost = res.headers.get("x-llm-cost");
      if (cost === bundledCost.cost_usd) {
        await sleep(200);
        return false;
      }
      return res;
    },
    20_000,
  );
  assert.equal(changed.headers.get("x-llm-cost"), expected.cost_usd, "priced like the CLI with the same document");
  assert.match(changed.headers.get("x-llm-pricing-version"), /^live-\d{4}-\d{2}-\d{2}\+/);

  // The same document again: accepted, nothing stored.
  await scheduled();
  await waitFor("the second unchanged log line", () => unchanged() >= 2, 20_000);

  // A bad document is rejected by the core's checks; the stored prices stay.
  await fetch(pricing.url + "/_document", { method: "PUT", body: '{"data": []}' });
  await scheduled();
  await waitFor("the rejection", () => /price document rejected/.test(worker.logs()), 20_000);
  await sleep(1500); // past PRICES_CHECK_S: an isolate would have looked again
  const later = await call();
  await later.arrayBuffer();
  assert.equal(later.headers.get("x-llm-cost"), expected.cost_usd);
});
