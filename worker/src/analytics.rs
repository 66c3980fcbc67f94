//! The Workers Analytics Engine data point of one call: which record field goes in which blob,
//! double and index (docs/WORKER.md, "Analytics Engine", has the SQL that reads them back).
//!
//! Pure code: host-tested. The Worker writes the point with the `ANALYTICS` dataset binding
//! (`edge`); `wrangler dev` cannot run Analytics Engine locally, so this layout is what the tests
//! pin.
//!
//! Doubles are `f64` because that is all Analytics Engine stores; money stays exact in the record
//! (`cost_usd`). `cost_micros` is a whole number of micro-USD, exact in an `f64` up to 2⁵³
//! (9 billion USD per call).

use llm_cost_core::CostRecord;

/// The Analytics Engine dataset binding (wrangler.toml `[[analytics_engine_datasets]]`).
pub const ANALYTICS_BINDING: &str = "ANALYTICS";

/// Blobs Analytics Engine takes per point (`blob1` … `blob20`).
pub const MAX_BLOBS: usize = 20;
/// Bytes Analytics Engine takes in the index.
pub const MAX_INDEX_BYTES: usize = 96;

/// The fixed blobs, in order (`blob1` = model, …); configured labels follow them.
pub const BLOBS: [&str; 6] = [
    "model",
    "provider",
    "cost_status",
    "status_code",
    "endpoint",
    "error",
];
/// The doubles, in order (`double1` = cost_micros, …).
pub const DOUBLES: [&str; 6] = [
    "cost_micros",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "duration_ms",
];

/// One data point, ready for `writeDataPoint`.
#[derive(Clone, Debug, PartialEq)]
pub struct DataPoint {
    /// `index1`: the record's `key_id`, or the value of the attribute `index_by` names.
    pub index: String,
    /// [`BLOBS`], then one blob per configured label (its attribute value, empty when none).
    pub blobs: Vec<String>,
    /// [`DOUBLES`] (a missing count is 0).
    pub doubles: Vec<f64>,
}

/// The point of `record`: `labels` are the attribution dimensions to carry as blobs
/// (`attribution.metric_labels`, at most [`MAX_BLOBS`] − 6 of them), `index_by` is `key_id` or an
/// attribution dimension (the index Analytics Engine samples by: one key or team per index).
pub fn data_point(record: &CostRecord, labels: &[String], index_by: &str) -> DataPoint {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut blobs = vec![
        text(&record.model),
        record.provider.to_owned(),
        record.cost_status.as_str().to_owned(),
        record
            .status_code
            .map(|s| s.to_string())
            .unwrap_or_default(),
        record.endpoint.to_owned(),
        record
            .error
            .map(|e| e.as_str().to_owned())
            .unwrap_or_default(),
    ];
    for label in labels.iter().take(MAX_BLOBS - BLOBS.len()) {
        blobs.push(record.attributes.get(label).cloned().unwrap_or_default());
    }
    let index = match index_by {
        "key_id" => text(&record.key_id),
        dimension => record
            .attributes
            .get(dimension)
            .cloned()
            .unwrap_or_default(),
    };
    let count = |n: Option<u64>| n.unwrap_or(0) as f64;
    DataPoint {
        index: truncate(index, MAX_INDEX_BYTES),
        blobs,
        doubles: vec![
            count(record.cost_micros),
            count(record.prompt_tokens),
            count(record.completion_tokens),
            count(record.cached_tokens),
            count(record.reasoning_tokens),
            record.duration_ms as f64,
        ],
    }
}

/// `text` cut to at most `max` bytes, at a character boundary.
fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_cost_core::{Call, MeterConfig, RequestHead, ResponseHead};
    use std::rc::Rc;

    fn record(config: &str, headers: &[(String, String)]) -> CostRecord {
        let config = Rc::new(MeterConfig::from_json(config.as_bytes()).expect("config"));
        let mut call = Call::new(
            &config,
            RequestHead {
                method: "POST",
                host: "llm-cost.example.workers.dev",
                upstream_host: Some("openrouter.ai"),
                path: "/api/v1/chat/completions",
                authorization: Some("Bearer sk-or-test-analytics"),
                content_type: Some("application/json"),
                attribution_headers: headers,
                ..RequestHead::default()
            },
            1_000,
        );
        call.observe_request(br#"{"model":"openai/gpt-4o","messages":[]}"#);
        call.on_response_head(ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            ..ResponseHead::default()
        });
        call.finish_json(
            br#"{"model":"openai/gpt-4o","choices":[{}],"usage":{"prompt_tokens":1000,"completion_tokens":500,
                "prompt_tokens_details":{"cached_tokens":200}}}"#,
            1_250,
        )
        .record
    }

    const ATTRIBUTION: &str = r#"{"attribution": {"dimensions": {"team": {"from": ["header:x-team"]},
        "feature": {"from": ["header:x-feature"]}}, "metric_labels": ["team", "feature"]}}"#;

    #[test]
    fn a_priced_call_fills_the_documented_slots() {
        let headers = [("x-team".to_owned(), "search".to_owned())];
        let r = record(ATTRIBUTION, &headers);
        let labels = ["team".to_owned(), "feature".to_owned()];
        let point = data_point(&r, &labels, "key_id");
        assert_eq!(point.index, r.key_id.clone().unwrap());
        assert_eq!(
            point.blobs,
            [
                "openai/gpt-4o",
                "openrouter",
                "exact",
                "200",
                "chat_completions",
                "",
                "search",
                ""
            ]
        );
        assert_eq!(point.doubles[0], r.cost_micros.unwrap() as f64);
        assert!(point.doubles[0] > 0.0);
        assert_eq!(&point.doubles[1..], [1000.0, 500.0, 200.0, 0.0, 250.0]);
        assert_eq!(point.blobs.len(), BLOBS.len() + labels.len());
        assert_eq!(point.doubles.len(), DOUBLES.len());
        // Indexed by team instead: one index per team.
        assert_eq!(data_point(&r, &labels, "team").index, "search");
        assert_eq!(data_point(&r, &labels, "feature").index, "");
    }

    #[test]
    fn bounds_hold_for_many_labels_and_long_values() {
        let r = record(ATTRIBUTION, &[]);
        let labels: Vec<String> = (0..30).map(|i| format!("l{i}")).collect();
        assert_eq!(data_point(&r, &labels, "key_id").blobs.len(), MAX_BLOBS);
        // Attribute values are at most 64 bytes already; the index bound is kept anyway.
        let cut = truncate("é".repeat(60), MAX_INDEX_BYTES);
        assert_eq!(cut, "é".repeat(48));
        assert_eq!(truncate("ab".into(), 1), "a");
    }
}
