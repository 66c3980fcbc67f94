// End-to-end tests of the llm-cost Worker in the real workerd runtime (`wrangler dev --local`),
// against the replaying upstream and the NDJSON collector from tests/support/.
// Run with scripts/test-worker (builds the bundle first).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  startUpstream, startCollector, startWorker, stopAll, fixturesDir, removeDir, freePort,
  requestBody, fixtureBytes, cliPrice, collectorRecords, resetCollector, sleep,
} from "./harness.mjs";

const CHAT = "/api/v1/chat/completions";
const JSON_FIXTURE = "openrouter-cache-instructions-e2e"; // anthropic/claude-4.6-sonnet, priced
const JSON_FIXTURE_2 = "openrouter-thinking-true-emits-effort-medium";
const SSE_FIXTURE = "openrouter-stream-with-reasoning"; // openai/o3, 110 events, priced
const SSE_SLOW_FIXTURE = "openrouter-cache-streaming-e2e"; // 7 events
const UNKNOWN_MODEL_FIXTURE = "openrouter-tool-calling"; // mistralai/mistral-small: not in the table
const EMBEDDINGS_FIXTURE = "openai-embeddings-ada-002-food"; // text-embedding-ada-002, 8 tokens
const API_KEY = "sk-or-test-key-never-logged-0123456789";
// A documented-shape fake of OpenAI's `ImagesResponse` for gpt-image-1 (no public recording with
// usage found yet; fixtures/SOURCES.md): written into the fixtures directory, never presented as
// recorded.
const IMAGES_FAKE = "fake-images-gpt-image-1";
const IMAGES_ANSWER = JSON.stringify({
  created: 1713833628,
  data: [{ b64_json: Buffer.alloc(4096, 7).toString("base64") }],
  usage: { total_tokens: 330, input_tokens: 58, output_tokens: 272, input_tokens_details: { text_tokens: 18, image_tokens: 40 } },
});

// Audio: documented-shape fakes of OpenAI's answers (no public recording found; fixtures/SOURCES.md,
// "Audio"), written into the fixtures directory, never presented as recorded. whisper-1 reports the
// input audio's duration; speech answers audio bytes.
const TRANSCRIPTION_FAKE = "fake-transcription-whisper-duration";
const TRANSCRIPTION_ANSWER = JSON.stringify({ text: "Imagine the wildest idea.", usage: { type: "duration", seconds: 9.5 } });
const SPEECH_FAKE = "fake-speech-tts-1";
// gpt-4o-mini-tts with `stream_format: "sse"`: base64 audio deltas, then `speech.audio.done` with
// the tokens (the API reference's `SpeechAudioDeltaEvent` / `SpeechAudioDoneEvent`).
const SPEECH_STREAM_FAKE = "fake-speech-stream-gpt-4o-mini-tts";
const SPEECH_STREAM = Array.from({ length: 40 }, (_, i) =>
  `data: ${JSON.stringify({ type: "speech.audio.delta", audio: Buffer.alloc(6000, i).toString("base64") })}\n\n`,
).join("") + `data: ${JSON.stringify({ type: "speech.audio.done", usage: { input_tokens: 14, output_tokens: 1500, total_tokens: 1514 } })}\n\n`;
const SPEECH_AUDIO = Buffer.concat([Buffer.from("ID3\x04\x00\x00", "latin1"), Buffer.alloc(300_000, 0x5a)]);
const FORM_BOUNDARY = "----llmcostWorkerAudio";
/** A transcription form, the file first (openai-node keeps `{file, model}` order). */
function transcriptionForm(model) {
  return Buffer.concat([
    Buffer.from(`--${FORM_BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\nContent-Type: audio/wav\r\n\r\n`),
    Buffer.alloc(200_000, 0x11),
    Buffer.from(`\r\n--${FORM_BOUNDARY}\r\nContent-Disposition: form-data; name="model"\r\n\r\n${model}\r\n--${FORM_BOUNDARY}--\r\n`),
  ]);
}
// Issue #14's attribution, the same JSON as the Envoy filter's.
const ATTRIBUTION = {
  dimensions: {
    team: { from: ["header:x-team"] },
    feature: { from: ["tag:feature", "body:metadata.feature"] },
    user: { from: ["body:user"], hash: true },
  },
};

// Prices for a model the bundled table lacks, given to one Worker through MODEL_OVERRIDES.
const OVERRIDES = { "mistralai/mistral-small": { prompt: "0.000001", completion: "0.000003" } };

let upstream, collector, worker, sinkDownWorker, deadUpstreamWorker, badConfigWorker, fixtures;

before(async () => {
  fixtures = fixturesDir([
    JSON_FIXTURE, JSON_FIXTURE_2, SSE_FIXTURE, SSE_SLOW_FIXTURE, UNKNOWN_MODEL_FIXTURE,
    EMBEDDINGS_FIXTURE,
  ]);
  writeFileSync(join(fixtures, IMAGES_FAKE + ".json"), IMAGES_ANSWER);
  writeFileSync(join(fixtures, TRANSCRIPTION_FAKE + ".json"), TRANSCRIPTION_ANSWER);
  writeFileSync(join(fixtures, SPEECH_FAKE + ".mp3"), SPEECH_AUDIO);
  writeFileSync(join(fixtures, SPEECH_STREAM_FAKE + ".sse"), SPEECH_STREAM);
  [upstream, collector] = await Promise.all([startUpstream(fixtures), startCollector()]);
  const deadSink = `http://127.0.0.1:${await freePort()}/ingest`; // nothing listens there
  const deadUpstream = `http://127.0.0.1:${await freePort()}`;
  [worker, sinkDownWorker, deadUpstreamWorker, badConfigWorker] = await Promise.all([
    startWorker({
      UPSTREAM_BASE_URL: upstream.url,
      LOG_SINK_URL: collector.url + "/ingest",
      HEADER_PREFIX: "x-llm-",
      METER_CONFIG: JSON.stringify({ attribution: ATTRIBUTION }),
    }),
    startWorker({
      UPSTREAM_BASE_URL: upstream.url,
      LOG_SINK_URL: deadSink,
      HEADER_PREFIX: "x-acme-",
      MODEL_OVERRIDES: JSON.stringify(OVERRIDES),
      // Filter-only fields too (issue 26): each is ignored with a warning, the rest meters.
      METER_CONFIG: JSON.stringify({
        header_prefix: "x-ignored-", max_response_body_bytes: 8192,
        budgets: { default_limit_usd: "5" }, hold_headers: false, collector: { cluster: "c" },
      }),
    }),
    startWorker({ UPSTREAM_BASE_URL: deadUpstream, LOG_SINK_URL: collector.url + "/ingest" }),
    startWorker({
      UPSTREAM_BASE_URL: upstream.url,
      LOG_SINK_URL: collector.url + "/ingest",
      MODEL_OVERRIDES: '{"mistralai/mistral-small": {"promt": "1"}}',
    }),
  ]);
});

after(async () => {
  await stopAll();
  if (fixtures) removeDir(fixtures);
  for (const w of [worker, sinkDownWorker, deadUpstreamWorker, badConfigWorker]) {
    if (w) removeDir(w.dir);
  }
});

/** POSTs a fixture's recorded request through `base` (the Worker) with replay headers. */
function post(base, fixture, { body, headers = {}, path = CHAT } = {}) {
  return fetch(base + path, {
    method: "POST",
    headers: {
      authorization: `Bearer ${API_KEY}`,
      "content-type": "application/json",
      "x-replay-fixture": fixture,
      ...headers,
    },
    body: JSON.stringify(body ?? requestBody(fixture)),
    signal: AbortSignal.timeout(30_000),
  });
}

async function readAll(res) {
  return Buffer.from(await res.arrayBuffer());
}

const COMMENT = /: llm-cost (\{.*\})\n\n$/;

function splitComment(body) {
  const text = body.toString("utf8");
  const m = text.match(COMMENT);
  assert.ok(m, `stream must end with the llm-cost comment, ends with ${JSON.stringify(text.slice(-200))}`);
  return { before: body.subarray(0, body.length - Buffer.byteLength(m[0])), comment: JSON.parse(m[1]) };
}

function recordLines(logs) {
  return logs
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.startsWith("{") && l.includes('"cost_status"'))
    .map((l) => JSON.parse(l));
}

test("JSON response: body unchanged, X-LLM-Cost headers equal the CLI's cost_usd", async () => {
  for (const name of [JSON_FIXTURE, JSON_FIXTURE_2]) {
    const res = await post(worker.url, name);
    assert.equal(res.status, 200);
    const body = await readAll(res);
    assert.deepEqual(body, fixtureBytes(name + ".json"), "JSON body must pass byte for byte");
    const cli = cliPrice(name, name + ".json");
    assert.equal(cli.cost_status, "exact");
    assert.equal(res.headers.get("x-llm-cost"), cli.cost_usd, `${name}: header vs CLI`);
    assert.equal(res.headers.get("x-llm-cost-micros"), String(cli.cost_micros));
    assert.equal(res.headers.get("x-llm-cost-status"), "exact");
    assert.equal(res.headers.get("x-llm-model"), cli.model);
    assert.equal(res.headers.get("x-llm-tokens-in"), String(cli.prompt_tokens));
    assert.equal(res.headers.get("x-llm-tokens-out"), String(cli.completion_tokens));
    assert.equal(res.headers.get("x-llm-pricing-version"), cli.pricing_version);
  }
});

test("images: an image generation gets X-LLM-Cost from its token usage, the image passes unchanged", async () => {
  const body = { model: "gpt-image-1", prompt: "a cat", quality: "low" };
  const res = await post(worker.url, IMAGES_FAKE, { path: "/v1/images/generations", body });
  assert.equal(res.status, 200);
  assert.equal((await readAll(res)).toString("utf8"), IMAGES_ANSWER, "the image passes byte for byte");
  // The bundled openai/gpt-image-1: 58 input tokens at prompt 0.00001 (no `image` price of its
  // own), 272 output image tokens at image_output 0.00004 (the Envoy test and the CLI agree).
  assert.equal(res.headers.get("x-llm-cost"), "0.01146");
  assert.equal(res.headers.get("x-llm-cost-status"), "exact");
  const images = async () =>
    (await (await fetch(collector.url + "/_records")).json()).filter((r) => r.endpoint === "images");
  const deadline = Date.now() + 5000;
  while ((await images()).length < 1 && Date.now() < deadline) await sleep(50);
  const [record] = await images();
  assert.ok(record, "the images record reached the sink");
  assert.equal(record.image_completion_tokens, 272);
  assert.equal(record.priced_as, "openai/gpt-image-1");
});

async function recordsOf(endpoint) {
  const deadline = Date.now() + 5000;
  const of = async () =>
    (await (await fetch(collector.url + "/_records")).json()).filter((r) => r.endpoint === endpoint);
  while ((await of()).length < 1 && Date.now() < deadline) await sleep(50);
  return of();
}

test("transcription: the model comes from the form, X-LLM-Cost from the duration, the form goes as sent", async () => {
  await fetch(upstream.url + "/_reset", { method: "POST" });
  const form = transcriptionForm("whisper-1");
  const res = await fetch(worker.url + "/v1/audio/transcriptions", {
    method: "POST",
    headers: {
      authorization: `Bearer ${API_KEY}`,
      "content-type": `multipart/form-data; boundary=${FORM_BOUNDARY}`,
      "x-replay-fixture": TRANSCRIPTION_FAKE,
    },
    body: form,
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(res.status, 200);
  assert.equal((await readAll(res)).toString("utf8"), TRANSCRIPTION_ANSWER);
  // 9.5 s at whisper-1's audio_second 0.0001 (the bundled supplement, LiteLLM
  // input_cost_per_second): the same as `llm-cost price` and the Envoy test.
  assert.equal(res.headers.get("x-llm-cost"), "0.00095");
  assert.equal(res.headers.get("x-llm-cost-status"), "exact");
  const [seen] = await (await fetch(upstream.url + "/_requests?bodies=0")).json();
  assert.equal(seen.body_sha256, createHash("sha256").update(form).digest("hex"), "the form reached the upstream unchanged");
  const [record] = await recordsOf("audio_transcriptions");
  assert.ok(record, "the transcription record reached the sink");
  assert.equal(record.model_requested, "whisper-1");
  assert.equal(record.audio_duration_ms, 9500);
  assert.equal(record.priced_as, "openai/whisper-1+litellm:whisper-1");
});

test("speech: X-LLM-Cost from the request's characters, the audio passes byte for byte", async () => {
  const input = "Today is a wonderful day to build something people love!";
  const res = await post(worker.url, SPEECH_FAKE, { path: "/v1/audio/speech", body: { model: "tts-1", input, voice: "alloy" } });
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("content-type"), "audio/mpeg");
  // 56 characters at tts-1's input_character 0.000015.
  assert.equal(res.headers.get("x-llm-cost"), "0.00084");
  assert.ok((await readAll(res)).equals(SPEECH_AUDIO), "the audio passes byte for byte");
  const [record] = await recordsOf("audio_speech");
  assert.ok(record, "the speech record reached the sink");
  assert.equal(record.input_characters, 56);
  assert.equal(record.priced_as, "openai/tts-1+litellm:tts-1");
});

test("speech stream: priced from its done event, the events pass unchanged", async () => {
  const body = { model: "gpt-4o-mini-tts", input: "Today is a wonderful day to build something!", voice: "alloy", stream_format: "sse" };
  const res = await post(worker.url, SPEECH_STREAM_FAKE, { path: "/v1/audio/speech", body });
  assert.equal(res.status, 200);
  assert.ok((await readAll(res)).toString("utf8").startsWith(SPEECH_STREAM), "the audio events pass unchanged");
  const deadline = Date.now() + 5000;
  let record;
  while (!record && Date.now() < deadline) {
    [record] = (await recordsOf("audio_speech")).filter((r) => r.model_requested === "gpt-4o-mini-tts");
    if (!record) await sleep(50);
  }
  assert.ok(record, "the speech stream's record reached the sink");
  // 14 text tokens at the supplement's prompt 0.0000006 + 1500 audio tokens at audio_output
  // 0.000012: the same as the Envoy test.
  assert.equal(record.cost_usd, "0.0180084");
  assert.equal(record.cost_status, "exact");
  assert.equal(record.audio_completion_tokens, 1500);
  assert.equal(record.priced_as, "openai/gpt-4o-mini-tts+litellm:gpt-4o-mini-tts");
});

test("embeddings: body unchanged, X-LLM-Cost equal to the CLI's, request sent as it came", async () => {
  await fetch(upstream.url + "/_reset", { method: "POST" });
  await resetCollector(collector.url);
  const path = "/v1/embeddings";
  const res = await post(worker.url, EMBEDDINGS_FIXTURE, { path });
  assert.equal(res.status, 200);
  const body = await readAll(res);
  assert.deepEqual(body, fixtureBytes(EMBEDDINGS_FIXTURE + ".json"), "the vectors pass byte for byte");
  const cli = cliPrice(EMBEDDINGS_FIXTURE, EMBEDDINGS_FIXTURE + ".json");
  assert.equal(cli.cost_usd, "0.0000008"); // 8 tokens at $0.10 per million (fixtures/golden.json)
  assert.equal(res.headers.get("x-llm-cost"), cli.cost_usd);
  assert.equal(res.headers.get("x-llm-cost-status"), "exact");
  assert.equal(res.headers.get("x-llm-tokens-in"), "8");
  // An earlier test's record still in flight may reach the sink after the reset: take this one's.
  const embeddings = async () =>
    (await (await fetch(collector.url + "/_records")).json()).filter((r) => r.endpoint === "embeddings");
  const deadline = Date.now() + 5000;
  while ((await embeddings()).length < 1 && Date.now() < deadline) await sleep(50);
  const [record] = await embeddings();
  assert.ok(record, "the embeddings record reached the sink");
  assert.equal(record.cost_usd, cli.cost_usd);
  assert.equal(record.model, "text-embedding-ada-002");
  const seen = await (await fetch(upstream.url + "/_requests")).json();
  const sent = seen.find((r) => r.path === path);
  assert.ok(sent, "the upstream saw the call");
  assert.equal(sent.body, JSON.stringify(requestBody(EMBEDDINGS_FIXTURE)), "no rewrite for embeddings");
});

test("SSE response: streamed unchanged, ends with the cost comment equal to the CLI", async () => {
  const res = await post(worker.url, SSE_FIXTURE);
  assert.equal(res.status, 200);
  assert.match(res.headers.get("content-type"), /^text\/event-stream/);
  const { before, comment } = splitComment(await readAll(res));
  assert.deepEqual(before, fixtureBytes(SSE_FIXTURE + ".sse"), "events must pass byte for byte");
  const cli = cliPrice(SSE_FIXTURE, SSE_FIXTURE + ".sse");
  assert.equal(comment.cost_usd, cli.cost_usd);
  assert.equal(comment.cost_status, "exact");
  assert.equal(comment.model, "openai/o3");
});

test("streaming: first byte reaches the client before the upstream has finished", async () => {
  const delay = 300; // ms between the 7 upstream events: the upstream needs >= 1.8 s
  const t0 = Date.now();
  const res = await post(worker.url, SSE_SLOW_FIXTURE, {
    headers: { "x-replay-event-delay-ms": String(delay) },
  });
  const reader = res.body.getReader();
  const chunks = [];
  let first = null;
  for (let i = 0; i < 1000; i++) {
    const { done, value } = await reader.read();
    if (done) break;
    if (first === null) first = Date.now() - t0;
    chunks.push({ at: Date.now() - t0, value });
  }
  const total = Date.now() - t0;
  assert.ok(total >= 6 * delay * 0.9, `upstream should take ~${6 * delay} ms, took ${total}`);
  assert.ok(first < 3 * delay, `first byte after ${first} ms; whole stream ${total} ms`);
  assert.ok(chunks.length >= 4, `events should arrive as several chunks, got ${chunks.length}`);
  const { comment } = splitComment(Buffer.concat(chunks.map((c) => c.value)));
  assert.equal(comment.cost_status, "exact");
});

test("exactly one record reaches the sink (and the log), without secrets or prompt text", async () => {
  // A key of this test's own: an earlier test's record still in flight (ctx.waitUntil on a busy
  // machine) may reach the sink after the reset, and must not be counted as this call's.
  const key = "sk-or-test-key-one-record-0123456789";
  const keyId = createHash("sha256").update(key).digest("hex").slice(0, 12);
  const mine = async () =>
    (await (await fetch(collector.url + "/_records")).json()).filter((r) => r.key_id === keyId);
  await resetCollector(collector.url);
  const res = await post(worker.url, SSE_FIXTURE, { headers: { authorization: `Bearer ${key}` } });
  const { comment } = splitComment(await readAll(res));
  const deadline = Date.now() + 5000;
  while ((await mine()).length < 1 && Date.now() < deadline) await sleep(50);
  await sleep(500); // a second record would have arrived by now
  const records = await mine();
  assert.equal(records.length, 1, `one record expected, got ${JSON.stringify(records)}`);
  const [record] = records;
  assert.equal(record.cost_usd, comment.cost_usd);
  assert.equal(record.stream, true);
  assert.equal(record.model, "openai/o3");
  assert.equal(record.provider, "openrouter");
  assert.ok(record.key_id, "key_id (a hash of the key) is set");
  const raw = JSON.stringify(record);
  assert.ok(!raw.includes(key) && !raw.includes("sk-or-"), "record must not carry the key");
  assert.ok(!raw.includes("Who are you"), "record must not carry prompt text");
  const logged = recordLines(worker.logs()).filter((r) => r.ts === record.ts);
  assert.equal(logged.length, 1, "the same record is written once with console.log");
  assert.ok(!worker.logs().includes(key), "logs must not carry the key");
});

test("the core's request rewrite reaches the upstream (usage injected into a stream request)", async () => {
  await fetch(upstream.url + "/_reset", { method: "POST" });
  const body = { ...requestBody(SSE_FIXTURE) };
  delete body.stream_options; // the client did not ask for usage
  const res = await post(worker.url, SSE_FIXTURE, { body });
  const { before, comment } = splitComment(await readAll(res));
  // Whether a usage-only chunk is cut again is the core's call (this fixture's last chunk also
  // carries a choice, so it stays); the stream is complete and priced either way.
  assert.ok(before.toString().includes("data: [DONE]"));
  assert.equal(comment.cost_status, "exact");
  const seen = await (await fetch(upstream.url + "/_requests")).json();
  const sent = seen.find((r) => r.path === CHAT);
  assert.ok(sent, "the upstream saw the call");
  assert.equal(JSON.parse(sent.body).stream_options?.include_usage, true);
});

test("a sink that fails once gets the record on a retry, exactly once", async () => {
  await resetCollector(collector.url);
  await fetch(collector.url + "/_config", { method: "POST", body: JSON.stringify({ fail_next: 1 }) });
  try {
    const res = await post(worker.url, JSON_FIXTURE);
    assert.equal(res.status, 200);
    await readAll(res);
    const [record] = await collectorRecords(collector.url, 1);
    assert.equal(record.cost_usd, res.headers.get("x-llm-cost"));
    await sleep(1500); // past the last retry: a copy would have arrived by now
    const all = await (await fetch(collector.url + "/_records")).json();
    assert.equal(all.length, 1, `one record expected, got ${all.length}`);
    const { posts } = await (await fetch(collector.url + "/_posts")).json();
    assert.equal(posts, 2, "the first POST got 503, the second stored the record");
    assert.ok(worker.logs().includes("llm-cost: log sink answered HTTP 503"), "the failure is logged");
  } finally {
    await fetch(collector.url + "/_config", { method: "POST", body: JSON.stringify({ fail_next: 0 }) });
  }
});

test("sink down: the client gets the same answer at once, the record is still logged", async () => {
  const t0 = Date.now();
  const res = await post(sinkDownWorker.url, JSON_FIXTURE);
  const body = await readAll(res);
  const elapsed = Date.now() - t0;
  assert.equal(res.status, 200);
  assert.deepEqual(body, fixtureBytes(JSON_FIXTURE + ".json"));
  assert.equal(res.headers.get("x-acme-cost"), cliPrice(JSON_FIXTURE, JSON_FIXTURE + ".json").cost_usd);
  assert.ok(elapsed < 5000, `response took ${elapsed} ms`);
  for (let i = 0; i < 100 && recordLines(sinkDownWorker.logs()).length === 0; i++) await sleep(50);
  assert.equal(recordLines(sinkDownWorker.logs()).length, 1, "record written with console.log");
});

test("malformed upstream JSON passes unchanged; the record says why", async () => {
  await resetCollector(collector.url);
  const res = await post(worker.url, JSON_FIXTURE, { headers: { "x-replay-fault": "malformed" } });
  assert.equal(res.status, 200);
  assert.equal((await readAll(res)).toString(), "{not json");
  assert.equal(res.headers.get("x-llm-cost"), null, "no made-up cost");
  assert.equal(res.headers.get("x-llm-cost-status"), "error");
  assert.equal(res.headers.get("x-llm-cost-error"), "malformed_json");
  const [record] = await collectorRecords(collector.url, 1);
  assert.equal(record.cost_status, "error");
  assert.equal(record.error, "malformed_json");
});

test("unknown model: body unchanged, status unpriced, no cost header", async () => {
  await resetCollector(collector.url);
  const res = await post(worker.url, UNKNOWN_MODEL_FIXTURE);
  assert.equal(res.status, 200);
  assert.deepEqual(await readAll(res), fixtureBytes(UNKNOWN_MODEL_FIXTURE + ".json"));
  assert.equal(res.headers.get("x-llm-cost"), null);
  assert.equal(res.headers.get("x-llm-cost-status"), "unpriced");
  assert.equal(res.headers.get("x-llm-model"), "mistralai/mistral-small");
  assert.equal(res.headers.get("x-llm-tokens-in"), "134");
  const [record] = await collectorRecords(collector.url, 1);
  assert.equal(record.cost_status, "unpriced");
  assert.equal(record.error, "unknown_model");
  assert.equal(record.cost_usd, null);
});

test("upstream error status passes through unchanged", async () => {
  await resetCollector(collector.url);
  const res = await post(worker.url, JSON_FIXTURE, { headers: { "x-replay-fault": "status-500" } });
  assert.equal(res.status, 500);
  const body = JSON.parse((await readAll(res)).toString());
  assert.equal(body.error.message, "replayed upstream error");
  const [record] = await collectorRecords(collector.url, 1);
  assert.equal(record.status_code, 500);
  assert.equal(record.error, "upstream_status");
});

test("upstream reset mid-stream: the client sees the events so far, the record says aborted", async () => {
  await resetCollector(collector.url);
  const res = await post(worker.url, SSE_FIXTURE, { headers: { "x-replay-fault": "reset-mid-stream" } });
  assert.equal(res.status, 200);
  let received = Buffer.alloc(0);
  try {
    received = await readAll(res);
  } catch {
    /* the truncated stream may surface as an error: that is the upstream's answer */
  }
  assert.ok(!received.toString().includes("[DONE]"), "the stream was cut");
  const [record] = await collectorRecords(collector.url, 1);
  assert.ok(record, "a record is still written");
  assert.equal(record.cost_status, "error");
  assert.match(record.error, /aborted|truncated_stream/);
});

test("non-LLM paths pass through without metering headers or records", async () => {
  await resetCollector(collector.url);
  const res = await fetch(worker.url + "/api/v1/models", {
    headers: { "x-replay-fixture": JSON_FIXTURE },
    signal: AbortSignal.timeout(10_000),
  });
  assert.equal(res.status, 200);
  await readAll(res);
  assert.equal(res.headers.get("x-llm-cost-status"), null);
  await sleep(300);
  assert.equal((await collectorRecords(collector.url, 1, 300)).length, 0);
});

test("HEADER_PREFIX and MODEL_OVERRIDES: prices an unknown model like the CLI with --config", async () => {
  const res = await post(sinkDownWorker.url, UNKNOWN_MODEL_FIXTURE);
  assert.equal(res.status, 200);
  assert.deepEqual(await readAll(res), fixtureBytes(UNKNOWN_MODEL_FIXTURE + ".json"));
  const cli = cliPrice(UNKNOWN_MODEL_FIXTURE, UNKNOWN_MODEL_FIXTURE + ".json", { models: OVERRIDES });
  assert.equal(cli.cost_usd, "0.000263"); // 134 x 0.000001 + 43 x 0.000003
  assert.equal(res.headers.get("x-acme-cost"), cli.cost_usd);
  assert.equal(res.headers.get("x-acme-cost-status"), "exact");
  assert.equal(res.headers.get("x-acme-pricing-version"), cli.pricing_version);
  assert.equal(res.headers.get("x-llm-cost"), null);
});

test("upstream unreachable: 502, and the record says upstream_unreachable", async () => {
  await resetCollector(collector.url);
  const res = await post(deadUpstreamWorker.url, JSON_FIXTURE);
  assert.equal(res.status, 502);
  await readAll(res);
  const [record] = await collectorRecords(collector.url, 1);
  assert.ok(record, "record sent");
  assert.equal(record.error, "upstream_unreachable");
  assert.equal(record.status_code, 502);
  assert.equal(record.cost_status, "no_usage");
});

test("bad MODEL_OVERRIDES: metering is off, traffic passes unchanged, the reason is logged", async () => {
  await resetCollector(collector.url);
  for (const name of [JSON_FIXTURE, SSE_FIXTURE]) {
    const res = await post(badConfigWorker.url, name);
    assert.equal(res.status, 200);
    const ext = name === SSE_FIXTURE ? ".sse" : ".json";
    assert.deepEqual(await readAll(res), fixtureBytes(name + ext), `${name} passes byte for byte`);
    assert.equal(res.headers.get("x-llm-cost-status"), null);
  }
  assert.match(badConfigWorker.logs(), /metering disabled.*models\.mistralai\/mistral-small\.promt/);
  await sleep(300);
  assert.equal((await collectorRecords(collector.url, 1, 300)).length, 0);
});

test("filter-only METER_CONFIG fields are named in warnings; the rest of the configuration meters", async () => {
  for (const field of ["budgets", "hold_headers", "collector"]) {
    assert.match(sinkDownWorker.logs(), new RegExp(`METER_CONFIG: .*field \`${field}\` ignored by the Worker`), field);
  }
  assert.doesNotMatch(sinkDownWorker.logs(), /metering disabled/);
  const res = await post(sinkDownWorker.url, JSON_FIXTURE);
  assert.equal(res.status, 200);
  await readAll(res);
  assert.equal(res.headers.get("x-acme-cost-status"), "exact", "metered with HEADER_PREFIX");
  assert.ok(res.headers.get("x-acme-cost"), "hold_headers: false is ignored: the Worker still adds headers");
});

test("JSON body over max_response_body_bytes (METER_CONFIG) passes unchanged, unmetered", async () => {
  const original = fixtureBytes(JSON_FIXTURE + ".json");
  for (const fault of ["pad-10000", "pad-10000,chunked-json"]) {
    const res = await post(sinkDownWorker.url, JSON_FIXTURE, { headers: { "x-replay-fault": fault } });
    assert.equal(res.status, 200);
    const body = await readAll(res);
    assert.equal(body.length, original.length + 10000, fault);
    assert.deepEqual(body.subarray(0, original.length), original, fault);
    assert.equal(res.headers.get("x-acme-cost"), null, fault);
    assert.equal(res.headers.get("x-acme-cost-error"), null, `${fault}: streamed, so no headers`);
  }
  await sleep(300);
  const errors = recordLines(sinkDownWorker.logs()).map((r) => r.error);
  assert.equal(errors.filter((e) => e === "response_too_large").length, 2, String(errors));
});

test("chunked JSON (no content-length) is buffered within the bound and metered", async () => {
  const res = await post(worker.url, JSON_FIXTURE, { headers: { "x-replay-fault": "chunked-json" } });
  assert.equal(res.status, 200);
  assert.deepEqual(await readAll(res), fixtureBytes(JSON_FIXTURE + ".json"));
  assert.equal(res.headers.get("x-llm-cost"), cliPrice(JSON_FIXTURE, JSON_FIXTURE + ".json").cost_usd);
});

test("attribution: headers, x-llm-tags and the body land in the record's attributes", async () => {
  await resetCollector(collector.url);
  await fetch(upstream.url + "/_reset", { method: "POST" });
  const body = { ...requestBody(JSON_FIXTURE), user: "end-user-77" };
  const res = await post(worker.url, JSON_FIXTURE, {
    body,
    headers: { "x-team": "search", "x-llm-tags": "env=prod, feature=summarize" },
  });
  assert.equal(res.status, 200);
  await readAll(res);
  const [record] = await collectorRecords(collector.url, 1);
  assert.equal(record.attributes.team, "search");
  assert.equal(record.attributes.feature, "summarize");
  assert.match(record.attributes.user, /^[0-9a-f]{12}$/);
  assert.ok(!JSON.stringify(record).includes("end-user-77"), "the end-user id is hashed");
  // The attribution headers go on to the upstream (remove_headers is off), x-llm-tags included.
  const seen = await (await fetch(upstream.url + "/_requests")).json();
  const sent = seen.find((r) => r.path === CHAT);
  assert.equal(sent.headers["x-llm-tags"], "env=prod, feature=summarize");
  assert.equal(sent.headers["x-team"], "search");
});

test("attribution: a record without values has attributes {}", async () => {
  await resetCollector(collector.url);
  const res = await post(worker.url, JSON_FIXTURE);
  await readAll(res);
  const [record] = await collectorRecords(collector.url, 1);
  assert.deepEqual(record.attributes, {});
});
