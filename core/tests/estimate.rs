//! Token estimates (feature `estimate`): a stream cut before its usage still yields a record,
//! `estimated`, close to the true counts the full recording reports.
#![cfg(feature = "estimate")]

use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use llm_cost_core::replay::{replay, Recorded};
use llm_cost_core::usage::Format;
use llm_cost_core::{estimate, Endpoint, MeterConfig, Provider};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `body` as a stream for the recording's request; returns the record.
fn record(entry: &Value, request: &[u8], body: &[u8]) -> Value {
    let config = Rc::new(MeterConfig::default());
    let model = entry["model_requested"].as_str().unwrap_or("m");
    let path = entry["path"].as_str().unwrap().replace("{model}", model);
    let host = Provider::from_name(entry["provider"].as_str().unwrap())
        .and_then(Provider::default_host)
        .expect("the recording names a provider with a public host");
    let recorded = Recorded {
        end_ms: 1,
        ..Recorded::post(host, &path, request, "text/event-stream", body)
    };
    serde_json::from_str(&replay(&config, &recorded).outcome.record_json).unwrap()
}

/// The stream cut where a client abort or a dropped connection would leave it: before the first
/// event with usage (for Anthropic, before the `message_delta` carrying the final counts).
fn cut_before_usage(body: &str) -> Option<&str> {
    let at = match body.find("\"type\":\"message_delta\"") {
        Some(at) => at,
        None => ["\"usage\":{", "\"usage\": {", "\"usageMetadata\""]
            .iter()
            .filter_map(|needle| body.find(needle))
            .min()?,
    };
    let start = body[..at].rfind("data:")?;
    // Keep an `event:` line with its `data:` line.
    let start = match body[..start].rfind("event:") {
        Some(e) if !body[e..start].trim_end().contains('\n') => e,
        _ => start,
    };
    Some(&body[..start])
}

/// Within 10 %, in integers: |estimated − truth| × 10 ≤ truth.
fn within_ten_percent(estimated: u64, truth: u64) -> bool {
    estimated.abs_diff(truth) * 10 <= truth
}

fn golden() -> Value {
    serde_json::from_str(&fs::read_to_string(root().join("fixtures/golden.json")).unwrap()).unwrap()
}

/// A recording's response body.
fn body_of(entry: &Value) -> String {
    fs::read_to_string(
        root()
            .join("fixtures/recordings")
            .join(entry["file"].as_str().unwrap()),
    )
    .unwrap()
}

/// A recording's request body, as the client sent it.
fn request_of(name: &str) -> Vec<u8> {
    let meta: Value = serde_json::from_str(
        &fs::read_to_string(root().join(format!("fixtures/recordings/{name}.meta.json"))).unwrap(),
    )
    .unwrap();
    serde_json::to_vec(&meta["request_body"]).unwrap()
}

fn cases() -> Vec<(String, Value, Vec<u8>, String)> {
    let mut out = Vec::new();
    for (name, entry) in golden().as_object().unwrap() {
        if entry["stream"] != true || entry["prompt_tokens"].is_null() {
            continue;
        }
        let body = body_of(entry);
        let cut = cut_before_usage(&body)
            .expect("every stream has usage")
            .to_owned();
        out.push((name.clone(), entry.clone(), request_of(name), cut));
    }
    out
}

#[test]
fn every_stream_cut_before_its_usage_still_gets_an_honest_record() {
    let cases = cases();
    assert_eq!(cases.len(), 17);
    for (name, entry, request, cut) in cases {
        let r = record(&entry, &request, cut.as_bytes());
        assert_eq!(r["error"], "truncated_stream", "{name}");
        let status = r["cost_status"].as_str().unwrap();
        assert!(
            status == "estimated" || (status == "unpriced" && entry["cost_status"] == "unpriced"),
            "{name}: {status}"
        );
        assert!(
            r["prompt_tokens"].as_u64().unwrap() > 0,
            "{name}: a prompt estimate"
        );
        if status == "estimated" {
            assert!(
                r["cost_usd"].is_string(),
                "{name}: estimated records are priced"
            );
        }
    }
}

/// Why an estimate from what the gateway sees cannot come within 10 % of a recording's truth.
const OUT_OF_SIGHT: [(&str, &str); 12] = [
    (
        "anthropic-advisor-tool-stream",
        "the server-side advisor adds input mid-stream",
    ),
    (
        "anthropic-request-stream-fallback-for-high-max-tokens",
        "a one-token answer Claude counts as 5",
    ),
    (
        "gemini-google-model-web-fetch-tool-stream",
        "page fetched server-side; usage on every chunk",
    ),
    (
        "gemini-native-output-with-function-tools-stream-0",
        "hidden thoughts; usage on every chunk",
    ),
    (
        "openai-responses-openai-include-raw-annotations-streaming-1",
        "web search results",
    ),
    (
        "openai-responses-stream-0",
        "~200 prompt tokens the Responses API adds",
    ),
    (
        "openai-responses-streaming-usage-flex",
        "encrypted reasoning (448 of 469 output tokens)",
    ),
    (
        "openrouter-advisor-tool-stream",
        "the server-side advisor's transcript",
    ),
    (
        "openrouter-cache-streaming-e2e",
        "Claude's tokenizer (o200k counts 217 of 254)",
    ),
    (
        "openrouter-stream-error",
        "MiniMax's tokenizer and system prompt",
    ),
    (
        "openrouter-web-search-annotations-stream",
        "web search results",
    ),
    (
        "openrouter-web-search-tool-usage-stream",
        "web search results",
    ),
];

#[test]
fn streams_whose_tokens_are_in_sight_are_estimated_within_ten_percent() {
    // In sight: plain messages, function tools (rendered as OpenAI does), tool calls, harmony's
    // fixed system message and output channels (gpt-oss), and the prompt count Anthropic reports
    // at the start of a stream. The rest is listed above with the reason; each must still miss,
    // so the table in the README stays what the code does.
    let mut within = Vec::new();
    for (name, entry, request, cut) in cases() {
        let r = record(&entry, &request, cut.as_bytes());
        let estimated =
            r["prompt_tokens"].as_u64().unwrap() + r["completion_tokens"].as_u64().unwrap();
        let truth =
            entry["prompt_tokens"].as_u64().unwrap() + entry["completion_tokens"].as_u64().unwrap();
        let close = within_ten_percent(estimated, truth);
        let reason = OUT_OF_SIGHT
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, why)| why);
        match reason {
            None => assert!(
                close,
                "{name}: estimated {estimated} vs true {truth} tokens"
            ),
            Some(why) => assert!(
                !close,
                "{name} is now within 10 % ({estimated} vs {truth}): drop \"{why}\" from the table"
            ),
        }
        if close {
            within.push(name);
        }
    }
    within.sort();
    assert_eq!(
        within,
        [
            "anthropic-compaction-usage-with-cache-streaming",
            "openai-multiple-agents-1",
            "openai-run-stream-sync-streams-real-model-0",
            "openrouter-responses-raw-cot-stream-openrouter",
            "openrouter-stream-with-reasoning",
        ]
    );
}

#[test]
fn reasoning_streamed_as_text_is_estimated_as_reasoning() {
    for (name, entry, request, cut) in cases() {
        let r = record(&entry, &request, cut.as_bytes());
        let reasoning = r["reasoning_tokens"].as_u64().unwrap_or(0);
        assert!(
            reasoning <= r["completion_tokens"].as_u64().unwrap(),
            "{name}: reasoning ⊂ completion"
        );
        // gpt-oss and MiniMax stream their reasoning text (OpenRouter `reasoning` deltas,
        // Responses `reasoning_text` deltas); o3's is hidden, and so is nothing else's here.
        let streams_reasoning = matches!(
            name.as_str(),
            "openrouter-responses-raw-cot-stream-openrouter" | "openrouter-stream-error"
        );
        assert_eq!(reasoning > 0, streams_reasoning, "{name}: {reasoning}");
    }
}

/// Gemini repeats `usageMetadata` on every chunk: a stream cut after its first chunk is not
/// without usage but a lower bound, and the prompt count in it is already exact.
#[test]
fn gemini_streams_cut_after_a_chunk_keep_its_usage_as_a_lower_bound() {
    let mut seen = 0;
    for (name, entry, request, _) in cases() {
        if entry["provider"] != "gemini" {
            continue;
        }
        seen += 1;
        let body = body_of(&entry);
        let second = body.match_indices("data:").nth(1).expect("two chunks").0;
        let r = record(&entry, &request, &body.as_bytes()[..second]);
        assert_eq!(r["cost_status"], "estimated", "{name}");
        assert_eq!(r["error"], "truncated_stream", "{name}");
        assert_eq!(r["prompt_tokens"], entry["prompt_tokens"], "{name}");
        let completion = r["completion_tokens"].as_u64().unwrap();
        let truth = entry["completion_tokens"].as_u64().unwrap();
        assert!(
            completion > 0 && completion <= truth,
            "{name}: {completion}"
        );
        let total = r["prompt_tokens"].as_u64().unwrap() + completion;
        let true_total = entry["prompt_tokens"].as_u64().unwrap() + truth;
        assert!(
            within_ten_percent(total, true_total),
            "{name}: {total} vs {true_total}"
        );
    }
    assert_eq!(seen, 2);
}

/// The prompt estimate does not depend on how the answer came back: the JSON recordings test it
/// on more requests. Those whose whole prompt is text the gateway sees (no images, files, server
/// tools, provider presets, Claude or other private tokenizers) come within 10 %.
#[test]
fn prompt_estimates_of_plain_text_json_recordings_are_within_ten_percent() {
    let golden = golden();
    let in_sight = [
        "gemini-google-optional-fields-native-output-1",
        "openai-responses-reasoning-model-with-temperature",
        "openrouter-cache-instructions-gemini-real-api-1",
        "openrouter-cache-point-gemini-e2e",
        "openrouter-responses-openrouter-responses-prompt-cache-e2e-0",
        "openrouter-responses-openrouter-responses-prompt-cache-e2e-1",
    ];
    for name in in_sight {
        let entry = &golden[name];
        assert_eq!(entry["stream"], false, "{name}");
        let endpoint = Endpoint::of_request("POST", entry["path"].as_str().unwrap());
        let format = Format::of(endpoint).unwrap();
        let request = request_of(name);
        let estimated = estimate::prompt_tokens(format, &request).unwrap();
        let truth = entry["prompt_tokens"].as_u64().unwrap();
        assert!(
            within_ten_percent(estimated, truth),
            "{name}: estimated {estimated} vs true {truth} prompt tokens"
        );
    }
}
