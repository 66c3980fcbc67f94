// Budgets in the real workerd runtime (`wrangler dev --local`): a Durable Object per budget key
// admits and settles every call (docs/WORKER.md, "Budgets"). The replaying upstream counts the
// calls that reach it; the collector receives every record.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import {
  startUpstream, startCollector, startWorker, stopAll, fixturesDir, removeDir, requestBody,
  cliPrice, budgetBinding, waitFor,
} from "./harness.mjs";

const CHAT = "/api/v1/chat/completions";
const SSE_FIXTURE = "openrouter-stream-with-reasoning"; // openai/o3, priced
const KEY_SEQUENTIAL = "sk-or-test-budget-sequential-0123456789";
const KEY_CONCURRENT = "sk-or-test-budget-concurrent-0123456789";
const KEY_BROKEN = "sk-or-test-budget-broken-store-0123456789";

const keyId = (key) => createHash("sha256").update(key).digest("hex").slice(0, 12);

// Exact decimal USD (the core's 30 fractional digits) as BigInt, and back.
const SCALE = 30;
function units(text) {
  const [whole, frac = ""] = text.split(".");
  return BigInt(whole + frac.padEnd(SCALE, "0"));
}
function decimal(n) {
  const digits = n.toString().padStart(SCALE + 1, "0");
  const whole = digits.slice(0, -SCALE);
  const frac = digits.slice(-SCALE).replace(/0+$/, "");
  return frac ? `${whole}.${frac}` : whole;
}

let upstream, collector, worker, brokenWorker, fixtures, streamCost;
const SPEND_TOKEN = "spend-token-0123456789abcdef";

before(async () => {
  fixtures = fixturesDir([SSE_FIXTURE]);
  // One stream's exact cost, from the CLI: the reservation, and the unit of the limits.
  streamCost = cliPrice(SSE_FIXTURE, SSE_FIXTURE + ".sse").cost_usd;
  const c = units(streamCost);
  // The filter's budget rules (issue #14): a team's monthly limit, and a key's.
  const attribution = { dimensions: { team: { from: ["header:x-team"] } } };
  const budgets = {
    reserve_usd: streamCost,
    rules: [
      { dimension: "team", limits_usd: { search: decimal(3n * c) }, period: "month" },
      { dimension: "key_id", limits_usd: { [keyId(KEY_CONCURRENT)]: decimal((9n * c) / 2n) } }, // 4.5 streams
    ],
  };
  [upstream, collector] = await Promise.all([startUpstream(fixtures), startCollector()]);
  [worker, brokenWorker] = await Promise.all([
    startWorker(
      {
        UPSTREAM_BASE_URL: upstream.url,
        LOG_SINK_URL: collector.url + "/ingest",
        METER_CONFIG: JSON.stringify({ attribution, budgets }),
      },
      budgetBinding(),
    ),
    // The binding names a class of a Worker that is not running: every call to it fails.
    startWorker(
      {
        UPSTREAM_BASE_URL: upstream.url,
        LOG_SINK_URL: collector.url + "/ingest",
        // With the Envoy-only spend sync fields (issue 25): each warned about once, ignored.
        METER_CONFIG: JSON.stringify({
          budgets: {
            default_limit_usd: "0.000001",
            sync_interval_s: 30,
            on_unknown_spend: "deny",
            spend_token: SPEND_TOKEN,
          },
        }),
      },
      budgetBinding("llm-cost-budget-store-not-running"),
    ),
  ]);
});

after(async () => {
  await stopAll();
  if (fixtures) removeDir(fixtures);
  for (const w of [worker, brokenWorker]) if (w) removeDir(w.dir);
});

/** Streams the SSE fixture through `base` with `key`; `run` tags the call for the upstream count. */
function stream(base, key, run, extra = {}) {
  return fetch(base + CHAT, {
    method: "POST",
    headers: {
      authorization: `Bearer ${key}`,
      "content-type": "application/json",
      "x-replay-fixture": SSE_FIXTURE,
      "x-test-run": run,
      ...extra,
    },
    body: JSON.stringify(requestBody(SSE_FIXTURE)),
    signal: AbortSignal.timeout(60_000),
  });
}

async function upstreamHits(run) {
  const seen = await (await fetch(upstream.url + "/_requests?bodies=0")).json();
  return seen.filter((r) => r.path === CHAT && r.headers["x-test-run"] === run).length;
}

async function recordsOf(key) {
  const all = await (await fetch(collector.url + "/_records")).json();
  return all.filter((r) => r.key_id === keyId(key));
}

/** Waits (20 s at most) until `count` records of `key` with `status_code` arrived. */
async function waitForRecords(key, status, count) {
  return waitFor(
    `${count} records with status ${status}`,
    async () => {
      const mine = (await recordsOf(key)).filter((r) => r.status_code === status);
      return mine.length >= count && mine;
    },
    20_000,
  );
}

test("the N+1th call of a team over its limit gets the filter's 429; the upstream never sees it", async () => {
  const run = randomUUID();
  const team = { "x-team": "search" };
  for (let i = 0; i < 3; i++) {
    const res = await stream(worker.url, KEY_SEQUENTIAL, run, team);
    assert.equal(res.status, 200, `call ${i + 1} is within the limit`);
    await res.arrayBuffer();
    // Settled before its record is sent: the next call sees this one's cost, not its reservation.
    await waitForRecords(KEY_SEQUENTIAL, 200, i + 1);
  }
  const refused = await stream(worker.url, KEY_SEQUENTIAL, run, team);
  assert.equal(refused.status, 429);
  assert.match(refused.headers.get("content-type"), /^application\/json/);
  assert.match(refused.headers.get("retry-after"), /^\d+$/, "the month resets: retry-after in seconds");
  const body = await refused.json();
  const limit = decimal(3n * units(streamCost));
  assert.deepEqual(body.error, {
    message: `llm-cost: spend limit reached for team search: ${limit} USD spent of ${limit} USD this month (UTC)`,
    type: "insufficient_quota",
    code: "budget_exceeded",
    dimension: "team",
    value: "search",
    spent_usd: limit,
    limit_usd: limit,
    period: "month",
  });
  assert.equal(await upstreamHits(run), 3, "the refused call never reached the upstream");
  const [record] = await waitForRecords(KEY_SEQUENTIAL, 429, 1);
  assert.equal(record.error, "budget_exceeded");
  assert.equal(record.cost_status, "no_usage");
  assert.equal(record.budget_error, null);
  assert.ok(!JSON.stringify(body).includes(KEY_SEQUENTIAL), "the 429 never carries the key");
  // The third call's cost crossed 50 % and 80 % (2 of 3) and 100 % (3 of 3): once each.
  const marks = (await recordsOf(KEY_SEQUENTIAL)).flatMap((r) => r.budget_thresholds ?? []);
  assert.deepEqual(marks.map((m) => m.percent).sort((a, b) => a - b), [50, 80, 100]);
  assert.ok(marks.every((m) => m.dimension === "team" && m.value === "search"));
});

test("20 concurrent streams against a limit of 4.5 streams: 4 or 5 admitted, the exact spend settled", async () => {
  const run = randomUUID();
  const answers = await Promise.all(
    Array.from({ length: 20 }, async () => {
      const res = await stream(worker.url, KEY_CONCURRENT, run);
      const text = await res.text();
      return { status: res.status, text };
    }),
  );
  const admitted = answers.filter((a) => a.status === 200);
  const refused = answers.filter((a) => a.status === 429);
  assert.ok([4, 5].includes(admitted.length), `admitted ${admitted.length}`);
  assert.equal(admitted.length + refused.length, 20, answers.map((a) => a.status).join(","));
  for (const a of refused) assert.equal(JSON.parse(a.text).error.code, "budget_exceeded");
  for (const a of admitted) assert.match(a.text, new RegExp(`"cost_usd":"${streamCost.replace(".", "\\.")}"`));
  assert.equal(await upstreamHits(run), admitted.length, "only admitted calls reached the upstream");
  const settled = await waitForRecords(KEY_CONCURRENT, 200, admitted.length);
  const spent = settled.reduce((sum, r) => sum + units(r.cost_usd), 0n);
  assert.equal(spent, BigInt(admitted.length) * units(streamCost));
  // Every call settled: the ledger holds exactly their cost and no reservation (the next call's
  // 429 reports the ledger's spend).
  const next = await stream(worker.url, KEY_CONCURRENT, run);
  assert.equal(next.status, 429);
  assert.equal((await next.json()).error.spent_usd, decimal(spent));
});

test("a budget store that fails: calls pass, and their records say budget_error store_unavailable", async () => {
  const run = randomUUID();
  for (let i = 0; i < 2; i++) {
    const res = await stream(brokenWorker.url, KEY_BROKEN, run);
    assert.equal(res.status, 200, "a failing store never fails the call");
    assert.match(await res.text(), /: llm-cost \{.*"cost_status":"exact"/);
  }
  assert.equal(await upstreamHits(run), 2);
  const records = await waitForRecords(KEY_BROKEN, 200, 2);
  for (const r of records) {
    assert.equal(r.budget_error, "store_unavailable");
    assert.equal(r.cost_status, "exact");
  }
  assert.match(brokenWorker.logs(), /llm-cost: budget store .*call passes unchecked/);
});

test("budgets.sync_interval_s, on_unknown_spend, spend_token: Envoy-only, warned about once each at load, ignored", async () => {
  // The calls above ran; `on_unknown_spend: "deny"` refused none of them (no 503).
  const res = await stream(brokenWorker.url, KEY_BROKEN, randomUUID());
  assert.equal(res.status, 200);
  await res.arrayBuffer();
  for (const field of ["sync_interval_s", "on_unknown_spend", "spend_token"]) {
    const warned = brokenWorker.logs().match(
      new RegExp(`METER_CONFIG: field \`budgets\\.${field}\` ignored by the Worker`, "g"),
    );
    assert.equal(warned?.length, 1, `${field}: ${warned}`);
  }
  assert.ok(!brokenWorker.logs().includes(SPEND_TOKEN), "the token is never logged");
});
