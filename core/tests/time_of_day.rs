//! Time-of-day prices: a call is priced at the window its request started in, by the host's clock.

use std::rc::Rc;

use llm_cost_core::MeterConfig;
use serde_json::Value;

mod common;

/// 2026-11-25T00:00:00Z in Unix milliseconds.
const MIDNIGHT_MS: u64 = 1_795_564_800_000;

/// The record of a DeepSeek V4 Pro call (1M prompt + 1M completion tokens) that starts
/// `start_minute` minutes after midnight UTC and ends `duration_ms` later.
fn record(start_minute: u64, duration_ms: u64) -> Value {
    let config = Rc::new(MeterConfig::default());
    let start = MIDNIGHT_MS + start_minute * 60_000;
    let mut call = common::openrouter_json_call(&config, start);
    let body = br#"{"model":"deepseek/deepseek-v4-pro","usage":{"prompt_tokens":1000000,"completion_tokens":1000000}}"#;
    serde_json::from_str(&call.finish_json(body, start + duration_ms).record_json).unwrap()
}

#[test]
fn the_bundled_windows_price_by_the_minute_the_request_started() {
    // Bundled (OpenRouter 2026-08-19): 0.66 / 1.98 USD per M tokens; doubled 01:00–04:00 and
    // 06:00–10:00 UTC.
    assert!(record(0, 0)["ts"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-25T00:00"));
    let cost = |minute| {
        record(minute, 1_000)["cost_usd"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(cost(59), "2.64"); // 00:59
    assert_eq!(cost(60), "5.28"); // 01:00
    assert_eq!(cost(239), "5.28"); // 03:59
    assert_eq!(cost(240), "2.64"); // 04:00
    assert_eq!(cost(6 * 60), "5.28"); // 06:00
    assert_eq!(cost(10 * 60), "2.64"); // 10:00
    assert_eq!(cost(23 * 60 + 59), "2.64"); // 23:59
                                            // Started at 00:59, finished at 01:01: the start decides.
    assert_eq!(record(59, 120_000)["cost_usd"], "2.64");
}
