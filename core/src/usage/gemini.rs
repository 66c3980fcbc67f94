//! Gemini `generateContent` / `streamGenerateContent?alt=sse`: `usageMetadata` (cumulative in a
//! stream: the last one counts) and `modelVersion`.
//!
//! `thoughtsTokenCount` is NOT inside `candidatesTokenCount`: completion = candidates + thoughts,
//! reasoning = thoughts. `cachedContentTokenCount` ⊂ `promptTokenCount`. Tool-use prompt tokens
//! (`toolUsePromptTokenCount`, e.g. fetched web pages) are input: prompt = prompt + tool-use prompt.
//! By modality: `promptTokensDetails` `AUDIO` / `IMAGE` less their cached part
//! (`cacheTokensDetails`) are the uncached audio / image input tokens, `candidatesTokensDetails`
//! `AUDIO` / `IMAGE` the audio / image output tokens (⊂ candidates); the other modalities (text,
//! video, document) are billed as text.

use alloc::{string::String, vec::Vec};

use serde::Deserialize;

use super::{ErrorObject, Facts, Report, Usage};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc<'a> {
    #[serde(default)]
    model_version: Option<String>,
    #[serde(default)]
    usage_metadata: Option<Metadata>,
    #[serde(default)]
    candidates: Option<Vec<Candidate>>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
    #[serde(default)]
    candidates_token_count: Option<u64>,
    #[serde(default)]
    thoughts_token_count: Option<u64>,
    #[serde(default)]
    cached_content_token_count: Option<u64>,
    #[serde(default)]
    tool_use_prompt_token_count: Option<u64>,
    #[serde(default)]
    prompt_tokens_details: Option<Vec<ModalityCount>>,
    #[serde(default)]
    cache_tokens_details: Option<Vec<ModalityCount>>,
    #[serde(default)]
    candidates_tokens_details: Option<Vec<ModalityCount>>,
}

/// One `{"modality": "AUDIO", "tokenCount": N}` entry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModalityCount {
    #[serde(default)]
    modality: Option<String>,
    #[serde(default)]
    token_count: Option<u64>,
}

/// Tokens of `modality` in `details` (saturating: absurd counts stay bounded by the totals the
/// cost clamps them to).
fn of_modality(details: &Option<Vec<ModalityCount>>, modality: &str) -> u64 {
    details
        .iter()
        .flatten()
        .filter(|d| d.modality.as_deref() == Some(modality))
        .fold(0, |sum: u64, d| {
            sum.saturating_add(d.token_count.unwrap_or(0))
        })
}

/// Parses a Gemini body or stream event.
pub fn parse(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: Doc<'_> = serde_json::from_slice(bytes)?;
    // Sums that do not fit in 64 bits are absurd counts: an error, never a wrapped number.
    let usage = doc.usage_metadata.map(|m| {
        let thoughts = m.thoughts_token_count.unwrap_or(0);
        let prompt = m
            .prompt_token_count
            .unwrap_or(0)
            .checked_add(m.tool_use_prompt_token_count.unwrap_or(0));
        let completion = m.candidates_token_count.unwrap_or(0).checked_add(thoughts);
        match (prompt, completion) {
            (Some(prompt_tokens), Some(completion_tokens)) => {
                let uncached = |modality| {
                    of_modality(&m.prompt_tokens_details, modality)
                        .saturating_sub(of_modality(&m.cache_tokens_details, modality))
                };
                Report::Complete(Usage {
                    prompt_tokens,
                    completion_tokens,
                    cached_tokens: m.cached_content_token_count.unwrap_or(0),
                    reasoning_tokens: thoughts,
                    audio_prompt_tokens: uncached("AUDIO"),
                    image_prompt_tokens: uncached("IMAGE"),
                    audio_completion_tokens: of_modality(&m.candidates_tokens_details, "AUDIO"),
                    image_completion_tokens: of_modality(&m.candidates_tokens_details, "IMAGE"),
                    ..Usage::default()
                })
            }
            _ => Report::Overflow,
        }
    });
    let end = doc
        .candidates
        .iter()
        .flatten()
        .any(|c| c.finish_reason.is_some());
    Ok(Facts {
        model: doc.model_version,
        usage,
        usage_only: false,
        error: doc.error.map(|e| e.reason()),
        end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thoughts_are_added_to_candidates_and_tool_use_to_prompt() {
        let body = br#"{"candidates":[{"finishReason":"STOP"}],"modelVersion":"gemini-2.5-flash","usageMetadata":{"promptTokenCount":32,"candidatesTokenCount":20,"toolUsePromptTokenCount":4610,"thoughtsTokenCount":37,"totalTokenCount":4699}}"#;
        let facts = parse(body).unwrap();
        assert!(facts.end);
        let Some(Report::Complete(u)) = facts.usage else {
            panic!("usage")
        };
        assert_eq!(u.prompt_tokens + u.completion_tokens, 4699);
        assert_eq!((u.completion_tokens, u.reasoning_tokens), (57, 37));
    }

    #[test]
    fn cached_content_is_inside_prompt() {
        let body = br#"{"usageMetadata":{"promptTokenCount":4000,"cachedContentTokenCount":3512,"candidatesTokenCount":5}}"#;
        let Some(Report::Complete(u)) = parse(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!((u.prompt_tokens, u.cached_tokens), (4000, 3512));
    }

    #[test]
    fn sums_that_overflow_are_reported_as_such() {
        let max = u64::MAX;
        for metadata in [
            alloc::format!(r#"{{"promptTokenCount":{max},"toolUsePromptTokenCount":1}}"#),
            alloc::format!(r#"{{"candidatesTokenCount":{max},"thoughtsTokenCount":1}}"#),
        ] {
            let body = alloc::format!(r#"{{"usageMetadata":{metadata}}}"#);
            assert_eq!(
                parse(body.as_bytes()).unwrap().usage,
                Some(Report::Overflow)
            );
        }
    }

    #[test]
    fn audio_and_image_tokens_come_from_the_modality_details() {
        let body = br#"{"usageMetadata":{"promptTokenCount":1300,"cachedContentTokenCount":200,"candidatesTokenCount":1300,"promptTokensDetails":[{"modality":"TEXT","tokenCount":100},{"modality":"AUDIO","tokenCount":900},{"modality":"IMAGE","tokenCount":300}],"cacheTokensDetails":[{"modality":"AUDIO","tokenCount":200}],"candidatesTokensDetails":[{"modality":"IMAGE","tokenCount":1290},{"modality":"TEXT","tokenCount":10}]}}"#;
        let Some(Report::Complete(u)) = parse(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!((u.audio_prompt_tokens, u.image_prompt_tokens), (700, 300));
        assert_eq!(
            (u.image_completion_tokens, u.audio_completion_tokens),
            (1290, 0)
        );
    }

    #[test]
    fn errors_give_their_code() {
        let body = br#"{"error":{"code":429,"message":"quota","status":"RESOURCE_EXHAUSTED"}}"#;
        assert_eq!(parse(body).unwrap().error.as_deref(), Some("429"));
    }
}
