//! Request rewrite: ask the upstream to report usage, and learn what the client asked for.
//!
//! OpenRouter chat completions get `"usage": {"include": true}`; streaming OpenAI-style chat and
//! legacy completions requests get `"stream_options": {"include_usage": true}`. No other endpoint
//! is rewritten (embeddings always report usage and never stream). `usage` is never sent to a
//! non-OpenRouter upstream (OpenAI answers 400 to unknown fields). A key the client did not send
//! is spliced in after the opening `{`, leaving every byte of the client's JSON as it was; a key the
//! client sent with another value is changed by re-serialising the body.

use alloc::{borrow::ToOwned, collections::BTreeMap, string::String, vec::Vec};
use core::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
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
    /// A speech request's `input`, in characters ([`crate::usage::audio::input_characters`];
    /// `None` on other endpoints, or when it is not a string).
    pub input_characters: Option<u64>,
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
    // The whole body is checked as it was when every top-level value was a `&RawValue` (serde_json
    // checks a raw value's UTF-8; the skipped values below are not, so check it all up front).
    let text = core::str::from_utf8(body).map_err(|_| RewriteSkip::NotJson)?;
    let top: Top = serde_json::from_str(text).map_err(|_| RewriteSkip::NotJson)?;
    let stream = top.stream.is_some_and(|v| v.get() == "true");
    let model = top
        .model
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok());
    let include_usage = flag(top.stream_options, "include_usage");
    let usage_include = flag(top.usage, "include");
    let openrouter = provider == Provider::OpenRouter;
    let client_asked_usage =
        include_usage == Some(true) || (openrouter && usage_include == Some(true));
    let mut result = Rewritten {
        facts: RequestFacts {
            model,
            stream,
            client_asked_usage,
            input_characters: top
                .input
                .filter(|_| endpoint == Endpoint::AudioSpeech)
                .and_then(crate::usage::audio::input_characters),
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
    let mut all_absent = true;
    if openrouter && chat && usage_include != Some(true) {
        wanted.push(("usage", "include", r#""usage":{"include":true}"#));
        all_absent &= top.usage.is_none();
    }
    if stream && include_usage != Some(true) {
        wanted.push((
            "stream_options",
            "include_usage",
            r#""stream_options":{"include_usage":true}"#,
        ));
        all_absent &= top.stream_options.is_none();
    }
    if wanted.is_empty() {
        return Ok(result);
    }
    let new_body = if all_absent {
        splice_after_brace(body, &wanted, top.empty)
    } else {
        reserialize(body, &wanted)
    };
    result.usage_chunk_injected = stream && !client_asked_usage;
    result.body = new_body;
    Ok(result)
}

/// The top-level members the rewrite reads, found in one pass over the request object: every
/// other member's value is skipped (validated as strictly as before, not kept). A key that
/// appears twice counts with its last value, as in a map of all keys.
struct Top<'a> {
    /// The object has no members (`{}`).
    empty: bool,
    stream: Option<&'a RawValue>,
    model: Option<&'a RawValue>,
    stream_options: Option<&'a RawValue>,
    usage: Option<&'a RawValue>,
    /// Speech's text (read only on `/audio/speech`).
    input: Option<&'a RawValue>,
}

impl<'de> Deserialize<'de> for Top<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(TopVisitor)
    }
}

struct TopVisitor;

impl<'de> Visitor<'de> for TopVisitor {
    type Value = Top<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Top<'de>, A::Error> {
        let mut top = Top {
            empty: true,
            stream: None,
            model: None,
            stream_options: None,
            usage: None,
            input: None,
        };
        while let Some(key) = map.next_key::<Key>()? {
            top.empty = false;
            let slot = match key {
                Key::Stream => &mut top.stream,
                Key::Model => &mut top.model,
                Key::StreamOptions => &mut top.stream_options,
                Key::Usage => &mut top.usage,
                Key::Input => &mut top.input,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            *slot = Some(map.next_value()?);
        }
        Ok(top)
    }
}

/// A top-level key, decoded (escapes and all) as a `String` key would be, but not kept.
enum Key {
    Stream,
    Model,
    StreamOptions,
    Usage,
    Input,
    Other,
}

impl<'de> Deserialize<'de> for Key {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl Visitor<'_> for KeyVisitor {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }

    fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<Key, E> {
        Ok(match key {
            "stream" => Key::Stream,
            "model" => Key::Model,
            "stream_options" => Key::StreamOptions,
            "usage" => Key::Usage,
            "input" => Key::Input,
            _ => Key::Other,
        })
    }
}

/// `top[key][inner]` as a bool: `None` when absent, null or not a bool.
fn flag(raw: Option<&RawValue>, inner: &str) -> Option<bool> {
    let raw = raw?;
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

    /// What the rewrite accepted before it read only the keys it needs: a map of every
    /// top-level key to its raw value.
    fn accepted_as_a_map_of_all_keys(body: &[u8]) -> bool {
        serde_json::from_slice::<BTreeMap<String, &RawValue>>(body).is_ok()
    }

    #[test]
    fn validation_is_as_strict_as_a_map_of_all_keys() {
        let deep = |n| {
            let mut b = br#"{"model":"m","x":"#.to_vec();
            b.extend(core::iter::repeat_n(b'[', n));
            b.extend(core::iter::repeat_n(b']', n));
            b.push(b'}');
            b
        };
        let mut bodies: Vec<Vec<u8>> = [
            &br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#[..],
            b"{\"model\":\"m\",\"messages\":\"\xff\"}",
            b"{\"model\":\"m\",\"\xc3\":1}",
            b"{\"model\":\"m\",\"messages\":[\"\xed\xa0\x80\"]}",
            br#"{"model":"m","messages":"\ud800"}"#,
            br#"{"model":"m","\ud800":1}"#,
            br#"{"model":"m","\udc00\ud800":1}"#,
            br#"{"model":"m","messages":"\q"}"#,
            b"{\"model\":\"m\",\"messages\":\"a\nb\"}",
            b"{\"model\":\"m\",\"a\tb\":1}",
            br#"{"model":"m"} x"#,
            br#"{"model":"m"}  "#,
            br#"{"model":"m",}"#,
            br#"{"model":"m","n":01}"#,
            br#"{"model":"m","n":1e999}"#,
            br#"{"model":"m","n":-0.5e-3}"#,
            br#"{"model":"m","n":[1,2,]}"#,
            br#"{"model":"m","n":{"a":1,"a":2}}"#,
            br#"{"model":"m",1:2}"#,
            br#"{}"#,
            br#"{"stream":tru}"#,
            br#"{"model":null,"stream":true}"#,
            br#"[]"#,
            br#""{}""#,
        ]
        .iter()
        .map(|b| b.to_vec())
        .collect();
        bodies.push(deep(100));
        bodies.push(deep(126));
        bodies.push(deep(127));
        bodies.push(deep(200));
        for body in &bodies {
            let now = rewrite(body, Provider::OpenRouter, Endpoint::ChatCompletions);
            assert_eq!(
                now.is_ok(),
                accepted_as_a_map_of_all_keys(body),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn a_repeated_key_counts_with_its_last_value_and_escaped_keys_are_decoded() {
        let r = run(
            r#"{"stream":true,"model":"a","stream":false,"model":"b"}"#,
            Provider::OpenAi,
        );
        assert!(!r.facts.stream);
        assert_eq!(r.facts.model.as_deref(), Some("b"));
        let r = run(r#"{"str\u0065am":true,"model":"m"}"#, Provider::OpenAi);
        assert!(r.facts.stream && r.usage_chunk_injected);
        // The escaped `usage` key is the client's `usage`: changed, not spliced in twice.
        let r = run(
            r#"{"model":"m","us\u0061ge":{"include":false}}"#,
            Provider::OpenRouter,
        );
        let body: serde_json::Value = serde_json::from_slice(r.body.as_ref().unwrap()).unwrap();
        assert_eq!(body["usage"]["include"], true);
        assert_eq!(body.as_object().unwrap().len(), 2);
        // `{}` gets the flag without a dangling comma.
        let r = run("{}", Provider::OpenRouter);
        assert_eq!(body_of(&r), r#"{"usage":{"include":true}}"#);
    }
}
