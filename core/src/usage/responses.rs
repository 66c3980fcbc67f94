//! OpenAI Responses API (`/v1/responses`, also via OpenRouter): `usage` on the body, or on the
//! `response` of the `response.completed` / `response.incomplete` / `response.failed` stream
//! events. `input_tokens_details.{cached_tokens, cache_write_tokens}` ⊂ input,
//! `output_tokens_details.reasoning_tokens` ⊂ output; the response's `service_tier` served it. Each `web_search_call` item of the output is
//! one web search, priced at the `web_search` price.

use alloc::string::String;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{ErrorObject, Facts, OpenAiUsage, Report};
use crate::service_tier::ServiceTier;

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default, borrow)]
    response: Option<Body<'a>>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default, borrow)]
    usage: Option<OpenAiUsage<'a>>,
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
    /// Top-level streaming `error` events carry `code` beside `type: "error"`.
    #[serde(default, borrow)]
    code: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Body<'a> {
    #[serde(default)]
    model: Option<String>,
    /// The tier that served the call.
    #[serde(default)]
    service_tier: Option<String>,
    #[serde(default, borrow)]
    usage: Option<OpenAiUsage<'a>>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

/// Web searches a response made: its `"type": "web_search_call"` output items, counted in the
/// bytes of the document that carries the usage. The pattern cannot occur inside a JSON string
/// (its quotes would be escaped there), and a typed `output` list costs 5 KB of `.wasm`.
fn web_search_calls(doc: &[u8]) -> u64 {
    const VALUE: &[u8] = b"\"web_search_call\"";
    let mut count = 0;
    for at in 0..doc.len().saturating_sub(VALUE.len() - 1) {
        if !doc[at..].starts_with(VALUE) {
            continue;
        }
        let before = trim_end(&doc[..at]);
        if let Some(before) = before.strip_suffix(b":") {
            count += u64::from(trim_end(before).ends_with(b"\"type\""));
        }
    }
    count
}

fn trim_end(bytes: &[u8]) -> &[u8] {
    let keep = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &bytes[..keep]
}

/// Parses a Responses API body or stream event.
pub fn parse(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: Doc<'_> = serde_json::from_slice(bytes)?;
    let kind = doc.kind.as_deref().unwrap_or("");
    let end = matches!(
        kind,
        "response.completed" | "response.incomplete" | "response.failed"
    );
    let (model, usage, error, tier) = match doc.response {
        Some(body) => (body.model, body.usage, body.error, body.service_tier),
        None => (doc.model, doc.usage, doc.error, doc.service_tier),
    };
    let tier = tier.as_deref().map(ServiceTier::from_wire);
    let error = match (error, kind) {
        (Some(e), _) => Some(e.reason()),
        (None, "error") => Some(
            doc.code
                .map(|c| String::from(c.get().trim_matches('"')))
                .unwrap_or_else(|| String::from("error")),
        ),
        _ => None,
    };
    Ok(Facts {
        model,
        usage: usage.map(|u| {
            let mut usage = u.normalise();
            usage.service_tier = tier;
            // OpenRouter may report the searches itself; never count them twice.
            usage.web_search_requests = usage.web_search_requests.max(web_search_calls(bytes));
            Report::Complete(usage)
        }),
        usage_only: false,
        error,
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_event_carries_usage_and_model() {
        let event = br#"{"type":"response.completed","response":{"model":"gpt-4o-2024-08-06","usage":{"input_tokens":13,"input_tokens_details":{"cached_tokens":4},"output_tokens":227,"output_tokens_details":{"reasoning_tokens":192}}}}"#;
        let facts = parse(event).unwrap();
        assert!(facts.end);
        assert_eq!(facts.model.as_deref(), Some("gpt-4o-2024-08-06"));
        let Some(Report::Complete(u)) = facts.usage else {
            panic!("usage")
        };
        assert_eq!(
            (
                u.prompt_tokens,
                u.cached_tokens,
                u.completion_tokens,
                u.reasoning_tokens
            ),
            (13, 4, 227, 192)
        );
    }

    #[test]
    fn openrouter_body_keeps_cost_and_cache_writes() {
        let body = br#"{"model":"openai/gpt-5.6-sol","usage":{"cost":0.025265,"input_tokens":4020,"input_tokens_details":{"cache_write_tokens":4012,"cached_tokens":0},"output_tokens":5}}"#;
        let Some(Report::Complete(u)) = parse(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!(
            (u.cache_write_tokens, u.upstream_cost.as_deref()),
            (4012, Some("0.025265"))
        );
    }

    #[test]
    fn web_search_calls_in_the_output_are_counted() {
        let completed = br#"{"type":"response.completed","response":{"model":"gpt-5","output":[{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"reasoning"},{"type":"web_search_call"},{"type":"message","content":[]}],"usage":{"input_tokens":10,"output_tokens":5}}}"#;
        let Some(Report::Complete(u)) = parse(completed).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!(u.web_search_requests, 2);
        let body = br#"{"model":"gpt-5","output":[{"type":"web_search_call"}],"usage":{"input_tokens":1,"output_tokens":1}}"#;
        let Some(Report::Complete(u)) = parse(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!(u.web_search_requests, 1);
        // Spacing as pretty-printers write it; the words inside a string do not count.
        let spaced = br#"{"output": [{"type" : "web_search_call"}, {"type": "message", "content": [{"text": "a \"type\":\"web_search_call\" b"}]}], "usage": {"input_tokens": 1}}"#;
        let Some(Report::Complete(u)) = parse(spaced).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!(u.web_search_requests, 1);
    }

    #[test]
    fn failures_and_error_events_give_a_reason() {
        let failed = br#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"x"}}}"#;
        assert_eq!(
            parse(failed).unwrap().error.as_deref(),
            Some("server_error")
        );
        let error = br#"{"type":"error","code":"rate_limit_exceeded","message":"x"}"#;
        assert_eq!(
            parse(error).unwrap().error.as_deref(),
            Some("rate_limit_exceeded")
        );
        let created =
            br#"{"type":"response.created","response":{"model":"m","usage":null,"error":null}}"#;
        let facts = parse(created).unwrap();
        assert_eq!((facts.error, facts.usage, facts.end), (None, None, false));
    }
}
