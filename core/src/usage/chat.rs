//! OpenAI / OpenRouter chat completions: `usage` on the body or on a stream chunk (the last
//! non-null one counts); `prompt_tokens_details.{cached_tokens, cache_write_tokens}` ⊂ prompt,
//! `completion_tokens_details.reasoning_tokens` ⊂ completion; `audio_tokens` in either details
//! ⊂ prompt / completion; the top-level `service_tier` that served the call; OpenRouter's `cost`,
//! `cost_details.upstream_inference_cost`, `is_byok`.

use alloc::string::String;

use serde::Deserialize;

use super::{ErrorObject, Facts, OpenAiUsage, Report, Usage};
use crate::service_tier::ServiceTier;

#[derive(Deserialize)]
struct ChatDoc<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, borrow)]
    usage: Option<OpenAiUsage<'a>>,
    #[serde(default)]
    choices: Option<serde::de::IgnoredAny>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
    /// The tier that served the call (`default`, `flex`, `priority`, `scale`).
    #[serde(default)]
    service_tier: Option<String>,
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
pub fn parse(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: ChatDoc<'_> = serde_json::from_slice(bytes)?;
    let tier = doc.service_tier.as_deref().map(ServiceTier::from_wire);
    let usage = doc.usage.map(|u| Usage {
        service_tier: tier,
        ..u.normalise()
    });
    // A usage-only chunk has `"choices": []`; a document without an empty array anywhere cannot
    // have one, and needs no second pass (most full answers: their `choices` are not empty).
    let usage_only = usage.is_some()
        && doc.choices.is_some()
        && has_empty_array(bytes)
        && serde_json::from_slice::<ChoicesOnly>(bytes)
            .ok()
            .and_then(|c| c.choices)
            .is_some_and(|Count(n)| n == 0);
    Ok(Facts {
        model: doc.model,
        usage: usage.map(Report::Complete),
        usage_only,
        error: doc.error.map(|e| e.reason()),
        end: false,
    })
}

/// `[` then `]` with only whitespace between, anywhere in `bytes`: every empty JSON array is
/// written so (brackets are never escaped); a match inside a string only costs the second pass.
fn has_empty_array(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'[', bytes).any(|at| {
        bytes[at + 1..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|&b| b == b']')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openrouter_usage_with_cost_and_cache_write() {
        let body = br#"{"model":"anthropic/claude-4.6-sonnet-20260217","choices":[{"x":1}],"usage":{"completion_tokens":63,"completion_tokens_details":{"reasoning_tokens":0},"cost":0.01058775,"cost_details":{"upstream_inference_cost":0.01058775},"is_byok":false,"prompt_tokens":2572,"prompt_tokens_details":{"cache_write_tokens":2569,"cached_tokens":0}}}"#;
        let facts = parse(body).unwrap();
        assert_eq!(
            facts.model.as_deref(),
            Some("anthropic/claude-4.6-sonnet-20260217")
        );
        assert!(!facts.usage_only);
        let Some(Report::Complete(usage)) = facts.usage else {
            panic!("usage")
        };
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
        assert!(parse(chunk).unwrap().usage_only);
        let null_usage = br#"{"model":"m","choices":[],"usage":null}"#;
        let facts = parse(null_usage).unwrap();
        assert!(facts.usage.is_none() && !facts.usage_only);
    }

    #[test]
    fn usage_only_needs_an_empty_choices_array_wherever_the_brackets_are() {
        let spaced = b"{\"model\":\"m\",\"choices\":[ \n ],\"usage\":{\"prompt_tokens\":1}}";
        assert!(parse(spaced).unwrap().usage_only);
        // An empty array elsewhere (here a string) only costs the second pass.
        let elsewhere = br#"{"model":"[]","choices":[{"x":1}],"usage":{"prompt_tokens":1}}"#;
        assert!(!parse(elsewhere).unwrap().usage_only);
        let escaped_key = br#"{"ch\u006fices":[],"usage":{"prompt_tokens":1}}"#;
        assert!(parse(escaped_key).unwrap().usage_only);
        let full = br#"{"choices":[{"message":{"content":"x"}}],"usage":{"prompt_tokens":1}}"#;
        assert!(!has_empty_array(full) && !parse(full).unwrap().usage_only);
    }

    #[test]
    fn error_objects_keep_only_their_code() {
        let chunk = br#"{"error":{"code":400,"message":"secret prompt echo"},"model":"m"}"#;
        assert_eq!(parse(chunk).unwrap().error.as_deref(), Some("400"));
    }

    #[test]
    fn null_upstream_costs_are_none() {
        let body = br#"{"usage":{"prompt_tokens":1,"completion_tokens":1,"cost":null,"cost_details":{"upstream_inference_cost":null}}}"#;
        let Some(Report::Complete(usage)) = parse(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!(
            (usage.upstream_cost, usage.upstream_inference_cost),
            (None, None)
        );
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(parse(b"{not json").is_err());
        assert!(parse(b"[1]").is_err());
    }
}
