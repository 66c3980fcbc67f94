//! `llm-cost price` as a user runs it: the real binary, real recordings.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn recording(name: &str) -> String {
    root()
        .join("fixtures/recordings")
        .join(name)
        .display()
        .to_string()
}

fn llm_cost(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .args(args)
        .output()
        .expect("llm-cost runs")
}

fn record_of(output: &Output) -> Value {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).expect("a JSON record")
}

#[test]
fn prices_a_json_response_with_a_snapshot_and_its_request() {
    let dir = tempdir();
    let meta: Value = serde_json::from_str(
        &std::fs::read_to_string(recording(
            "openrouter-cache-all-settings-real-api-0.meta.json",
        ))
        .unwrap(),
    )
    .unwrap();
    let request = dir.join("request.json");
    std::fs::write(&request, serde_json::to_vec(&meta["request_body"]).unwrap()).unwrap();
    let snapshot = root().join("pricing-data/snapshots/openrouter-models-2026-03-07.json");
    let record = record_of(&llm_cost(&[
        "price",
        "--pricing",
        snapshot.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
        &recording("openrouter-cache-all-settings-real-api-0.json"),
    ]));
    assert_eq!(record["cost_usd"], "0.01058775");
    assert_eq!(record["upstream_cost_usd"], "0.01058775");
    assert_eq!(record["cost_micros"], 10588);
    assert_eq!(record["model_requested"], "anthropic/claude-sonnet-4.6");
    assert_eq!(record["cost_status"], "exact");
    assert!(record["pricing_version"]
        .as_str()
        .unwrap()
        .starts_with("openrouter-2026-03-07+"));
}

#[test]
fn reads_a_stream_from_stdin() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .args(["price", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(recording("openrouter-stream-with-reasoning.sse")).unwrap();
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let record = record_of(&child.wait_with_output().unwrap());
    assert_eq!(record["stream"], true);
    assert_eq!(record["model"], "openai/o3");
    assert_eq!(record["completion_tokens"], 104);
}

#[test]
fn litellm_price_file_is_accepted() {
    let litellm = root().join("pricing-data/snapshots/litellm-model-prices-1.110.2.json");
    let record = record_of(&llm_cost(&[
        "price",
        "--pricing",
        litellm.to_str().unwrap(),
        &recording("openai-run-stream-sync-streams-real-model-0.sse"),
    ]));
    assert_eq!(record["cost_status"], "exact");
    assert_eq!(record["priced_as"], "gpt-4o-mini-2024-07-18");
    assert!(record["pricing_version"]
        .as_str()
        .unwrap()
        .starts_with("litellm+"));
}

#[test]
fn embeddings_and_legacy_completions_cost_the_same_with_litellm_prices() {
    // LiteLLM's `input_cost_per_token` for these models equals the bundled (OpenRouter) prompt
    // price, so the cost is fixtures/golden.json's; `priced_as` names LiteLLM's key.
    let litellm = root().join("pricing-data/snapshots/litellm-model-prices-1.110.2.json");
    for (file, path, priced_as, cost) in [
        (
            "openai-embeddings-documents.json",
            None,
            "text-embedding-3-small",
            "0.00000004",
        ),
        (
            "openai-embeddings-ada-002-food.json",
            None,
            "text-embedding-ada-002",
            "0.0000008",
        ),
        (
            "gemini-embeddings-task-prefix-default-query.json",
            Some("/v1beta/models/gemini-embedding-2:batchEmbedContents"),
            "gemini-embedding-2",
            "0.0000022",
        ),
        (
            "openai-legacy-completions-once-upon-a-time.json",
            None,
            "gpt-3.5-turbo-instruct",
            "0.000016",
        ),
    ] {
        let recording = recording(file);
        let mut args = vec!["price", "--pricing", litellm.to_str().unwrap()];
        if let Some(path) = path {
            args.extend(["--path", path]);
        }
        args.push(&recording);
        let record = record_of(&llm_cost(&args));
        assert_eq!(record["cost_status"], "exact", "{file}");
        assert_eq!(record["priced_as"], priced_as, "{file}");
        assert_eq!(record["cost_usd"], cost, "{file}");
    }
}

#[test]
fn an_image_edit_is_priced_by_text_image_in_and_image_out_tokens() {
    // A documented-shape fake of OpenAI's `ImagesResponse` (not a recording): gpt-image-1 with
    // LiteLLM's prices: 18 text tokens at 0.000005, 40 input image tokens at 0.00001 (input_cost_per_image_token),
    // 272 output image tokens at 0.00004 (output_cost_per_image_token).
    let dir = std::env::temp_dir().join(format!("llm-cost-images-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let request = dir.join("request.json");
    let response = dir.join("response.json");
    std::fs::write(
        &request,
        r#"{"model":"gpt-image-1","prompt":"a cat","quality":"low"}"#,
    )
    .unwrap();
    std::fs::write(
        &response,
        r#"{"created":1713833628,"data":[{"b64_json":"iVBORw0KGgo="}],"usage":{"total_tokens":330,
        "input_tokens":58,"output_tokens":272,"input_tokens_details":{"text_tokens":18,"image_tokens":40}}}"#,
    )
    .unwrap();
    let litellm = root().join("pricing-data/snapshots/litellm-model-prices-1.110.2.json");
    let record = record_of(&llm_cost(&[
        "price",
        "--pricing",
        litellm.to_str().unwrap(),
        "--provider",
        "openai",
        "--path",
        "/v1/images/edits",
        "--request",
        request.to_str().unwrap(),
        response.to_str().unwrap(),
    ]));
    std::fs::remove_dir_all(&dir).ok();
    assert_eq!(record["endpoint"], "images");
    assert_eq!(record["cost_status"], "exact");
    assert_eq!(record["image_prompt_tokens"], 40);
    assert_eq!(record["image_completion_tokens"], 272);
    assert_eq!(record["breakdown"]["prompt"], "0.00009");
    assert_eq!(record["breakdown"]["image_in"], "0.0004");
    assert_eq!(record["breakdown"]["image_out"], "0.01088");
    assert_eq!(record["cost_usd"], "0.01137");
}

/// A transcription form as openai-node sends `{file, model}`: the file part first.
fn transcription_form(model: &str) -> Vec<u8> {
    let mut form = b"--llmcostcli\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF"
        .to_vec();
    form.extend_from_slice(&[0x11; 4096]);
    form.extend_from_slice(
        format!("\r\n--llmcostcli\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\n{model}\r\n--llmcostcli--\r\n")
            .as_bytes(),
    );
    form
}

/// `llm-cost price` of one audio call: the request and answer written to files.
fn price_audio(pricing: Option<&Path>, path: &str, request: &[u8], answer: &[u8]) -> Value {
    let dir = std::env::temp_dir().join(format!(
        "llm-cost-audio-{}-{}",
        std::process::id(),
        path.replace('/', "-")
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let (req, resp) = (dir.join("request"), dir.join("answer"));
    std::fs::write(&req, request).unwrap();
    std::fs::write(&resp, answer).unwrap();
    let mut args = vec!["price", "--provider", "openai", "--path", path];
    if let Some(pricing) = pricing {
        args.extend(["--pricing", pricing.to_str().unwrap()]);
    }
    args.extend(["--request", req.to_str().unwrap(), resp.to_str().unwrap()]);
    let record = record_of(&llm_cost(&args));
    std::fs::remove_dir_all(&dir).ok();
    record
}

#[test]
fn audio_calls_are_priced_with_the_bundled_table_and_with_litellm_prices() {
    // Documented-shape fakes of OpenAI's answers (no public recording found: fixtures/SOURCES.md).
    let litellm = root().join("pricing-data/snapshots/litellm-model-prices-1.110.2.json");
    let tokens = br#"{"text":"Imagine the wildest idea.","usage":{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":0,"audio_tokens":14},"output_tokens":45,"total_tokens":59}}"#;
    let duration =
        br#"{"text":"Imagine the wildest idea.","usage":{"type":"duration","seconds":9.5}}"#;
    let speech = br#"{"model":"tts-1","input":"Today is a wonderful day to build something people love!","voice":"alloy"}"#;
    let audio = b"ID3\x04\x00\x00\x00\x00\x00\x00\xff\xfb\x90\x64";
    for (pricing, priced_as) in [
        (
            None,
            [
                "openai/gpt-4o-transcribe+litellm:gpt-4o-transcribe",
                "openai/whisper-1+litellm:whisper-1",
                "openai/tts-1+litellm:tts-1",
            ],
        ),
        (
            Some(litellm.as_path()),
            ["gpt-4o-transcribe", "whisper-1", "tts-1"],
        ),
    ] {
        // 14 audio tokens at 0.0000025 + 45 output tokens at 0.00001.
        let record = price_audio(
            pricing,
            "/v1/audio/transcriptions",
            &transcription_form("gpt-4o-transcribe"),
            tokens,
        );
        assert_eq!(record["endpoint"], "audio_transcriptions");
        assert_eq!(record["audio_prompt_tokens"], 14);
        assert_eq!(
            (&record["cost_usd"], &record["priced_as"]),
            (&Value::from("0.000485"), &Value::from(priced_as[0]))
        );
        // 9.5 s at 0.0001 per second (LiteLLM input_cost_per_second).
        let record = price_audio(
            pricing,
            "/v1/audio/transcriptions",
            &transcription_form("whisper-1"),
            duration,
        );
        assert_eq!(record["audio_duration_ms"], 9500);
        assert_eq!(record["breakdown"]["audio_duration"], "0.00095");
        assert_eq!(
            (&record["cost_usd"], &record["priced_as"]),
            (&Value::from("0.00095"), &Value::from(priced_as[1]))
        );
        // 56 characters at 0.000015 (LiteLLM input_cost_per_character).
        let record = price_audio(pricing, "/v1/audio/speech", speech, audio);
        assert_eq!(
            (&record["endpoint"], &record["input_characters"]),
            (&Value::from("audio_speech"), &Value::from(56))
        );
        assert_eq!(
            (&record["cost_usd"], &record["priced_as"]),
            (&Value::from("0.00084"), &Value::from(priced_as[2]))
        );
    }
    // gpt-4o-mini-tts bills tokens its audio answer does not report: no made-up cost.
    let request = br#"{"model":"gpt-4o-mini-tts","input":"Hello","voice":"alloy"}"#;
    let record = price_audio(Some(&litellm), "/v1/audio/speech", request, audio);
    assert_eq!(
        (
            &record["cost_status"],
            &record["error"],
            &record["cost_usd"]
        ),
        (
            &Value::from("no_usage"),
            &Value::from("usage_not_reported"),
            &Value::Null
        )
    );
}

#[test]
fn unknown_model_is_unpriced_and_still_exit_zero() {
    let record = record_of(&llm_cost(&[
        "price",
        &recording("openrouter-stream-error.sse"),
    ]));
    assert_eq!(record["cost_status"], "unpriced");
    assert_eq!(record["cost_usd"], Value::Null);
}

#[test]
fn a_partial_override_keyed_by_the_table_id_merges_and_applies_to_the_dated_slug() {
    // OpenRouter answers as `anthropic/claude-4.6-sonnet-20260217`; the override names the
    // table id and only `prompt`: completion keeps the table's 0.000015.
    let dir = tempdir();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"models":{"anthropic/claude-sonnet-4.6":{"prompt":"0.001"}}}"#,
    )
    .unwrap();
    let file = recording("openrouter-cache-messages-e2e.json");
    let record = record_of(&llm_cost(&[
        "price",
        "--config",
        config.to_str().unwrap(),
        &file,
    ]));
    assert_eq!(record["priced_as"], "anthropic/claude-sonnet-4.6");
    assert_eq!(record["cost_usd"], "0.017075"); // 17 × 0.001 + 5 × 0.000015
    assert!(record["pricing_version"]
        .as_str()
        .unwrap()
        .contains("+cfg-"));
    // The table's own price, written as an override, changes nothing: no `+cfg-`.
    std::fs::write(
        &config,
        r#"{"models":{"anthropic/claude-sonnet-4.6":{"prompt":"0.000003"}}}"#,
    )
    .unwrap();
    let same = record_of(&llm_cost(&[
        "price",
        "--config",
        config.to_str().unwrap(),
        &file,
    ]));
    let plain = record_of(&llm_cost(&["price", &file]));
    assert_eq!(same["pricing_version"], plain["pricing_version"]);
    assert_eq!(same["cost_usd"], plain["cost_usd"]);
}

#[test]
fn an_override_for_a_model_the_table_lacks_needs_prompt_and_completion() {
    let dir = tempdir();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"models":{"acme/private-1":{"prompt":"0.001"}}}"#,
    )
    .unwrap();
    let output = llm_cost(&[
        "price",
        "--config",
        config.to_str().unwrap(),
        &recording("openrouter-cache-messages-e2e.json"),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("field `models.acme/private-1`"), "{stderr}");
    assert!(stderr.contains("missing: completion"), "{stderr}");
}

#[test]
fn config_overrides_change_the_price_and_version() {
    let dir = tempdir();
    let config = dir.join("config.json");
    std::fs::write(
        &config,
        r#"{"models":{"openai/o3":{"prompt":"0.001","completion":"0.001"}}}"#,
    )
    .unwrap();
    let record = record_of(&llm_cost(&[
        "price",
        "--config",
        config.to_str().unwrap(),
        &recording("openrouter-stream-with-reasoning.sse"),
    ]));
    assert_eq!(record["cost_usd"], "0.113"); // (9 + 104) tokens × 0.001
    assert!(record["pricing_version"]
        .as_str()
        .unwrap()
        .contains("+cfg-"));
}

#[test]
fn route_adjustment_marks_the_cost_up_and_says_so() {
    let dir = tempdir();
    let config = dir.join("adjust.json");
    std::fs::write(
        &config,
        r#"{"adjustments":[{"host":"elsewhere","percent":"50"},{"host":"openrouter.ai","path_prefix":"/api/","percent":"10"}]}"#,
    )
    .unwrap();
    let record = record_of(&llm_cost(&[
        "price",
        "--config",
        config.to_str().unwrap(),
        &recording("openrouter-stream-with-reasoning.sse"),
    ]));
    assert_eq!(record["cost_usd"], "0.000935"); // 0.00085 list × 1.10
    assert_eq!(record["adjustment_percent"], "10");
    assert_eq!(record["upstream_cost_usd"], "0.00085");
}

#[test]
fn unreadable_file_and_bad_flags_fail_with_a_message() {
    let missing = llm_cost(&["price", "/no/such/file.json"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read /no/such/file.json"));
    let bad_flag = llm_cost(&["price", "--bogus", "x"]);
    assert!(!bad_flag.status.success());
    assert!(String::from_utf8_lossy(&bad_flag.stderr).contains("--bogus"));
    let not_a_table = recording("openrouter-stream-error.sse");
    let bad_pricing = llm_cost(&["price", "--pricing", &not_a_table, &not_a_table]);
    assert_eq!(bad_pricing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_pricing.stderr).contains("pricing file: not JSON"));
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "llm-cost-cli-test-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn every_recording_is_detected_and_priced_without_flags() {
    // Same tokens and status as the golden test (which tells the core the path explicitly).
    let golden: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("fixtures/golden.json")).unwrap(),
    )
    .unwrap();
    for (name, entry) in golden.as_object().unwrap() {
        let file = recording(entry["file"].as_str().unwrap());
        let path = entry["path"].as_str().unwrap();
        let record = if path.ends_with("EmbedContents") || path.ends_with(":embedContent") {
            // A Gemini embeddings answer names no model: only the path does, so it is given.
            let model = entry["model_requested"].as_str().unwrap();
            let path = path.replace("{model}", model);
            record_of(&llm_cost(&["price", "--path", &path, &file]))
        } else {
            record_of(&llm_cost(&["price", &file]))
        };
        assert_eq!(record["provider"], entry["provider"], "{name}");
        for field in [
            "prompt_tokens",
            "completion_tokens",
            "cached_tokens",
            "cache_write_tokens",
            "reasoning_tokens",
            "model",
        ] {
            assert_eq!(record[field], entry[field], "{name}: {field}");
        }
        assert_ne!(record["cost_status"], "error", "{name}");
    }
}

#[test]
fn config_attribution_shows_in_the_record_attributes() {
    let dir = tempdir();
    let config = dir.join("attribution.json");
    std::fs::write(
        &config,
        r#"{"attribution":{"dimensions":{
            "team":{"from":["header:x-team"]},
            "feature":{"from":["tag:feature","body:metadata.feature"]},
            "user":{"from":["body:user"],"hash":true}}}}"#,
    )
    .unwrap();
    let request = dir.join("attributed-request.json");
    std::fs::write(
        &request,
        r#"{"model":"openai/gpt-4o","user":"u-1","metadata":{"feature":"chat"}}"#,
    )
    .unwrap();
    let record = record_of(&llm_cost(&[
        "price",
        "--config",
        config.to_str().unwrap(),
        "--request",
        request.to_str().unwrap(),
        "--header",
        "X-Team: search",
        &recording("openrouter-cache-all-settings-real-api-0.json"),
    ]));
    let attributes = &record["attributes"];
    assert_eq!(attributes["team"], "search", "{record}");
    assert_eq!(attributes["feature"], "chat", "{record}");
    assert_eq!(
        attributes["user"].as_str().map(str::len),
        Some(12),
        "{record}"
    );
    // Without configuration: `{}`.
    let plain = record_of(&llm_cost(&[
        "price",
        &recording("openrouter-cache-all-settings-real-api-0.json"),
    ]));
    assert_eq!(plain["attributes"], serde_json::json!({}));
}
