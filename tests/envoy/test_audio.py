"""Audio through the real Envoy: transcriptions (a multipart form, the model a form field) priced from
their token or duration usage, a plain-text transcription that says it has no usage, and speech
priced from the request's input characters while its audio answer passes unheld and unchanged. Each
cost equals `llm-cost price` on the same request and answer.

No public recording of these endpoints was found (fixtures/SOURCES.md, "Audio"): every answer here
is a documented-shape fake of OpenAI's API reference (`Transcription` with `usage` of type `tokens`
or `duration`, the `transcript.text.done` stream event, speech's audio bytes), served by the real
replay upstream from a directory of its own, and labelled as a fake, never presented as recorded."""

import base64
import hashlib
import json
import os
import subprocess
import tempfile
import uuid

import pytest

from support import harness, rawhttp

BOUNDARY = "----llmcostAudioBoundary7MA4YWxk"
# Larger than max_request_body_bytes and max_response_body_bytes (1 MiB each): a held body would
# be refused as too large, so an exact record shows the body was never held.
AUDIO = b"RIFF" + bytes(range(256)) * (6 << 10)  # 1.5 MiB of "audio"

FAKES = {
    # The OpenAI API reference's example answer for gpt-4o-transcribe (documented shape).
    "fake-transcription-tokens.json": json.dumps({
        "text": "Imagine the wildest idea that you've ever had.",
        "usage": {"type": "tokens", "input_tokens": 14,
                  "input_token_details": {"text_tokens": 0, "audio_tokens": 14},
                  "output_tokens": 45, "total_tokens": 59},
    }).encode(),
    # whisper-1 reports the input audio's duration.
    "fake-transcription-duration.json": json.dumps({
        "text": "Imagine the wildest idea that you've ever had.",
        "usage": {"type": "duration", "seconds": 9.5},
    }).encode(),
    # `response_format: "text"`: the text alone.
    "fake-transcription-text.txt": b"Imagine the wildest idea that you've ever had.\n",
    # `stream: true` (gpt-4o-mini-transcribe): deltas, then the done event with the usage.
    "fake-transcription-stream.sse": (
        b'data: {"type":"transcript.text.delta","delta":"Imagine"}\n\n'
        b'data: {"type":"transcript.text.delta","delta":" the wildest idea."}\n\n'
        b'data: {"type":"transcript.text.done","text":"Imagine the wildest idea.","usage":{"type":"tokens",'
        b'"input_tokens":20,"input_token_details":{"text_tokens":4,"audio_tokens":16},"output_tokens":6,'
        b'"total_tokens":26}}\n\n'
    ),
    # Speech: audio bytes (an ID3 header, then anything).
    "fake-speech.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00" + AUDIO,
    # gpt-4o-mini-tts with `stream_format: "sse"` (the API reference's `SpeechAudioDeltaEvent` and
    # `SpeechAudioDoneEvent`): base64 audio deltas (64 of 12 KiB), then the done event's tokens.
    "fake-speech-stream.sse": b"".join(
        b'data: {"type":"speech.audio.delta","audio":"' + base64.b64encode(AUDIO[i << 13:(i + 1) << 13]) + b'"}\n\n'
        for i in range(64)
    ) + b'data: {"type":"speech.audio.done","usage":{"input_tokens":14,"output_tokens":1500,"total_tokens":1514}}\n\n',
    # `response_format: "verbose_json"` translation (openai-python's `TranslationVerbose`): `duration`,
    # no `usage`.
    "fake-translation-verbose.json": json.dumps({
        "task": "translate", "language": "english", "duration": 8.470000267028809,
        "text": "Imagine the wildest idea that you've ever had.",
        "segments": [{"id": 0, "seek": 0, "start": 0.0, "end": 8.47, "text": " Imagine the wildest idea."}],
    }).encode(),
}


@pytest.fixture(scope="module")
def fakes():
    with tempfile.TemporaryDirectory() as d:
        for name, body in FAKES.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(body)
        yield d


@pytest.fixture(scope="module")
def audio_envoy(envoy_bin, collector, fakes):
    up = harness.Upstream(fixtures=fakes)
    envoy = harness.Envoy(envoy_bin, up.port, collector.port)
    try:
        yield envoy, up
    finally:
        envoy.stop()
        up.stop()


def form(fields, file_first=True, audio=AUDIO):
    """A multipart/form-data body as the SDKs send it: the file part, then the text fields (openai-node
    keeps the caller's key order, `{file, model}`), or the fields first (openai-python)."""
    file_part = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"speech.wav\"\r\n"
                 "Content-Type: audio/wav\r\n\r\n").encode() + audio + b"\r\n"
    text = b"".join(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n".encode()
                    for k, v in fields.items())
    parts = file_part + text if file_first else text + file_part
    return parts + f"--{BOUNDARY}--\r\n".encode()


def call(envoy, path, fake, body, content_type):
    rid = str(uuid.uuid4())
    headers = {"host": "api.openai.com", "content-type": content_type,
               "authorization": "Bearer sk-test-not-a-real-key", "x-replay-fixture": fake,
               "x-request-id": rid}
    return rawhttp.request(envoy.port, "POST", path, headers, body), rid


def cli_price(path, request, answer):
    """`llm-cost price` on the same request and answer (bundled table)."""
    with tempfile.TemporaryDirectory() as d:
        req, resp = os.path.join(d, "request"), os.path.join(d, "answer")
        open(req, "wb").write(request)
        open(resp, "wb").write(answer)
        out = subprocess.run([harness.CLI, "price", "--provider", "openai", "--path", path,
                              "--request", req, resp], capture_output=True, check=True)
    return json.loads(out.stdout)


def upstream_saw(up, rid):
    [seen] = [r for r in up.requests() if r["headers"].get("x-request-id") == rid]
    return seen


@pytest.mark.parametrize("fake,model,file_first,expected", [
    # gpt-4o-transcribe: 14 audio tokens at the supplement's audio 0.0000025 + 45 at completion 0.00001.
    ("fake-transcription-tokens", "gpt-4o-transcribe", True, "0.000485"),
    # whisper-1: 9.5 s at the supplement's audio_second 0.0001 (LiteLLM input_cost_per_second).
    ("fake-transcription-duration", "whisper-1", False, "0.00095"),
])
def test_a_transcription_form_is_priced_from_its_usage(audio_envoy, collector, fake, model, file_first, expected):
    envoy, up = audio_envoy
    body = form({"model": model, "response_format": "json"}, file_first=file_first)
    resp, rid = call(envoy, "/v1/audio/transcriptions", fake, body, f"multipart/form-data; boundary={BOUNDARY}")
    assert resp.status == 200 and resp.complete
    assert resp.body == FAKES[fake + ".json"]
    assert resp.header("x-llm-cost") == expected
    assert resp.header("x-llm-cost-status") == "exact"
    # The form went upstream byte for byte, although larger than max_request_body_bytes.
    seen = upstream_saw(up, rid)
    assert (seen["body_bytes"], seen["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["model_requested"], record["cost_usd"]) == (
        "audio_transcriptions", model, expected)
    assert record["cost_usd"] == cli_price("/v1/audio/transcriptions", body, FAKES[fake + ".json"])["cost_usd"]
    if model == "whisper-1":
        assert (record["audio_duration_ms"], record["prompt_tokens"]) == (9500, 0)
        assert record["priced_as"] == "openai/whisper-1+litellm:whisper-1"
    else:
        assert (record["prompt_tokens"], record["audio_prompt_tokens"], record["completion_tokens"]) == (14, 14, 45)


def test_a_plain_text_transcription_says_it_has_no_usage(audio_envoy, collector):
    envoy, _ = audio_envoy
    body = form({"model": "whisper-1", "response_format": "text"})
    resp, rid = call(envoy, "/v1/audio/transcriptions", "fake-transcription-text", body,
                     f"multipart/form-data; boundary={BOUNDARY}")
    assert resp.status == 200 and resp.body == FAKES["fake-transcription-text.txt"]
    assert resp.header("x-llm-cost") is None, "no usage: no made-up cost"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["cost_status"], record["error"]) == (
        "audio_transcriptions", "no_usage", "usage_not_reported")
    assert record["model_requested"] == "whisper-1"


def test_a_streamed_transcription_is_priced_from_its_done_event(audio_envoy, collector):
    envoy, _ = audio_envoy
    body = form({"model": "gpt-4o-mini-transcribe", "stream": "true"})
    resp, rid = call(envoy, "/v1/audio/transcriptions", "fake-transcription-stream", body,
                     f"multipart/form-data; boundary={BOUNDARY}")
    assert resp.status == 200 and resp.complete
    assert resp.body.startswith(FAKES["fake-transcription-stream.sse"]), "events pass unchanged"
    # 16 audio tokens at 0.00000125 + 4 text at prompt 0.00000125 + 6 at completion 0.000005.
    expected = "0.000055"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["stream"], record["cost_usd"]) == ("audio_transcriptions", True, expected)
    assert expected == cli_price("/v1/audio/transcriptions", body, FAKES["fake-transcription-stream.sse"])["cost_usd"]


def test_speech_is_priced_from_its_input_and_its_audio_passes_unheld_and_unchanged(audio_envoy, collector):
    envoy, up = audio_envoy
    request = json.dumps({"model": "tts-1", "input": "Today is a wonderful day to build something people love!",
                          "voice": "alloy"}).encode()
    resp, rid = call(envoy, "/v1/audio/speech", "fake-speech", request, "application/json")
    assert resp.status == 200 and resp.complete
    assert resp.body == FAKES["fake-speech.mp3"], "the audio reaches the client byte for byte"
    assert resp.header("content-type") == "audio/mpeg"
    # 56 characters at tts-1's 0.000015 (LiteLLM input_cost_per_character, bundled whole).
    assert resp.header("x-llm-cost") == "0.00084"
    assert resp.header("x-llm-cost-status") == "exact"
    assert upstream_saw(up, rid)["body"].encode() == request, "the request goes as sent"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["input_characters"], record["cost_usd"]) == ("audio_speech", 56, "0.00084")
    assert record["priced_as"] == "openai/tts-1+litellm:tts-1"
    assert record["cost_usd"] == cli_price("/v1/audio/speech", request, FAKES["fake-speech.mp3"])["cost_usd"]


def test_speech_of_a_model_billed_by_tokens_says_it_has_no_usage(audio_envoy, collector):
    envoy, _ = audio_envoy
    request = json.dumps({"model": "gpt-4o", "input": "Hello", "voice": "alloy"}).encode()
    resp, rid = call(envoy, "/v1/audio/speech", "fake-speech", request, "application/json")
    assert resp.status == 200 and resp.body == FAKES["fake-speech.mp3"]
    assert resp.header("x-llm-cost") is None
    assert resp.header("x-llm-cost-error") == "usage_not_reported"


def test_a_streamed_speech_is_priced_from_its_done_event_and_passes_unchanged(audio_envoy, collector):
    envoy, _ = audio_envoy
    request = json.dumps({"model": "gpt-4o-mini-tts", "input": "Today is a wonderful day to build something!",
                          "voice": "alloy", "stream_format": "sse"}).encode()
    resp, rid = call(envoy, "/v1/audio/speech", "fake-speech-stream", request, "application/json")
    assert resp.status == 200 and resp.complete
    assert resp.body.startswith(FAKES["fake-speech-stream.sse"]), "the audio events pass unchanged"
    # 14 text tokens at the supplement's prompt 0.0000006 + 1500 audio tokens at audio_output 0.000012.
    expected = "0.0180084"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["cost_status"], record["cost_usd"]) == ("audio_speech", "exact", expected)
    assert (record["prompt_tokens"], record["completion_tokens"], record["audio_completion_tokens"]) == (14, 1500, 1500)
    assert record["priced_as"] == "openai/gpt-4o-mini-tts+litellm:gpt-4o-mini-tts"
    assert expected == cli_price("/v1/audio/speech", request, FAKES["fake-speech-stream.sse"])["cost_usd"]


def test_a_verbose_translation_is_priced_from_its_duration(audio_envoy, collector):
    envoy, _ = audio_envoy
    body = form({"model": "whisper-1", "response_format": "verbose_json"}, file_first=False)
    resp, rid = call(envoy, "/v1/audio/translations", "fake-translation-verbose", body,
                     f"multipart/form-data; boundary={BOUNDARY}")
    assert resp.status == 200 and resp.body == FAKES["fake-translation-verbose.json"]
    # 8.470000267… s → 8,471 ms (finer parts round up) at audio_second 0.0001.
    assert resp.header("x-llm-cost") == "0.0008471"
    [record] = collector.records_for(rid)
    assert (record["endpoint"], record["audio_duration_ms"], record["cost_usd"]) == (
        "audio_translations", 8471, "0.0008471")
    assert record["cost_usd"] == cli_price("/v1/audio/translations", body,
                                           FAKES["fake-translation-verbose.json"])["cost_usd"]


def test_a_model_budget_holds_a_form_until_its_model_field_and_refuses_over_it(envoy_bin, collector, fakes):
    """A rule on `model` sees a transcription's form field: the request headers are held while the
    form's first bytes arrive (at most max_request_body_bytes), so the call over the limit gets the
    429 and the upstream never sees it; a form that does not match passes whole. (A form whose model
    comes after more than max_request_body_bytes may be checked without it: README, "Endpoints".)"""
    up = harness.Upstream(fixtures=fakes)
    config = {"collector": {"flush_interval_ms": 100},
              "budgets": {"reserve_usd": "0.0001",
                          "rules": [{"dimension": "model", "limits_usd": {"openai/whisper-1": "0.0009"}}]}}
    envoy = harness.Envoy(envoy_bin, up.port, collector.port, plugin_config=config)
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    try:
        fields = {"model": "whisper-1", "response_format": "json"}
        # 9.5 s = 0.00095: admitted (nothing spent yet), then spent: over the 0.0009 limit.
        resp, rid = call(envoy, "/v1/audio/transcriptions", "fake-transcription-duration",
                         form(fields, file_first=False), ctype)
        assert resp.status == 200 and resp.header("x-llm-cost") == "0.00095"
        # Refused, fields first (openai-python's order) ...
        resp, rid = call(envoy, "/v1/audio/transcriptions", "fake-transcription-duration",
                         form(fields, file_first=False), ctype)
        assert resp.status == 429, resp.body[:300]
        assert "model" in json.loads(resp.body)["error"]["message"]
        assert not [r for r in up.requests() if r["headers"].get("x-request-id") == rid]
        [record] = collector.records_for(rid)
        assert (record["status_code"], record["model_requested"], record["error"]) == (
            429, "whisper-1", "budget_exceeded")
        # ... and a small file first (openai-node keeps the caller's `{file, model}` order).
        small = form(fields, file_first=True, audio=AUDIO[:32 << 10])
        resp, rid = call(envoy, "/v1/audio/transcriptions", "fake-transcription-duration", small, ctype)
        assert resp.status == 429
        assert not [r for r in up.requests() if r["headers"].get("x-request-id") == rid]
        # A rule on another model does not refuse it; held for its model (a 1.5 MiB file first, so
        # at most max_request_body_bytes of it), the form still reaches the upstream byte for byte.
        big = form({"model": "gpt-4o-transcribe", "response_format": "json"}, file_first=True)
        resp, rid = call(envoy, "/v1/audio/transcriptions", "fake-transcription-tokens", big, ctype)
        assert resp.status == 200 and resp.header("x-llm-cost") == "0.000485"
        seen = upstream_saw(up, rid)
        assert (seen["body_bytes"], seen["body_sha256"]) == (len(big), hashlib.sha256(big).hexdigest())
    finally:
        envoy.stop()
        up.stop()
