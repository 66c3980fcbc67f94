//! Image generation and edits: OpenAI `POST …/images/generations` and `…/images/edits`, priced
//! from the GPT image models' token usage (gpt-image-1 and later):
//!
//! `{"created": 1713833628, "data": [{"b64_json": "..."}], "usage": {"input_tokens": 50,
//! "input_tokens_details": {"text_tokens": 10, "image_tokens": 40}, "output_tokens": 4160,
//! "total_tokens": 4210}}` (OpenAI's `ImagesResponse`; newer models add
//! `output_tokens_details: {"image_tokens", "text_tokens"}`). Input image tokens (edits) are
//! priced at `image`, text input at `prompt`, output image tokens at `image_output`, any output
//! text tokens at `completion`. The answer names no model: the request's `model` does.
//!
//! `output_tokens` is documented as "the number of image tokens in the output image": without
//! `output_tokens_details` all of them are image tokens.
//!
//! Not here: per-image prices (dall-e-2/3 answers carry no usage), how much of the body a host
//! buffers (`crate::call`), which prices apply (`crate::pricing`).

use serde::Deserialize;

use super::{ErrorObject, Facts, Report, Usage};

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(default)]
    usage: Option<ImageUsage>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct ImageUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    input_tokens_details: Option<Details>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<Details>,
}

#[derive(Deserialize)]
struct Details {
    #[serde(default)]
    image_tokens: Option<u64>,
}

impl ImageUsage {
    fn normalise(self) -> Report {
        let prompt = self.input_tokens.unwrap_or(0);
        let completion = self.output_tokens.unwrap_or(0);
        let image_in = self
            .input_tokens_details
            .and_then(|d| d.image_tokens)
            .unwrap_or(0);
        let image_out = match self.output_tokens_details {
            Some(d) => d.image_tokens.unwrap_or(0),
            None => completion,
        };
        // The subsets stay honest: more image than input or output tokens is an absurd answer.
        if image_in > prompt || image_out > completion {
            return Report::Overflow;
        }
        Report::Complete(Usage {
            prompt_tokens: prompt,
            completion_tokens: completion,
            image_prompt_tokens: image_in,
            image_completion_tokens: image_out,
            ..Usage::default()
        })
    }
}

/// Parses an images body (the `data` items are skipped, never kept). Errors only when it is not
/// JSON of an object.
pub fn parse(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: Doc<'_> = serde_json::from_slice(bytes)?;
    Ok(Facts {
        model: None,
        usage: doc.usage.map(ImageUsage::normalise),
        usage_only: false,
        error: doc.error.map(|e| e.reason()),
        end: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(body: &str) -> Usage {
        match parse(body.as_bytes()).unwrap().usage {
            Some(Report::Complete(u)) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_edit_splits_text_and_image_input_and_bills_output_as_image_tokens() {
        // The documented shape (OpenAI `ImagesResponse`), a documented-shape fake.
        let u = usage(
            r#"{"created":1713833628,"data":[{"b64_json":"iVBORw0KGgo="}],"usage":{"total_tokens":100,
            "input_tokens":50,"output_tokens":50,"input_tokens_details":{"text_tokens":10,"image_tokens":40}}}"#,
        );
        assert_eq!(
            (
                u.prompt_tokens,
                u.image_prompt_tokens,
                u.completion_tokens,
                u.image_completion_tokens
            ),
            (50, 40, 50, 50)
        );
    }

    #[test]
    fn output_details_split_image_and_text_output() {
        let u = usage(
            r#"{"data":[],"usage":{"input_tokens":12,"input_tokens_details":{"text_tokens":12,"image_tokens":0},
            "output_tokens":1100,"output_tokens_details":{"image_tokens":1056,"text_tokens":44}}}"#,
        );
        assert_eq!(
            (u.completion_tokens, u.image_completion_tokens),
            (1100, 1056)
        );
    }

    #[test]
    fn a_dall_e_answer_has_no_usage_and_an_error_names_its_code() {
        let facts = parse(br#"{"created":1,"data":[{"url":"https://x/y.png"}]}"#).unwrap();
        assert_eq!((facts.model, facts.usage), (None, None));
        let facts =
            parse(br#"{"error":{"code":"content_policy_violation","message":"m"}}"#).unwrap();
        assert_eq!(facts.error.as_deref(), Some("content_policy_violation"));
    }

    #[test]
    fn more_image_tokens_than_tokens_is_an_absurd_answer() {
        let facts = parse(
            br#"{"usage":{"input_tokens":1,"input_tokens_details":{"image_tokens":2},"output_tokens":0}}"#,
        )
        .unwrap();
        assert_eq!(facts.usage, Some(Report::Overflow));
    }
}
