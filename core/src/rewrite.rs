//! Request rewrite: ask the upstream to report usage, and learn what the client asked for.
//!
//! OpenRouter chat completions get `"usage": {"include": true}`; streaming OpenAI-style chat and
//! legacy completions requests get `"stream_options": {"include_usage": true}`. No other endpoint
//! is rewritten (embeddings always report usage and never stream). `usage` is never sent to a
//! non-OpenRouter upstream (OpenAI answers 400 to unknown fields). A key the client did not send
//! is spliced in after the opening `{`, leaving every byte of the client's JSON as it was; a key the
//! client sent with another value is changed by re-serialising the body.

use alloc::{borrow::ToOwned, collections::BTreeMap, string::String, vec::Vec};

use serde_json::value::RawValue;

use crate::provider::{Endpoint, Provider};

/// What the request says, whether or not it was rewritten.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The `model` the client asked for.
    pub model: Option<String>,
    /// `"stream": true`.
    pub stream: bool,
    /// The client itself asked for the usage chunk (`stream_options.include_usage` or
    /// OpenRouter's `usage.include`).
    pub client_asked_usage: bool,
}

/// The result of [`rewrite`].
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// What the request says.
    pub facts: RequestFacts,
    /// The new body, if anything changed.
    pub body: Option<Vec<u8>>,
    /// A stream will now carry a usage-only chunk the client did not ask for.
    pub usage_chunk_injected: bool,
}

/// Why a body was left as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RewriteSkip {
    /// The body is not a JSON object.
    NotJson,
}

/// Reads `body` and, for chat completions on OpenAI-style providers, adds the usage flags.
pub fn rewrite(
    body: &[u8],
    provider: Provider,
    endpoint: Endpoint,
) -> Result<Rewritten, RewriteSkip> {
    let top: BTreeMap<String, &RawValue> =
        serde_json::from_slice(body).map_err(|_| RewriteSkip::NotJson)?;
    let stream = top.get("stream").is_some_and(|v| v.get() == "true");
    let model = top
        .get("model")
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    let include_usage = flag(&top, "stream_options", "include_usage");
    let usage_include = flag(&top, "usage", "include");
    let openrouter = provider == Provider::OpenRouter;
    let client_asked_usage =
        include_usage == Some(true) || (openrouter && usage_include == Some(true));
    let mut result = Rewritten {
        facts: RequestFacts {
            model,
            stream,
            client_asked_usage,
        },
        ..Rewritten::default()
    };
    // Legacy completions stream like chat (`stream_options` is theirs too); OpenRouter's
    // `usage.include` is a chat-completions parameter only. Nothing else is rewritten.
    let chat = endpoint == Endpoint::ChatCompletions;
    if !(chat || endpoint == Endpoint::Completions) || !provider.is_openai_style() {
        return Ok(result);
    }
    // (key, inner key, value to splice when the key is absent)
    let mut wanted: Vec<(&str, &str, &str)> = Vec::new();
    if openrouter && chat && usage_include != Some(true) {
        wanted.push(("usage", "include", r#""usage":{"include":true}"#));
    }
    if stream && include_usage != Some(true) {
        wanted.push((
            "stream_options",
            "include_usage",
            r#""stream_options":{"include_usage":true}"#,
        ));
    }
    if wanted.is_empty() {
        return Ok(result);
    }
    let all_absent = wanted.iter().all(|(key, _, _)| !top.contains_key(*key));
    let new_body = if all_absent {
        splice_after_brace(body, &wanted, top.is_empty())
    } else {
        reserialize(body, &wanted)
    };
    result.usage_chunk_injected = stream && !client_asked_usage;
    result.body = new_body;
    Ok(result)
}

/// `top[key][inner]` as a bool: `None` when absent, null or not a bool.
fn flag(top: &BTreeMap<String, &RawValue>, key: &str, inner: &str) -> Option<bool> {
    let raw = top.get(key)?;
    let object: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get()).ok()?;
    match object.get(inner)?.get() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

fn splice_after_brace(body: &[u8], wanted: &[(&str, &str, &str)], empty: bool) -> Option<Vec<u8>> {
    let brace = body.iter().position(|b| !b.is_ascii_whitespace())?;
    let mut out = Vec::with_capacity(body.len() + 64);
    out.extend_from_slice(&body[..=brace]);
    for (i, (_, _, pair)) in wanted.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(pair.as_bytes());
    }
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&body[brace + 1..]);
    Some(out)
}

fn reserialize(body: &[u8], wanted: &[(&str, &str, &str)]) -> Option<Vec<u8>> {
    let mut doc: serde_json::Value = serde_json::from_slice(body).ok()?;
    let object = doc.as_object_mut()?;
    for (key, inner, _) in wanted {
        let entry = object
            .entry((*key).to_owned())
            .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if !entry.is_object() {
            *entry = serde_json::Value::Object(serde_json::Map::new());
        }
        if let Some(map) = entry.as_object_mut() {
            map.insert((*inner).to_owned(), serde_json::Value::Bool(true));
        }
    }
    serde_json::to_vec(&doc).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(body: &str, provider: Provider) -> Rewritten {
        rewrite(body.as_bytes(), provider, Endpoint::ChatCompletions).unwrap()
    }

    fn body_of(r: &Rewritten) -> String {
        String::from_utf8(r.body.clone().expect("rewritten")).unwrap()
    }

    #[test]
    fn openrouter_gets_usage_include_spliced_in_front() {
        let r = run(
            r#"{"model":"openai/gpt-4o","messages":[]}"#,
            Provider::OpenRouter,
        );
        assert_eq!(
            body_of(&r),
            r#"{"usage":{"include":true},"model":"openai/gpt-4o","messages":[]}"#
        );
        assert_eq!(r.facts.model.as_deref(), Some("openai/gpt-4o"));
        assert!(!r.usage_chunk_injected);
    }

    #[test]
    fn openai_never_gets_usage_and_non_streams_are_untouched() {
        let r = run(r#"{"model":"gpt-4o","messages":[]}"#, Provider::OpenAi);
        assert_eq!(r.body, None);
    }

    #[test]
    fn openai_stream_gets_stream_options_and_hides_the_injected_chunk() {
        let r = run(r#" {"model":"gpt-4o","stream":true}"#, Provider::OpenAi);
        assert_eq!(
            body_of(&r),
            r#" {"stream_options":{"include_usage":true},"model":"gpt-4o","stream":true}"#
        );
        assert!(r.facts.stream && !r.facts.client_asked_usage && r.usage_chunk_injected);
    }

    #[test]
    fn openrouter_stream_gets_both_flags() {
        let r = run(r#"{"model":"m","stream":true}"#, Provider::OpenRouter);
        let body: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["usage"]["include"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }

    #[test]
    fn client_that_asked_for_usage_is_left_alone() {
        let r = run(
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#,
            Provider::OpenAi,
        );
        assert_eq!(r.body, None);
        assert!(r.facts.client_asked_usage && !r.usage_chunk_injected);
    }

    #[test]
    fn present_but_false_flag_is_changed_by_reserialising() {
        let r = run(
            r#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":false,"x":1}}"#,
            Provider::OpenAi,
        );
        let body: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(
            body["stream_options"],
            serde_json::json!({"include_usage": true, "x": 1})
        );
        assert!(r.usage_chunk_injected);
    }

    #[test]
    fn null_stream_options_is_replaced_not_duplicated() {
        let r = run(
            r#"{"model":"gpt-4o","stream":true,"stream_options":null}"#,
            Provider::OpenAi,
        );
        let text = body_of(&r);
        assert_eq!(text.matches("stream_options").count(), 1);
    }

    #[test]
    fn non_json_and_non_objects_are_skipped() {
        for body in ["{not json", "[1,2]", ""] {
            let r = rewrite(
                body.as_bytes(),
                Provider::OpenRouter,
                Endpoint::ChatCompletions,
            );
            assert_eq!(r, Err(RewriteSkip::NotJson));
        }
    }

    #[test]
    fn legacy_completions_streams_get_stream_options_only() {
        for provider in [Provider::OpenAi, Provider::OpenRouter] {
            let r = rewrite(
                br#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#,
                provider,
                Endpoint::Completions,
            )
            .unwrap();
            assert_eq!(
                body_of(&r),
                r#"{"stream_options":{"include_usage":true},"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#,
                "{provider:?}"
            );
            assert!(r.usage_chunk_injected);
            let plain = rewrite(
                br#"{"model":"m","prompt":"x"}"#,
                provider,
                Endpoint::Completions,
            );
            assert_eq!(plain.unwrap().body, None, "{provider:?}");
        }
    }

    #[test]
    fn embeddings_are_never_rewritten() {
        for (provider, endpoint) in [
            (Provider::OpenRouter, Endpoint::Embeddings),
            (Provider::OpenAi, Endpoint::Embeddings),
            (Provider::Gemini, Endpoint::EmbedContent),
        ] {
            let r = rewrite(br#"{"model":"m","input":"x"}"#, provider, endpoint).unwrap();
            assert_eq!(r.body, None);
            assert_eq!(r.facts.model.as_deref(), Some("m"));
        }
    }

    #[test]
    fn other_endpoints_only_yield_facts() {
        let r = rewrite(
            br#"{"model":"gpt-5","stream":true}"#,
            Provider::OpenAi,
            Endpoint::Responses,
        )
        .unwrap();
        assert_eq!(r.body, None);
        assert!(r.facts.stream);
    }
}
