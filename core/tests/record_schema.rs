//! The cost record's field names and `error` codes are a public API: the README's schema table
//! and the serializer must list the same fields, in the same order, and the README's list of
//! `error` codes must be the codes of [`ErrorCode`].

use std::rc::Rc;

use llm_cost_core::{CostRecord, CostStatus, ErrorCode, MeterConfig};

mod common;

fn readme_fields() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("## The cost record")
        .nth(1)
        .expect("README has a cost record section");
    table
        .lines()
        .skip_while(|line| !line.starts_with("| field |"))
        .skip(2)
        .take_while(|line| line.starts_with("| `"))
        .map(|line| line.split('`').nth(1).unwrap_or_default().to_owned())
        .collect()
}

fn serialized_fields() -> Vec<String> {
    let config = Rc::new(MeterConfig::default());
    let mut call = common::openrouter_json_call(&config, 0);
    let outcome = call.finish_json(
        br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
        1,
    );
    // serde_json keeps struct field order in the text; read the keys in order.
    let json = outcome.record_json;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut keys: Vec<(usize, String)> = value
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (json.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn readme_schema_table_and_serializer_agree() {
    assert_eq!(readme_fields(), serialized_fields());
}

/// Every header the core can emit (all optional fields set), lower-case, with the default prefix.
fn emitted_headers() -> Vec<String> {
    let record = CostRecord {
        ts: String::new(),
        request_id: None,
        host: String::new(),
        provider: "openai",
        endpoint: "chat_completions",
        model_requested: Some("m".into()),
        model: Some("m".into()),
        stream: false,
        status_code: Some(200),
        prompt_tokens: Some(1),
        completion_tokens: Some(1),
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        cache_write_1h_tokens: None,
        audio_prompt_tokens: None,
        audio_completion_tokens: None,
        image_prompt_tokens: None,
        image_completion_tokens: None,
        audio_duration_ms: None,
        input_characters: None,
        service_tier: Some("standard"),
        cost_usd: Some("0.000001".into()),
        cost_micros: Some(1),
        upstream_cost_usd: Some("0.000001".into()),
        cost_status: CostStatus::Exact,
        error: Some(ErrorCode::CostOverflow),
        pricing_version: "v".into(),
        breakdown: None,
        key_id: None,
        priced_as: None,
        upstream_inference_cost_usd: None,
        is_byok: None,
        duration_ms: 0,
        oversize_events: 0,
        adjustment_percent: None,
        attributes: Default::default(),
        budget_would_exceed: Vec::new(),
        budget_thresholds: Vec::new(),
        budget_error: None,
    };
    record
        .headers("x-llm-")
        .into_iter()
        .map(|(name, _)| name)
        .collect()
}

/// The request header that carries the tenant key id (`key_id_header: true`).
fn key_id_request_header() -> String {
    let config = MeterConfig::from_json(br#"{"key_id_header":true}"#).unwrap();
    config
        .key_id_header
        .expect("key_id_header: true names a header")
}

/// `x-llm-…` names in `text`, lower-case.
fn named_headers(text: &str) -> Vec<String> {
    let lower = text.to_ascii_lowercase();
    let mut names = Vec::new();
    for (start, _) in lower.match_indices("x-llm-") {
        let name: String = lower[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        let name = name.trim_end_matches('-');
        if name != "x-llm" {
            // The bare prefix (`x-llm-`) is not a header name.
            names.push(name.to_owned());
        }
    }
    names
}

#[test]
fn readme_header_table_and_emitted_headers_agree() {
    let readme = include_str!("../../README.md");
    let table: Vec<String> = readme
        .lines()
        .skip_while(|line| !line.starts_with("| header |"))
        .skip(2)
        .take_while(|line| line.starts_with("| `"))
        .map(|line| {
            line.split('`')
                .nth(1)
                .unwrap_or_default()
                .to_ascii_lowercase()
        })
        .collect();
    assert_eq!(table, emitted_headers());
}

/// Docs, shipped configs and the Worker's settings name only headers the code knows (this caught
/// `x-llm-cost-model` in worker/wrangler.toml, a header that never existed).
#[test]
fn documented_header_names_exist() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("README.md"), root.join("worker/wrangler.toml")];
    for dir in ["docs", "envoy"] {
        let mut entries: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("md" | "yaml")))
            .collect();
        entries.sort();
        files.extend(entries);
    }
    let mut known = emitted_headers();
    known.push(key_id_request_header());
    // The request header the attribution `tag:` sources read by default.
    known.push(llm_cost_core::attribution::Attribution::default().tags_header);
    let mut unknown = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for name in named_headers(&text) {
            if !known.contains(&name) {
                unknown.push(format!("{}: {name}", file.display()));
            }
        }
    }
    assert!(unknown.is_empty(), "unknown header names: {unknown:#?}");
}

/// The README's `pricing_version` row names the suffix the code writes for overrides.
#[test]
fn readme_names_the_pricing_version_suffix_the_code_writes() {
    let config = MeterConfig::from_json(br#"{"adjustments":[{"percent":"10"}]}"#).unwrap();
    let version = config.pricing_version();
    let (_, suffix) = version
        .rsplit_once('+')
        .expect("a suffix after the content hash");
    let (kind, _) = suffix.split_once('-').expect("`<kind>-<hash>`");
    let row = include_str!("../../README.md")
        .lines()
        .find(|line| line.starts_with("| `pricing_version` |"))
        .expect("README documents pricing_version");
    assert!(
        row.contains(&format!("`+{kind}-<hash>`")),
        "{row} vs {version}"
    );
}

/// The backticked names of the README paragraph that starts with "`error` codes:".
fn readme_error_codes() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let paragraph = readme
        .split("\n\n")
        .find(|p| p.starts_with("`error` codes:"))
        .expect("README has an `error` codes paragraph");
    let mut codes: Vec<String> = paragraph
        .split('`')
        .skip(3) // "", "error", " codes: "
        .step_by(2)
        .filter(|name| {
            name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .map(str::to_owned)
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

#[test]
fn readme_error_codes_are_the_error_code_enum() {
    let mut codes: Vec<String> = ErrorCode::ALL
        .iter()
        .map(|c| c.as_str().to_owned())
        .collect();
    codes.sort();
    assert_eq!(readme_error_codes(), codes);
}

#[test]
fn every_record_field_is_a_reserved_attribution_name() {
    // A dimension named like a record field would shadow it in reports: the config refuses it.
    for field in serialized_fields() {
        assert!(
            llm_cost_core::attribution::RESERVED_NAMES.contains(&field.as_str()),
            "record field `{field}` missing from attribution::RESERVED_NAMES"
        );
    }
}

#[test]
fn host_is_what_the_client_called_and_the_upstream_host_picks_the_provider() {
    // The Worker: the client called the Worker's host; the upstream is OpenRouter.
    let config = Rc::new(MeterConfig::default());
    let head = llm_cost_core::RequestHead {
        method: "POST",
        host: "llm-cost.acme.workers.dev",
        upstream_host: Some("openrouter.ai"),
        path: "/api/v1/chat/completions",
        request_id: Some("8f1c2a3b4d5e6f70-LHR"),
        ..llm_cost_core::RequestHead::default()
    };
    let mut call = llm_cost_core::Call::new(&config, head, 1_000);
    call.on_response_head(llm_cost_core::ResponseHead {
        status: 200,
        content_type: Some("application/json"),
        ..llm_cost_core::ResponseHead::default()
    });
    let outcome = call.finish_json(
        br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
        2_000,
    );
    let record: serde_json::Value = serde_json::from_str(&outcome.record_json).unwrap();
    assert_eq!(record["host"], "llm-cost.acme.workers.dev");
    assert_eq!(record["provider"], "openrouter");
    assert_eq!(record["request_id"], "8f1c2a3b4d5e6f70-LHR");
}
