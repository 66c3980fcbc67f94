//! Embeddings: OpenAI / OpenRouter `POST …/embeddings` and Gemini `:embedContent` /
//! `:batchEmbedContents`. Input tokens only; the vectors are skipped, never kept.
//!
//! - OpenAI-style: `{"data": [...], "model": "text-embedding-3-small", "usage": {"prompt_tokens":
//!   2, "total_tokens": 2}}` (OpenRouter adds `usage.cost`). `total_tokens` is `prompt_tokens`
//!   again, so it is not read.
//! - Gemini: `{"embeddings": [{"values": [...]}], "usageMetadata": {"promptTokenCount": 11,
//!   "promptTokenDetails": [...]}}` (`embedding` for `:embedContent`). The answer names no model
//!   (the path does). Some answers carry no `usageMetadata` at all (recorded for
//!   `gemini-embedding-001` and `gemini-embedding-2-preview`): such a call has no usage to
//!   price, and the record says `usage_not_reported`.
//!
//! Not here: which prices apply (`crate::pricing`), streams (embeddings never stream).

use alloc::string::String;

use serde::Deserialize;

use super::{ErrorObject, Facts, OpenAiUsage, Report, Usage};

#[derive(Deserialize)]
struct OpenAiDoc<'a> {
    #[serde(default)]
    model: Option<String>,
    #[serde(default, borrow)]
    usage: Option<OpenAiUsage<'a>>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

/// Parses an OpenAI-style embeddings body. Errors only when it is not JSON of an object.
pub fn parse_openai(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: OpenAiDoc<'_> = serde_json::from_slice(bytes)?;
    Ok(Facts {
        model: doc.model,
        usage: doc
            .usage
            .map(|usage| Report::Complete(usage.normalise_input_only())),
        usage_only: false,
        error: doc.error.map(|e| e.reason()),
        end: true,
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiDoc<'a> {
    #[serde(default)]
    usage_metadata: Option<GeminiMetadata>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GeminiMetadata {
    #[serde(default)]
    prompt_token_count: Option<u64>,
}

/// Parses a Gemini `:embedContent` / `:batchEmbedContents` body. Errors only when it is not JSON
/// of an object.
pub fn parse_gemini(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: GeminiDoc<'_> = serde_json::from_slice(bytes)?;
    Ok(Facts {
        model: None,
        usage: doc.usage_metadata.map(|m| {
            Report::Complete(Usage {
                prompt_tokens: m.prompt_token_count.unwrap_or(0),
                ..Usage::default()
            })
        }),
        usage_only: false,
        error: doc.error.map(|e| e.reason()),
        end: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_embeddings_usage_is_input_only() {
        let body = br#"{"data":[{"embedding":"PsaJPMCK","index":0,"object":"embedding"}],"model":"text-embedding-3-small","object":"list","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        let facts = parse_openai(body).unwrap();
        assert_eq!(facts.model.as_deref(), Some("text-embedding-3-small"));
        let Some(Report::Complete(usage)) = facts.usage else {
            panic!("usage")
        };
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (2, 0));
    }

    #[test]
    fn openrouter_embeddings_keep_the_reported_cost() {
        let body = br#"{"data":[],"model":"openai/text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8,"cost":0.00000016}}"#;
        let Some(Report::Complete(usage)) = parse_openai(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!(usage.prompt_tokens, 8);
        assert_eq!(usage.upstream_cost.as_deref(), Some("0.00000016"));
    }

    #[test]
    fn a_completion_count_on_an_embedding_is_not_output() {
        // An embedding generates no output: a `completion_tokens` an OpenAI-compatible server
        // sends is not billed output.
        let body =
            br#"{"model":"m","usage":{"prompt_tokens":5,"completion_tokens":5,"total_tokens":5}}"#;
        let Some(Report::Complete(usage)) = parse_openai(body).unwrap().usage else {
            panic!("usage")
        };
        assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 0));
    }

    #[test]
    fn gemini_batch_with_usage_metadata() {
        let body = br#"{"embeddings":[{"values":[-0.02,0.004]}],"usageMetadata":{"promptTokenCount":11,"promptTokenDetails":[{"modality":"TEXT","tokenCount":11}]}}"#;
        let facts = parse_gemini(body).unwrap();
        assert_eq!(facts.model, None);
        let Some(Report::Complete(usage)) = facts.usage else {
            panic!("usage")
        };
        assert_eq!(usage.prompt_tokens, 11);
    }

    #[test]
    fn gemini_without_usage_metadata_has_no_usage() {
        let facts = parse_gemini(br#"{"embedding":{"values":[0.1,0.2]}}"#).unwrap();
        assert!(facts.usage.is_none() && facts.error.is_none());
    }

    #[test]
    fn errors_keep_only_their_code() {
        let body =
            br#"{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}"#;
        assert_eq!(parse_gemini(body).unwrap().error.as_deref(), Some("404"));
        let body = br#"{"error":{"message":"secret","type":"invalid_request_error","code":null}}"#;
        assert_eq!(
            parse_openai(body).unwrap().error.as_deref(),
            Some("invalid_request_error")
        );
    }

    #[test]
    fn not_json_is_an_error() {
        assert!(parse_openai(b"{not json").is_err());
        assert!(parse_gemini(b"[1]").is_err());
    }
}
