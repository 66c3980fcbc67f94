// Durable record delivery with a Cloudflare Queue in the real workerd runtime (`wrangler dev
// --local` runs Queues locally): the fetch handler enqueues each record, the same Worker consumes
// the queue and POSTs NDJSON batches to LOG_SINK_URL, and a refused batch is redelivered later.
// The sink is the real `llm-cost collect`, down for the first batches. The Worker also has the
// Analytics Engine binding (not stored by wrangler dev: docs/WORKER.md).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  startUpstream, startWorker, stopAll, fixturesDir, removeDir, freePort, waitFor,
  sleep, startCollect, collectedRecords, loggedRecords, accounting, meteredCalls,
} from "./harness.mjs";

const CHAT = "/api/v1/chat/completions";
const JSON_FIXTURE = "openrouter-cache-instructions-e2e";
const CALLS = 12;

const QUEUE = [
  `[[queues.producers]]`,
  `binding = "RECORDS"`,
  `queue = "llm-cost-records"`,
  `[[queues.consumers]]`,
  `queue = "llm-cost-records"`,
  `max_batch_size = 5`,
  `max_batch_timeout = 1`,
  `max_retries = 10`,
  `dead_letter_queue = "llm-cost-records-dlq"`,
  // Analytics Engine too: wrangler dev binds it but stores nothing; the calls must meter as usual.
  `[[analytics_engine_datasets]]`,
  `binding = "ANALYTICS"`,
  `dataset = "llm_cost"`,
];

let upstream, worker, fixtures, sinkPort, outDir;

before(async () => {
  fixtures = fixturesDir([JSON_FIXTURE]);
  upstream = await startUpstream(fixtures);
  sinkPort = await freePort(); // nothing listens there yet: the sink is down
  worker = await startWorker(
    { UPSTREAM_BASE_URL: upstream.url, LOG_SINK_URL: `http://127.0.0.1:${sinkPort}/ingest` },
    QUEUE,
  );
  outDir = mkdtempSync(join(tmpdir(), "llm-cost-queue-collect-"));
});

after(async () => {
  await stopAll();
  for (const dir of [fixtures, outDir, worker?.dir]) if (dir) removeDir(dir);
});

const storedLines = () => collectedRecords(outDir);

test("sink down for the first batches, then up: every record arrives exactly once after collect", async () => {
  const started = Date.now();
  const ids = await meteredCalls(worker, CALLS, {
    path: CHAT, fixture: JSON_FIXTURE, key: "sk-or-test-queue-0123456789",
  });
  assert.ok(Date.now() - started < 20_000, "a down sink costs the clients nothing");
  // The consumer tried and handed the batches back (at least two refusals, the sink still down).
  await waitFor(
    "two refused batches",
    () => (worker.logs().match(/log sink unreachable; \d+ records back to the queue/g) ?? []).length >= 2,
    30_000,
  );
  assert.equal(storedLines().length, 0);
  await startCollect(sinkPort, outDir);
  const records = await waitFor(
    `${CALLS} records stored`,
    () => {
      const lines = storedLines();
      return lines.length >= CALLS && lines;
    },
    90_000,
  );
  await sleep(2000); // a late copy would land by now
  const stored = storedLines();
  const got = stored.map((r) => r.request_id).sort();
  assert.deepEqual(got, [...ids].sort(), "each record once, each with its request_id");
  assert.equal(records.length, CALLS);
  for (const r of stored) assert.equal(r.cost_status, "exact");
  assert.doesNotMatch(worker.logs(), /Analytics Engine data point not written/);
  // The accounting identity (docs/WORKER.md): records made (their log lines) = collected +
  // dropped, and the acknowledged batches' delivered lines count every record at least once.
  const made = loggedRecords(worker.logs()).map((r) => r.request_id);
  const counts = accounting(worker.logs());
  assert.deepEqual(made.sort(), [...ids].sort());
  assert.equal(counts.droppedTotal, 0, JSON.stringify(counts.dropped));
  assert.equal(made.length, stored.length + counts.droppedTotal);
  assert.ok(counts.delivered >= CALLS, `delivered lines count ${counts.delivered}`);
});
