//! Golden tests: every recording in `fixtures/recordings` through the core, as a host would run it,
//! against `fixtures/golden.json` (written by the independent reference `fixtures/make_golden.py`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use llm_cost_core::replay::{replay, End, Recorded, Replayed};
use llm_cost_core::{MeterConfig, PriceTable, Provider, RequestHead, ResponseHead};
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn golden() -> BTreeMap<String, Value> {
    let text = fs::read_to_string(root().join("fixtures/golden.json")).expect("golden.json");
    serde_json::from_str(&text).expect("golden.json is JSON")
}

fn recording(entry: &Value) -> Vec<u8> {
    let file = entry["file"].as_str().expect("file");
    fs::read(root().join("fixtures/recordings").join(file)).expect("recording")
}

fn config_for(entry: &Value) -> Rc<MeterConfig> {
    config_with(entry, b"{}")
}

/// The split tests replay each stream tens of thousands of times: they check chunking
/// invariance, so token estimation (a per-event tokenizer run when built in) is off for them.
fn config_without_estimates(entry: &Value) -> Rc<MeterConfig> {
    config_with(entry, br#"{"estimate_missing_usage": false}"#)
}

fn config_with(entry: &Value, json: &[u8]) -> Rc<MeterConfig> {
    let config = MeterConfig::from_json(json).expect("config");
    let config = match entry["pricing"].as_str().expect("pricing") {
        "bundled" => config,
        file => {
            let bytes =
                fs::read(root().join("pricing-data/snapshots").join(file)).expect("snapshot");
            config
                .with_pricing(PriceTable::from_json(&bytes).expect("snapshot loads"))
                .expect("no override")
        }
    };
    Rc::new(config)
}

/// The public API host of the recording's provider (the core's one table).
fn host_for(provider: &str) -> &'static str {
    Provider::from_name(provider)
        .and_then(Provider::default_host)
        .expect("the recording names a provider with a public host")
}

/// One recording, loaded once: its body, request and price configuration.
struct Case {
    entry: Value,
    body: Vec<u8>,
    request: Vec<u8>,
    config: Rc<MeterConfig>,
}

impl Case {
    fn load(name: &str, entry: &Value) -> Case {
        Case::load_with(name, entry, config_for)
    }

    fn for_splitting(name: &str, entry: &Value) -> Case {
        Case::load_with(name, entry, config_without_estimates)
    }

    fn load_with(name: &str, entry: &Value, config: fn(&Value) -> Rc<MeterConfig>) -> Case {
        let meta_path = root()
            .join("fixtures/recordings")
            .join(format!("{name}.meta.json"));
        let meta: Value = serde_json::from_slice(&fs::read(meta_path).unwrap()).unwrap();
        Case {
            entry: entry.clone(),
            body: recording(entry),
            request: serde_json::to_vec(&meta["request_body"]).unwrap(),
            config: config(entry),
        }
    }
}

/// Runs one recording through a `Call` as a host would, the response split at `cuts`;
/// returns the record and the bytes a client would have received.
fn run(name: &str, entry: &Value, cuts: &[usize]) -> (Value, Vec<u8>) {
    run_case(&Case::load(name, entry), cuts)
}

fn run_case(case: &Case, cuts: &[usize]) -> (Value, Vec<u8>) {
    run_case_ending(case, cuts, End::Complete)
}

fn run_case_ending(case: &Case, cuts: &[usize], end: End) -> (Value, Vec<u8>) {
    let (entry, config, request) = (&case.entry, &case.config, &case.request);
    let model_requested = entry["model_requested"].as_str().unwrap_or("m");
    let path = entry["path"]
        .as_str()
        .unwrap()
        .replace("{model}", model_requested);
    let stream = entry["stream"].as_bool().unwrap();
    let recorded = Recorded {
        request_head: RequestHead {
            method: "POST",
            host: host_for(entry["provider"].as_str().unwrap()),
            upstream_host: None,
            path: &path,
            authorization: Some("Bearer sk-test-key"),
            content_type: Some("application/json"),
            content_length: Some(request.len() as u64),
            request_id: Some("req-1"),
            attribution_headers: &[],
        },
        request: Some(request),
        response_head: ResponseHead {
            status: 200,
            content_type: Some(if stream {
                "text/event-stream"
            } else {
                "application/json"
            }),
            content_length: (!stream).then_some(case.body.len() as u64),
            content_encoding: None,
        },
        response: &case.body,
        cuts,
        start_ms: 1_000,
        end_ms: 2_000,
        end,
    };
    let Replayed {
        outcome, client, ..
    } = replay(config, &recorded);
    let record: Value = serde_json::from_str(&outcome.record_json).unwrap();
    (record, client)
}

const COMPARED: [&str; 19] = [
    "model",
    "model_requested",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
    "audio_prompt_tokens",
    "audio_completion_tokens",
    "image_prompt_tokens",
    "image_completion_tokens",
    "service_tier",
    "cost_usd",
    "cost_status",
    "error",
    "priced_as",
    "upstream_cost_usd",
    "upstream_inference_cost_usd",
];

#[test]
fn every_recording_gives_its_golden_tokens_cost_and_status() {
    let golden = golden();
    let recordings = fs::read_dir(root().join("fixtures/recordings"))
        .unwrap()
        .count();
    assert_eq!(
        golden.len() * 2,
        recordings,
        "one golden entry per recording (+ its meta)"
    );
    let mut failures = Vec::new();
    for (name, entry) in &golden {
        let (record, _) = run(name, entry, &[]);
        for field in COMPARED {
            let expected = entry.get(field).cloned().unwrap_or(Value::Null);
            if record[field] != expected {
                failures.push(format!(
                    "{name}: {field} = {} expected {expected}",
                    record[field]
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_openrouter_cost_the_formula_explains_is_reproduced_exactly() {
    let mut reproduced = 0;
    for (name, entry) in golden() {
        if entry["reproduces_upstream"] != Value::Bool(true) {
            continue;
        }
        let (record, _) = run(&name, &entry, &[]);
        // BYOK calls cost 0 at OpenRouter; the provider's charge is upstream_inference_cost.
        let billed = if record["is_byok"] == Value::Bool(true) {
            &record["upstream_inference_cost_usd"]
        } else {
            &record["upstream_cost_usd"]
        };
        assert_eq!(&record["cost_usd"], billed, "{name}");
        reproduced += 1;
    }
    // The 13 OpenRouter chat recordings whose meta says "reproduced exactly", plus the two
    // web-search calls (tokens + 1 search at the model's `web_search` price).
    assert_eq!(reproduced, 15);
}

#[test]
fn fee_recordings_show_drift_between_our_cost_and_the_upstream_cost() {
    let golden = golden();
    let (record, _) = run(
        "openrouter-file-annotation",
        &golden["openrouter-file-annotation"],
        &[],
    );
    assert_eq!(record["cost_usd"], "0.00016775");
    assert_eq!(record["upstream_cost_usd"], "0.00216775");
}

#[test]
fn stream_split_at_every_byte_boundary_gives_the_same_record_and_bytes() {
    for (name, entry) in golden() {
        if entry["stream"] != Value::Bool(true) {
            continue;
        }
        let case = Case::for_splitting(&name, &entry);
        let (whole, whole_bytes) = run_case(&case, &[]);
        for cut in 1..case.body.len() {
            let (split, split_bytes) = run_case(&case, &[cut]);
            assert_eq!(split, whole, "{name} split at {cut}");
            assert_eq!(
                split_bytes, whole_bytes,
                "{name} split at {cut}: client bytes differ"
            );
        }
    }
}

#[test]
fn stream_in_many_small_chunks_gives_the_same_record() {
    // Fixed-seed pseudo-random cuts (xorshift), so a failure reproduces.
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for (name, entry) in golden() {
        if entry["stream"] != Value::Bool(true) {
            continue;
        }
        let case = Case::for_splitting(&name, &entry);
        let (whole, whole_bytes) = run_case(&case, &[]);
        let len = case.body.len();
        for _ in 0..20 {
            let mut cuts = Vec::new();
            let mut at = 0;
            loop {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                at += 1 + (seed % 97) as usize;
                if at >= len {
                    break;
                }
                cuts.push(at);
            }
            let (split, split_bytes) = run_case(&case, &cuts);
            assert_eq!(split, whole, "{name} cuts {cuts:?}");
            assert_eq!(split_bytes, whole_bytes, "{name} cuts {cuts:?}");
        }
    }
}

#[test]
fn injected_usage_chunk_is_hidden_from_a_client_that_did_not_ask() {
    // This recording was made with include_usage; replay it for a client whose request did not
    // ask: the usage-only chunk must not reach it, and it must still be priced.
    let golden = golden();
    let body = recording(&golden["openai-run-stream-sync-streams-real-model-0"]);
    let config = Rc::new(MeterConfig::default());
    let cuts: Vec<usize> = (100..body.len()).step_by(100).collect();
    let replayed = replay(
        &config,
        &Recorded {
            cuts: &cuts,
            end_ms: 1,
            ..Recorded::post(
                "api.openai.com",
                "/v1/chat/completions",
                br#"{"model":"gpt-4o-mini","stream":true,"messages":[]}"#,
                "text/event-stream",
                &body,
            )
        },
    );
    let rewritten = replayed.rewritten_request.expect("stream_options injected");
    assert!(String::from_utf8(rewritten)
        .unwrap()
        .contains("\"include_usage\":true"));
    let (outcome, client) = (replayed.outcome, replayed.client);
    let original = String::from_utf8(body).unwrap();
    let usage_event_start = original.find("\"choices\":[],\"usage\":{").unwrap();
    let event_start = original[..usage_event_start].rfind("data: ").unwrap();
    let event_end = usage_event_start + original[usage_event_start..].find("\n\n").unwrap() + 2;
    let expected = format!(
        "{}{}{}",
        &original[..event_start],
        &original[event_end..],
        String::from_utf8(outcome.sse_comment.clone()).unwrap()
    );
    assert_eq!(String::from_utf8(client).unwrap(), expected);
    assert_eq!(outcome.record.prompt_tokens, Some(53));
    assert_eq!(outcome.record.cost_usd.as_deref(), Some("0.00001695"));
}

/// `stream_cost_comment`: by default every stream but Gemini's ends with the `: llm-cost` comment
/// (Google's SDKs raise on it); `always` / `never` override the per-format default. The record
/// is the same either way.
#[test]
fn stream_cost_comment_follows_the_wire_format_and_the_setting() {
    let golden = golden();
    let mut seen_gemini = false;
    for (name, entry) in golden
        .iter()
        .filter(|(_, e)| e["stream"].as_bool() == Some(true))
    {
        let gemini = entry["provider"].as_str() == Some("gemini");
        seen_gemini |= gemini;
        let mut records = Vec::new();
        for (json, comment) in [
            (&br#"{}"#[..], !gemini),
            (br#"{"stream_cost_comment":"always"}"#, true),
            (br#"{"stream_cost_comment":"never"}"#, false),
        ] {
            let mut case = Case::load(name, entry);
            case.config = config_with(entry, json);
            let (record, client) = run_case(&case, &[]);
            let text = String::from_utf8_lossy(&client);
            assert_eq!(
                text.contains("\n: llm-cost {") || text.starts_with(": llm-cost {"),
                comment,
                "{name} with {}",
                String::from_utf8_lossy(json)
            );
            if !comment && !gemini {
                // Nothing held back or hidden in these recordings: the client gets them verbatim.
                assert!(!text.contains(": llm-cost"), "{name}");
            }
            records.push(record);
        }
        let strip = |mut r: Value| {
            r.as_object_mut().unwrap().remove("duration_ms");
            r
        };
        let first = strip(records[0].clone());
        for r in &records[1..] {
            assert_eq!(
                strip(r.clone()),
                first,
                "{name}: the record does not change"
            );
        }
    }
    assert!(seen_gemini, "a Gemini stream recording is in golden.json");
}

/// A client that hangs up once the end marker arrived (`[DONE]`, `response.completed`,
/// `message_stop`, a Gemini `finishReason`) got the whole answer: the record is the one a normal
/// end gives, not `aborted` (openai's Python SDK closes its connection at `[DONE]`).
#[test]
fn abort_after_the_end_marker_is_a_normal_end() {
    for (name, entry) in golden()
        .iter()
        .filter(|(_, e)| e["stream"].as_bool() == Some(true))
    {
        let case = Case::load(name, entry);
        let (normal, _) = run_case(&case, &[]);
        if normal["error"].is_string() {
            continue; // recordings that end in an upstream error or cut short
        }
        let (aborted, _) = run_case_ending(&case, &[], End::Aborted);
        let strip = |mut r: Value| {
            r.as_object_mut().unwrap().remove("duration_ms");
            r
        };
        assert_eq!(strip(aborted), strip(normal), "{name}");
    }
}
