//! Callgrind driver for `scripts/bench-core`: the core's work for metered calls, N times over.
//!
//! `llm-cost-bench-core json N` meters N JSON chat completions the way the proxy-wasm filter does
//! (`Call::new` with the API key, `key_id`, the request body plan and rewrite, the response head,
//! `finish_json` with the record and headers, the attribute JSON). `llm-cost-bench-core sse N`
//! meters one stream of N small content events fed one event per `feed_stream` call, then its
//! finish and usage events. The script runs each at two values of N and divides the difference
//! in instructions by the difference in N: set-up (config, fixtures) and the per-stream costs
//! cancel out, leaving instructions per call and per chunk. Prints a checksum so that nothing is
//! optimised away. Not shipped; no I/O beyond argv and stdout.

use std::hint::black_box;
use std::process::ExitCode;
use std::rc::Rc;

use llm_cost_core::{Call, MeterConfig, RequestHead, ResponseHead};

/// The OpenRouter JSON answer the Envoy bench serves (`tests/envoy/bench.py`).
const JSON_RESPONSE: &[u8] =
    include_bytes!("../../../fixtures/recordings/openrouter-cache-all-settings-real-api-0.json");
const JSON_META: &str =
    include_str!("../../../fixtures/recordings/openrouter-cache-all-settings-real-api-0.meta.json");
/// The OpenRouter stream whose first content event the SSE run repeats.
const SSE_RESPONSE: &str =
    include_str!("../../../fixtures/recordings/openrouter-cache-streaming-e2e.sse");
const SSE_META: &str =
    include_str!("../../../fixtures/recordings/openrouter-cache-streaming-e2e.meta.json");

const PATH: &str = "/api/v1/chat/completions";

fn head(content_length: usize) -> RequestHead<'static> {
    RequestHead {
        method: "POST",
        host: "openrouter.ai",
        path: PATH,
        authorization: Some("Bearer sk-or-v1-bench"),
        content_type: Some("application/json"),
        content_length: Some(content_length as u64),
        ..RequestHead::default()
    }
}

/// The recorded request body (`request_body` of the fixture's `.meta.json`), serialised.
fn request_body(meta: &str) -> Result<Vec<u8>, String> {
    let meta: serde_json::Value = serde_json::from_str(meta).map_err(|e| e.to_string())?;
    let body = meta
        .get("request_body")
        .ok_or("meta.json without request_body")?;
    serde_json::to_vec(body).map_err(|e| e.to_string())
}

/// One metered JSON call, as `plugin/src/filter.rs` drives the core. Returns a checksum.
fn json_call(config: &Rc<MeterConfig>, request: &[u8]) -> usize {
    let mut call = Call::new(config, head(request.len()), 1);
    let mut sum = call.key_id().map_or(0, str::len);
    black_box(call.request_body_plan());
    sum += call
        .rewrite_request(black_box(request))
        .map_or(0, |b| b.len());
    call.on_response_head(ResponseHead {
        status: 200,
        content_type: Some("application/json"),
        content_length: Some(JSON_RESPONSE.len() as u64),
        content_encoding: None,
    });
    let outcome = call.finish_json(black_box(JSON_RESPONSE), 2);
    sum += outcome.record_json.len() + outcome.headers.len();
    sum + outcome.record.attributes_json().len()
}

/// One stream of `chunks` content events, each fed as its own chunk. Returns a checksum.
fn sse_call(config: &Rc<MeterConfig>, request: &[u8], chunks: usize) -> Result<usize, String> {
    let events: Vec<&str> = SSE_RESPONSE.split_inclusive("\n\n").collect();
    let first = events
        .iter()
        .position(|e| e.starts_with("data: {"))
        .ok_or("stream fixture without a data event")?;
    let mut call = Call::new(config, head(request.len()), 1);
    let mut sum = call.rewrite_request(request).map_or(0, |b| b.len());
    call.on_response_head(ResponseHead {
        status: 200,
        content_type: Some("text/event-stream"),
        ..ResponseHead::default()
    });
    for event in &events[..first] {
        black_box(call.feed_stream(event.as_bytes()));
    }
    for _ in 0..chunks {
        black_box(call.feed_stream(black_box(events[first].as_bytes())));
    }
    for event in &events[first + 1..] {
        black_box(call.feed_stream(event.as_bytes()));
    }
    let outcome = call.finish_stream(2);
    sum += outcome.record_json.len();
    Ok(sum + outcome.record.cost_micros.unwrap_or(0) as usize)
}

fn run(args: &[String]) -> Result<usize, String> {
    let usage = "usage: llm-cost-bench-core json|sse N";
    let [mode, n] = args else {
        return Err(usage.into());
    };
    let n: usize = n.parse().map_err(|_| usage.to_string())?;
    let config = Rc::new(MeterConfig::default());
    match mode.as_str() {
        "json" => {
            let request = request_body(JSON_META)?;
            Ok((0..n).map(|_| json_call(&config, &request)).sum())
        }
        "sse" => sse_call(&config, &request_body(SSE_META)?, n),
        _ => Err(usage.into()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(sum) => {
            println!("checksum {sum}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("llm-cost-bench-core: {e}");
            ExitCode::from(2)
        }
    }
}
