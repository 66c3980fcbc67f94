//! Token usage, normalised, and its extraction from chat-completions JSON (OpenAI, OpenRouter).
//!
//! Normalised meaning, the same for every provider: `prompt_tokens` counts every input token
//! including cached and cache-written ones; `completion_tokens` every output token including
//! reasoning; `cached_tokens` and `cache_write_tokens` are subsets of prompt, `reasoning_tokens` a
//! subset of completion. Upstream-reported costs are kept as exact decimal text.

use alloc::{borrow::ToOwned, string::String};

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::decimal;

/// Token counts and upstream-reported cost of one call.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// All input tokens (cached and cache-written included).
    pub prompt_tokens: u64,
    /// All output tokens (reasoning included).
    pub completion_tokens: u64,
    /// Input tokens read from the cache (⊂ prompt).
    pub cached_tokens: u64,
    /// Input tokens written to the cache (⊂ prompt).
    pub cache_write_tokens: u64,
    /// Reasoning tokens (⊂ completion).
    pub reasoning_tokens: u64,
    /// `usage.cost` as the upstream reported it (OpenRouter), plain decimal text.
    pub upstream_cost: Option<String>,
    /// `usage.cost_details.upstream_inference_cost`, plain decimal text.
    pub upstream_inference_cost: Option<String>,
    /// `usage.is_byok` (OpenRouter: bring-your-own-key call).
    pub is_byok: Option<bool>,
}

/// What one chat-completions document (a whole body or one stream chunk) tells us.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ChatFacts {
    /// The `model` that answered.
    pub model: Option<String>,
    /// The usage, if the document has a non-null `usage`.
    pub usage: Option<Usage>,
    /// The document carries usage and an empty `choices` (a usage-only stream chunk).
    pub usage_only: bool,
    /// The document carries an `error` object: its `code` (or `type`), else `"error"`.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct ChatDoc<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, borrow)]
    usage: Option<ChatUsage<'a>>,
    #[serde(default)]
    choices: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct ErrorObject<'a> {
    #[serde(default, borrow)]
    code: Option<&'a RawValue>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
struct ChatUsage<'a> {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
    #[serde(default, borrow)]
    cost: Option<&'a RawValue>,
    #[serde(default, borrow)]
    cost_details: Option<CostDetails<'a>>,
    #[serde(default)]
    is_byok: Option<bool>,
}

#[derive(Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct CostDetails<'a> {
    #[serde(default, borrow)]
    upstream_inference_cost: Option<&'a RawValue>,
}

/// Counts an array's elements without keeping them.
struct Count(usize);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Count;
            fn expecting(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Count, A::Error> {
                let mut n = 0;
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(n))
            }
        }
        d.deserialize_seq(V)
    }
}

#[derive(Deserialize)]
struct ChoicesOnly {
    #[serde(default)]
    choices: Option<Count>,
}

/// Parses a chat-completions document. Errors only when it is not JSON of an object.
pub fn parse_chat(bytes: &[u8]) -> Result<ChatFacts, serde_json::Error> {
    let doc: ChatDoc<'_> = serde_json::from_slice(bytes)?;
    let usage = doc.usage.map(|u| {
        let prompt = u.prompt_tokens.unwrap_or(0);
        let completion = u.completion_tokens.unwrap_or(0);
        let details = u.prompt_tokens_details;
        Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            cached_tokens: details.as_ref().and_then(|d| d.cached_tokens).unwrap_or(0),
            cache_write_tokens: details.and_then(|d| d.cache_write_tokens).unwrap_or(0),
            reasoning_tokens: u
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
            upstream_cost: u.cost.and_then(|raw| decimal::plain(raw.get())),
            upstream_inference_cost: u
                .cost_details
                .and_then(|d| d.upstream_inference_cost)
                .and_then(|raw| decimal::plain(raw.get())),
            is_byok: u.is_byok,
        }
    });
    let usage_only = usage.is_some()
        && doc.choices.is_some()
        && serde_json::from_slice::<ChoicesOnly>(bytes)
            .ok()
            .and_then(|c| c.choices)
            .is_some_and(|Count(n)| n == 0);
    let error = doc.error.map(|e| match (e.code, e.kind) {
        (Some(code), _) => code.get().trim_matches('"').to_owned(),
        (None, Some(kind)) => kind,
        (None, None) => "error".to_owned(),
    });
    Ok(ChatFacts {
        model: doc.model,
        usage,
        usage_only,
        error,
    })
}

/// Cheap pre-check for stream chunks: does `bytes` contain a `"usage"` key whose value is not
/// `null`, or an `"error"` key? Chunks without either need no JSON parse once the model is known.
pub fn worth_parsing(bytes: &[u8]) -> bool {
    if memchr::memmem::find(bytes, b"\"error\"").is_some() {
        return true;
    }
    memchr::memmem::find_iter(bytes, b"\"usage\"").any(|at| {
        let rest = &bytes[at + 7..];
        let rest = trim_start(rest);
        match rest.strip_prefix(b":") {
            Some(value) => !trim_start(value).starts_with(b"null"),
            None => true,
        }
    })
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let n = bytes.iter().take_while(|b| b.is_ascii_whitespace()).count();
    &bytes[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_usage_with_cost_and_cache_write() {
        let body = br#"{"model":"anthropic/claude-4.6-sonnet-20260217","choices":[{"x":1}],"usage":{"completion_tokens":63,"completion_tokens_details":{"reasoning_tokens":0},"cost":0.01058775,"cost_details":{"upstream_inference_cost":0.01058775},"is_byok":false,"prompt_tokens":2572,"prompt_tokens_details":{"cache_write_tokens":2569,"cached_tokens":0}}}"#;
        let facts = parse_chat(body).unwrap();
        assert_eq!(
            facts.model.as_deref(),
            Some("anthropic/claude-4.6-sonnet-20260217")
        );
        assert!(!facts.usage_only);
        let usage = facts.usage.unwrap();
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2572, 63));
        assert_eq!((usage.cached_tokens, usage.cache_write_tokens), (0, 2569));
        assert_eq!(usage.upstream_cost.as_deref(), Some("0.01058775"));
        assert_eq!(usage.upstream_inference_cost.as_deref(), Some("0.01058775"));
        assert_eq!(usage.is_byok, Some(false));
    }

    #[test]
    fn usage_only_chunk_is_recognised() {
        let chunk =
            br#"{"model":"m","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":2}}"#;
        assert!(parse_chat(chunk).unwrap().usage_only);
        let null_usage = br#"{"model":"m","choices":[],"usage":null}"#;
        let facts = parse_chat(null_usage).unwrap();
        assert!(facts.usage.is_none() && !facts.usage_only);
    }

    #[test]
    fn error_objects_keep_only_their_code() {
        let chunk = br#"{"error":{"code":400,"message":"secret prompt echo"},"model":"m"}"#;
        assert_eq!(parse_chat(chunk).unwrap().error.as_deref(), Some("400"));
    }

    #[test]
    fn null_upstream_costs_are_none() {
        let body = br#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":null,"cost_details":{"upstream_inference_cost":null}}}"#;
        let usage = parse_chat(body).unwrap().usage.unwrap();
        assert_eq!(
            (usage.upstream_cost, usage.upstream_inference_cost),
            (None, None)
        );
    }

    #[test]
    fn pre_check_skips_null_usage_chunks() {
        assert!(!worth_parsing(
            br#"{"choices":[{"delta":{"content":"hi"}}],"usage":null}"#
        ));
        assert!(!worth_parsing(
            br#"{"choices":[{"delta":{"content":"hi"}}]}"#
        ));
        assert!(worth_parsing(
            br#"{"choices":[],"usage" : {"prompt_tokens":1}}"#
        ));
        assert!(worth_parsing(br#"{"error":{"code":502}}"#));
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(parse_chat(b"{not json").is_err());
        assert!(parse_chat(b"[1]").is_err());
    }
}
