//! Attribution through a whole call: headers from the host, the body the call already reads,
//! `attributes` on the record.

use std::rc::Rc;

use llm_cost_core::{Call, MeterConfig, RequestHead, ResponseHead};

const CONFIG: &str = r#"{"attribution": {
    "tags_header": "x-llm-tags",
    "dimensions": {
      "team":    {"from": ["header:x-team"]},
      "feature": {"from": ["tag:feature", "body:metadata.feature"]},
      "user":    {"from": ["body:user", "body:safety_identifier", "body:metadata.user_id", "header:x-user-id"], "hash": true}
    },
    "metric_labels": ["team"],
    "max_label_values": 50
}}"#;

fn run_call(
    config: &Rc<MeterConfig>,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (serde_json::Value, u32) {
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    let head = RequestHead {
        method: "POST",
        host: "api.openai.com",
        path: "/v1/chat/completions",
        content_type: Some("application/json"),
        attribution_headers: &headers,
        ..RequestHead::default()
    };
    let mut call = Call::new(config, head, 0);
    let _ = call.rewrite_request(body);
    call.on_response_head(ResponseHead {
        status: 200,
        content_type: Some("application/json"),
        ..ResponseHead::default()
    });
    let outcome = call.finish_json(
        br#"{"model":"gpt-4o-mini","usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
        1,
    );
    (
        serde_json::from_str(&outcome.record_json).unwrap(),
        outcome.attributes_dropped,
    )
}

#[test]
fn headers_tags_and_body_land_in_the_record_attributes() {
    let config = Rc::new(MeterConfig::from_json(CONFIG.as_bytes()).unwrap());
    let (record, dropped) = run_call(
        &config,
        &[
            ("x-team", "search"),
            ("x-llm-tags", "feature=summarize,env=prod"),
        ],
        br#"{"model":"gpt-4o-mini","messages":[],"user":"end-user-7"}"#,
    );
    let attributes = &record["attributes"];
    assert_eq!(attributes["team"], "search");
    assert_eq!(attributes["feature"], "summarize");
    let user = attributes["user"].as_str().unwrap();
    assert_eq!(user.len(), 12, "{record}");
    assert!(!record.to_string().contains("end-user-7"), "{record}");
    assert_eq!(dropped, 0);
    assert_eq!(record["cost_status"], "exact");
}

#[test]
fn no_configuration_or_no_values_gives_an_empty_object_and_a_bad_value_is_counted() {
    let plain = Rc::new(MeterConfig::default());
    let (record, _) = run_call(
        &plain,
        &[("x-team", "search")],
        br#"{"model":"gpt-4o-mini"}"#,
    );
    assert_eq!(record["attributes"], serde_json::json!({}));
    let config = Rc::new(MeterConfig::from_json(CONFIG.as_bytes()).unwrap());
    let (record, dropped) = run_call(&config, &[("x-team", "a team")], b"not json");
    assert_eq!(record["attributes"], serde_json::json!({}));
    assert_eq!(dropped, 1);
}

#[test]
fn a_dimension_named_like_a_record_field_is_refused_with_its_field() {
    let err = MeterConfig::from_json(
        br#"{"attribution":{"dimensions":{"provider":{"from":["header:x-p"]}}}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("field `attribution.dimensions.provider`") && err.contains("built-in"),
        "{err}"
    );
    let err = MeterConfig::from_json(br#"{"attribution":{"dimension":{}}}"#)
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `dimension`"), "{err}");
}
