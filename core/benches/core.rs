//! Core benchmarks (`cargo bench -p llm-cost-core`), reported as ratios in `docs/PERFORMANCE.md`.
//!
//! - SSE scan + usage extraction over a long realistic stream fed in small chunks, against a bare
//!   `memchr` newline scan over the same chunks (the floor any SSE parser must pay).
//! - Pricing one record (lookup, cost, record and headers) from a finished JSON response.
//! - Request rewrite of a 100 KB body.

use std::hint::black_box;
use std::rc::Rc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use llm_cost_core::{Call, Forward, MeterConfig, RequestHead, ResponseHead};

const STREAM: &[u8] =
    include_bytes!("../../fixtures/recordings/openai-run-stream-sync-streams-real-model-0.sse");
const JSON: &[u8] =
    include_bytes!("../../fixtures/recordings/openrouter-cache-all-settings-real-api-0.json");

fn head(path: &str) -> RequestHead<'_> {
    RequestHead {
        method: "POST",
        host: "openrouter.ai",
        path,
        authorization: Some("Bearer sk-or-v1-bench"),
        content_type: Some("application/json"),
        ..RequestHead::default()
    }
}

/// A long stream: the recording's content chunks repeated, then its usage chunk and `[DONE]`.
fn long_stream() -> Vec<u8> {
    let text = std::str::from_utf8(STREAM).unwrap();
    let usage_at = text.find("data: {\"id\":\"chatcmpl-Dx0XpqH8w09uBXwq1zFGYdETjtnEl\",\"object\":\"chat.completion.chunk\",\"created\":1782955817,\"model\":\"gpt-4o-mini-2024-07-18\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_d0469e1700\",\"choices\":[],").unwrap();
    let mut out = Vec::new();
    for _ in 0..500 {
        out.extend_from_slice(&STREAM[..usage_at]);
    }
    out.extend_from_slice(&STREAM[usage_at..]);
    out
}

fn sse(c: &mut Criterion) {
    let stream = long_stream();
    let chunks: Vec<&[u8]> = stream.chunks(64).collect();
    let config = Rc::new(MeterConfig::default());
    let mut group = c.benchmark_group("sse_stream");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("memchr_newlines", |b| {
        b.iter(|| {
            let mut lines = 0usize;
            for chunk in &chunks {
                lines += memchr::memchr_iter(b'\n', black_box(chunk)).count();
            }
            lines
        })
    });
    group.bench_function("meter_scan", |b| {
        b.iter(|| {
            let mut call = Call::new(&config, head("/v1/chat/completions"), 0);
            call.on_response_head(ResponseHead {
                status: 200,
                content_type: Some("text/event-stream"),
                ..ResponseHead::default()
            });
            for chunk in &chunks {
                let forward = call.feed_stream(black_box(chunk));
                debug_assert_eq!(forward, Forward::Unchanged);
            }
            call.finish_stream(1).record.cost_micros
        })
    });
    group.finish();
}

fn price_one_record(c: &mut Criterion) {
    let config = Rc::new(MeterConfig::default());
    c.bench_function("price_json_record", |b| {
        b.iter(|| {
            let mut call = Call::new(&config, head("/api/v1/chat/completions"), 0);
            call.on_response_head(ResponseHead {
                status: 200,
                content_type: Some("application/json"),
                content_length: Some(JSON.len() as u64),
                content_encoding: None,
            });
            let outcome = call.finish_json(black_box(JSON), 1);
            (outcome.record_json.len(), outcome.headers.len())
        })
    });
}

fn rewrite_100kb(c: &mut Criterion) {
    let filler = "x".repeat(100 * 1024);
    let body = format!(
        r#"{{"model":"openai/gpt-4o","stream":true,"messages":[{{"role":"user","content":"{filler}"}}]}}"#
    );
    let config = Rc::new(MeterConfig::default());
    let mut group = c.benchmark_group("request_rewrite");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("rewrite_100kb", |b| {
        b.iter(|| {
            let mut call = Call::new(&config, head("/api/v1/chat/completions"), 0);
            call.rewrite_request(black_box(body.as_bytes()))
                .map(|b| b.len())
        })
    });
    group.finish();
}

criterion_group!(benches, sse, price_one_record, rewrite_100kb);
criterion_main!(benches);
