//! Token estimates (feature `estimate`): a stream cut before its usage still yields a record,
//! `estimated`, close to the true counts the full recording reports.
#![cfg(feature = "estimate")]

use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use llm_cost_core::{Call, MeterConfig, RequestHead, ResponseHead};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Runs `body` as a stream for the recording's request; returns the record.
fn record(entry: &Value, request: &[u8], body: &[u8]) -> Value {
    let config = Rc::new(MeterConfig::default());
    let model = entry["model_requested"].as_str().unwrap_or("m");
    let path = entry["path"].as_str().unwrap().replace("{model}", model);
    let host = match entry["provider"].as_str().unwrap() {
        "openrouter" => "openrouter.ai",
        "openai" => "api.openai.com",
        "anthropic" => "api.anthropic.com",
        _ => "generativelanguage.googleapis.com",
    };
    let head = RequestHead {
        method: "POST",
        host,
        path: &path,
        content_type: Some("application/json"),
        ..RequestHead::default()
    };
    let mut call = Call::new(&config, head, 0);
    let _ = call.rewrite_request(request);
    call.on_response_head(ResponseHead {
        status: 200,
        content_type: Some("text/event-stream"),
        ..ResponseHead::default()
    });
    let _ = call.feed_stream(body);
    serde_json::from_str(&call.finish_stream(1).record_json).unwrap()
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

fn cases() -> Vec<(String, Value, Vec<u8>, String)> {
    let golden: Value =
        serde_json::from_str(&fs::read_to_string(root().join("fixtures/golden.json")).unwrap())
            .unwrap();
    let mut out = Vec::new();
    for (name, entry) in golden.as_object().unwrap() {
        if entry["stream"] != true || entry["prompt_tokens"].is_null() {
            continue;
        }
        let dir = root().join("fixtures/recordings");
        let body = fs::read_to_string(dir.join(entry["file"].as_str().unwrap())).unwrap();
        let meta: Value = serde_json::from_str(
            &fs::read_to_string(dir.join(format!("{name}.meta.json"))).unwrap(),
        )
        .unwrap();
        let request = serde_json::to_vec(&meta["request_body"]).unwrap();
        let cut = cut_before_usage(&body)
            .expect("every stream has usage")
            .to_owned();
        out.push((name.clone(), entry.clone(), request, cut));
    }
    out
}

#[test]
fn every_stream_cut_before_its_usage_still_gets_an_honest_record() {
    let cases = cases();
    assert_eq!(cases.len(), 16);
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

#[test]
fn plain_text_call_is_estimated_within_ten_percent() {
    // The one streamed recording whose tokens are all visible text on an OpenAI tokenizer: no tool
    // definitions, no hidden reasoning, no web results (see docs: what an estimate cannot see).
    let (name, entry, request, cut) = cases()
        .into_iter()
        .find(|c| c.0 == "openrouter-stream-with-reasoning")
        .unwrap();
    let r = record(&entry, &request, cut.as_bytes());
    let estimated = r["prompt_tokens"].as_u64().unwrap() + r["completion_tokens"].as_u64().unwrap();
    let truth =
        entry["prompt_tokens"].as_u64().unwrap() + entry["completion_tokens"].as_u64().unwrap();
    let off = (estimated as f64 - truth as f64).abs() / truth as f64; // a ratio of counts, not money
    assert!(
        off <= 0.10,
        "{name}: estimated {estimated} vs true {truth} tokens"
    );
    assert_eq!(r["cost_status"], "estimated");
}
