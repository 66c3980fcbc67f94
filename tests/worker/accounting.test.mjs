// The accounting identity of the Worker's delivery (docs/WORKER.md "The accounting identity"), in
// the real workerd runtime (`wrangler dev --local`, local Queues): every record the Worker made
// (its record line) is at the sink after `llm-cost collect`'s de-duplication or counted in a
// drop line with its reason and request_id, exactly, with nothing left queued.
//
// - Queue, max_retries 1, the sink down: every batch goes to the dead-letter queue, whose
//   consumer (the same Worker) counts each record as `dead_letter`; then the real `llm-cost
//   collect` starts and the next calls arrive: made = collected + dropped.
// - No Queue (direct POST, three attempts), the sink down, then up: the first calls are counted
//   as `sink_failed`, the next ones collected: made = collected + dropped.
// (A sink down for the first batches that recovers before max_retries: tests/worker/queue.test.mjs.)
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
const PHASE = 6; // calls per phase

const QUEUE = [
  `[[queues.producers]]`,
  `binding = "RECORDS"`,
  `queue = "llm-cost-records"`,
  `[[queues.consumers]]`,
  `queue = "llm-cost-records"`,
  `max_batch_size = 3`,
  `max_batch_timeout = 1`,
  `max_retries = 1`,
  `dead_letter_queue = "llm-cost-records-dlq"`,
  // The dead-letter queue's consumer is the same Worker: it counts what it drops.
  `[[queues.consumers]]`,
  `queue = "llm-cost-records-dlq"`,
  `max_batch_size = 10`,
  `max_batch_timeout = 1`,
];

let upstream, fixtures, queued, direct;
const dirs = [];

before(async () => {
  fixtures = fixturesDir([JSON_FIXTURE]);
  upstream = await startUpstream(fixtures);
  const [queuePort, postPort] = [await freePort(), await freePort()]; // nothing listens yet
  queued = {
    sinkPort: queuePort,
    worker: await startWorker(
      { UPSTREAM_BASE_URL: upstream.url, LOG_SINK_URL: `http://127.0.0.1:${queuePort}/ingest` },
      QUEUE,
    ),
  };
  direct = {
    sinkPort: postPort,
    worker: await startWorker({
      UPSTREAM_BASE_URL: upstream.url,
      LOG_SINK_URL: `http://127.0.0.1:${postPort}/ingest`,
    }),
  };
  dirs.push(fixtures, queued.worker.dir, direct.worker.dir);
});

after(async () => {
  await stopAll();
  for (const dir of dirs) if (dir) removeDir(dir);
});

const calls = (worker, n) =>
  meteredCalls(worker, n, { path: CHAT, fixture: JSON_FIXTURE, key: "sk-or-test-accounting-0123456789" });

/** Checks the identity on what the Worker logged and what collect stored; returns the parts. */
function identity(worker, outDir) {
  const made = loggedRecords(worker.logs()).map((r) => r.request_id);
  const collected = collectedRecords(outDir).map((r) => r.request_id);
  const counts = accounting(worker.logs());
  assert.equal(new Set(made).size, made.length, "one record line per call");
  assert.equal(new Set(collected).size, collected.length, "collect holds each record once");
  assert.equal(counts.droppedIds.length, counts.droppedTotal, "each drop names its request_id");
  const dropped = new Set(counts.droppedIds);
  assert.equal(dropped.size, counts.droppedTotal, "no record dropped twice");
  for (const id of collected) assert.ok(!dropped.has(id), `${id} both collected and dropped`);
  assert.deepEqual(
    [...collected, ...counts.droppedIds].sort(),
    [...made].sort(),
    "made = collected + dropped, record by record",
  );
  assert.equal(made.length, collected.length + counts.droppedTotal);
  return { made, collected, counts };
}

test("Queue: a sink that never answers: every record is counted as dropped (dead_letter); after it recovers, made = collected + dropped", async (t) => {
  const { worker, sinkPort } = queued;
  const lost = await calls(worker, PHASE);
  await waitFor(
    `${PHASE} records counted as dead_letter`,
    () => (accounting(worker.logs()).dropped.dead_letter ?? 0) >= PHASE,
    90_000,
  );
  const outDir = mkdtempSync(join(tmpdir(), "llm-cost-accounting-queue-"));
  dirs.push(outDir);
  // Nothing reached a sink: a sink started now sees none of them.
  await startCollect(sinkPort, outDir);
  const kept = await calls(worker, PHASE);
  await waitFor(`${PHASE} records collected`, () => collectedRecords(outDir).length >= PHASE, 60_000);
  await sleep(2000); // a late copy or drop would show by now
  const { made, collected, counts } = identity(worker, outDir);
  t.diagnostic(
    `made ${made.length} = collected ${collected.length} + dropped ${JSON.stringify(counts.dropped)}; ` +
      `delivered lines ${counts.delivered}; queued 0`,
  );
  assert.equal(made.length, 2 * PHASE);
  assert.deepEqual([...counts.droppedIds].sort(), [...lost].sort(), "the first calls, by request_id");
  assert.deepEqual(counts.dropped, { dead_letter: PHASE });
  assert.deepEqual([...collected].sort(), [...kept].sort());
  assert.ok(counts.delivered >= PHASE, `acknowledged batches count ${counts.delivered} records`);
  // The drop lines name requests, never keys or content.
  assert.doesNotMatch(worker.logs(), /sk-or-test-accounting/);
});

test("direct POST: a sink down, then up: made = collected + dropped (sink_failed)", async (t) => {
  const { worker, sinkPort } = direct;
  const lost = await calls(worker, PHASE / 2);
  await waitFor(
    `${PHASE / 2} records counted as sink_failed`,
    () => (accounting(worker.logs()).dropped.sink_failed ?? 0) >= PHASE / 2,
    30_000,
  );
  const outDir = mkdtempSync(join(tmpdir(), "llm-cost-accounting-post-"));
  dirs.push(outDir);
  await startCollect(sinkPort, outDir);
  const kept = await calls(worker, PHASE / 2);
  await waitFor(`${PHASE / 2} records collected`, () => collectedRecords(outDir).length >= PHASE / 2, 30_000);
  await sleep(2000);
  const { made, collected, counts } = identity(worker, outDir);
  t.diagnostic(
    `made ${made.length} = collected ${collected.length} + dropped ${JSON.stringify(counts.dropped)}; ` +
      `delivered lines ${counts.delivered}; queued 0`,
  );
  assert.equal(made.length, PHASE);
  assert.deepEqual(counts.dropped, { sink_failed: PHASE / 2 });
  assert.deepEqual([...counts.droppedIds].sort(), [...lost].sort());
  assert.deepEqual([...collected].sort(), [...kept].sort());
  assert.doesNotMatch(worker.logs(), /sk-or-test-accounting/);
});
