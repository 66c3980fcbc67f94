//! The request rewrite on arbitrary bytes: never panics; a rewritten body is a JSON object whose
//! usage flags are set, and `usage` is never added for a non-OpenRouter upstream.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use llm_cost_core::rewrite::rewrite;
use llm_cost_core::{Endpoint, Provider};
use serde_json::value::RawValue;

/// Top-level keys with their raw values (numbers are not range-checked, as in the core).
fn top(bytes: &[u8]) -> BTreeMap<String, &RawValue> {
    serde_json::from_slice(bytes).expect("a JSON object")
}

fn flag(raw: Option<&&RawValue>, key: &str) -> bool {
    raw.and_then(|r| serde_json::from_str::<BTreeMap<String, &RawValue>>(r.get()).ok())
        .is_some_and(|inner| inner.get(key).is_some_and(|v| v.get() == "true"))
}

fuzz_target!(|data: &[u8]| {
    for provider in [Provider::OpenRouter, Provider::OpenAi] {
        let Ok(result) = rewrite(data, provider, Endpoint::ChatCompletions) else {
            continue;
        };
        let Some(body) = result.body else { continue };
        let new = top(&body);
        let old = top(data);
        if provider == Provider::OpenRouter {
            assert!(flag(new.get("usage"), "include"));
        } else {
            assert_eq!(
                new.contains_key("usage"),
                old.contains_key("usage"),
                "usage never added for OpenAI"
            );
        }
        if result.facts.stream {
            assert!(flag(new.get("stream_options"), "include_usage"));
        }
    }
});
