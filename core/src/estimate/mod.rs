//! Token estimates for calls that end without usage (client abort, truncated stream, an upstream
//! that omits it): prompt tokens from the request, completion tokens from the streamed text.
//!
//! Counting uses tiktoken's `o200k_base` (the GPT-4o / GPT-4.1 / GPT-5 / o-series vocabulary), the
//! only encoding bundled; other vendors' models are approximated with it. Streamed text is counted
//! delta by delta and never kept. Each model family's prompt and output framing is added as its
//! chat template has it ([`template`]: OpenAI chat models, harmony for gpt-oss), function tools as
//! OpenAI renders them ([`tools`]); images, server-side tools and undocumented provider system
//! prompts are not counted.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use serde_json::Value;

use crate::usage::{Format, OutputTokens};

pub mod template;
pub mod tools;

pub use template::Template;

/// Tokens in `text` (o200k_base, no special tokens).
pub fn count_text(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

/// Estimated prompt tokens of a request body, or `None` if it is not JSON.
pub fn prompt_tokens(format: Format, body: &[u8]) -> Option<u64> {
    if matches!(
        format,
        Format::Embeddings
            | Format::GeminiEmbeddings
            | Format::Images
            | Format::Transcription
            | Format::Speech
    ) {
        // Embedding models use other tokenizers than o200k (text-embedding-3: cl100k), and their
        // answers report usage where they report any: no estimate rather than a wrong one. Image
        // and audio tokens cannot be counted from text at all (speech bills characters, counted
        // exactly from the request).
        return None;
    }
    let doc: Value = serde_json::from_slice(body).ok()?;
    let mut text_tokens = 0;
    let mut messages = 0u64;
    for key in ["messages", "input", "contents"] {
        match doc.get(key) {
            Some(Value::Array(items)) => {
                messages += items.len() as u64;
                text_tokens += items.iter().map(message_text_tokens).sum::<u64>();
            }
            Some(Value::String(text)) => {
                messages += 1;
                text_tokens += count_text(text);
            }
            _ => {}
        }
    }
    for key in ["system", "instructions", "systemInstruction"] {
        if let Some(value) = doc.get(key) {
            messages += 1;
            text_tokens += message_text_tokens(value);
        }
    }
    let template = Template::of(format, doc["model"].as_str());
    Some(text_tokens + template.prompt_overhead(&doc, messages))
}

/// The request carries a system prompt: a `system` or `developer` message, or non-empty
/// `instructions` (Responses API).
fn has_instructions(doc: &Value) -> bool {
    doc["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|message| matches!(message["role"].as_str(), Some("system" | "developer")))
        || doc["instructions"]
            .as_str()
            .is_some_and(|text| !text.is_empty())
}

/// Tokens of every string under a `content`, `text`, `role` or `parts` key (or of the value
/// itself, if a string), each counted on its own.
fn message_text_tokens(value: &Value) -> u64 {
    match value {
        Value::String(text) => count_text(text),
        Value::Array(items) => items.iter().map(message_text_tokens).sum(),
        Value::Object(map) => map
            .iter()
            .filter(|(key, _)| matches!(key.as_str(), "content" | "text" | "role" | "parts"))
            .map(|(_, item)| message_text_tokens(item))
            .sum(),
        _ => 0,
    }
}

/// What the generated output seen so far adds up to: text tokens, and the tool calls whose
/// framing an OpenAI model spends tokens on. Additive over stream events; a few counters, never text.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Generated {
    /// Tokens of content, reasoning, refusal and tool-call argument text.
    pub text_tokens: u64,
    /// Tokens of reasoning text among them.
    pub reasoning_tokens: u64,
    /// Tool calls started (OpenAI formats).
    pub tool_calls: u64,
    /// Tokens of those calls' function names, each as `.NAME` (see [`tools::call_tokens`]).
    pub tool_name_tokens: u64,
}

impl Generated {
    /// Adds another event's tally.
    pub fn add(&mut self, other: Generated) {
        self.text_tokens += other.text_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.tool_calls += other.tool_calls;
        self.tool_name_tokens += other.tool_name_tokens;
    }

    /// Estimated output tokens: the text plus the framing `template` writes around it and around
    /// tool calls; reasoning as counted (clamped to the completion).
    pub fn output(&self, template: Template) -> OutputTokens {
        let completion_tokens = template.completion_tokens(self);
        OutputTokens {
            completion_tokens,
            reasoning_tokens: self.reasoning_tokens.min(completion_tokens),
        }
    }
}

/// Estimated output tokens of a whole JSON response body answered by `model`.
pub fn output_tokens(format: Format, model: Option<&str>, body: &[u8]) -> OutputTokens {
    generated(format, body).output(Template::of(format, model))
}

/// The generated output one stream event (or a whole JSON body) carries: content, reasoning and
/// tool-call argument text, and tool calls started, per the wire format.
pub fn generated(format: Format, doc: &[u8]) -> Generated {
    let Ok(value) = serde_json::from_slice::<Value>(doc) else {
        return Generated::default();
    };
    let mut out = Pieces::default();
    match format {
        Format::Chat => {
            for choice in value["choices"].as_array().into_iter().flatten() {
                for part in [&choice["delta"], &choice["message"]] {
                    out.texts.extend(part["content"].as_str());
                    out.texts.extend(part["refusal"].as_str());
                    out.thoughts.extend(part["reasoning"].as_str());
                    for call in part["tool_calls"].as_array().into_iter().flatten() {
                        out.texts.extend(call["function"]["arguments"].as_str());
                        out.names.extend(call["function"]["name"].as_str());
                    }
                }
            }
        }
        Format::Responses => {
            let kind = value["type"].as_str().unwrap_or("");
            if kind.ends_with(".delta") {
                let delta = value["delta"].as_str();
                match kind.contains("reasoning") {
                    true => out.thoughts.extend(delta),
                    false => out.texts.extend(delta),
                }
            }
            // A function call starts with its item (stream); a whole body lists its output.
            let items = value["output"].as_array().into_iter().flatten();
            let added = (kind == "response.output_item.added").then_some(&value["item"]);
            for item in items.chain(added) {
                let reasoning = item["type"] == "reasoning";
                if item["type"] == "function_call" {
                    out.names.extend(item["name"].as_str());
                    out.texts.extend(item["arguments"].as_str());
                }
                for key in ["content", "summary"] {
                    for part in item[key].as_array().into_iter().flatten() {
                        match reasoning {
                            true => out.thoughts.extend(part["text"].as_str()),
                            false => out.texts.extend(part["text"].as_str()),
                        }
                    }
                }
            }
        }
        Format::Anthropic => {
            // A stream event's `delta`, or a whole body's `content` blocks.
            let blocks = value["content"].as_array().into_iter().flatten();
            for block in blocks.chain([&value["delta"]]) {
                out.texts.extend(block["text"].as_str());
                out.texts.extend(block["partial_json"].as_str());
                out.thoughts.extend(block["thinking"].as_str());
                if block["type"] == "tool_use" {
                    out.owned.push(block["input"].to_string());
                }
            }
        }
        // Embeddings generate no text; images no text we could count.
        Format::Embeddings
        | Format::GeminiEmbeddings
        | Format::Images
        | Format::Transcription
        | Format::Speech => {}
        Format::Gemini => {
            for candidate in value["candidates"].as_array().into_iter().flatten() {
                for part in candidate["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    match part["thought"] == true {
                        true => out.thoughts.extend(part["text"].as_str()),
                        false => out.texts.extend(part["text"].as_str()),
                    }
                    if let Some(args) = part["functionCall"].get("args") {
                        out.owned.push(args.to_string());
                    }
                }
            }
        }
    }
    out.count()
}

/// The pieces of generated text one document carries, borrowed where they are plain strings.
#[derive(Default)]
struct Pieces<'a> {
    texts: Vec<&'a str>,
    /// Reasoning text.
    thoughts: Vec<&'a str>,
    /// Tool inputs the document carries as JSON objects, as the model wrote them.
    owned: Vec<String>,
    /// Names of the tool calls started.
    names: Vec<&'a str>,
}

impl Pieces<'_> {
    fn count(&self) -> Generated {
        let tokens = |texts: &[&str]| texts.iter().map(|text| count_text(text)).sum::<u64>();
        let reasoning_tokens = tokens(&self.thoughts);
        let owned_tokens: u64 = self.owned.iter().map(|text| count_text(text)).sum();
        Generated {
            text_tokens: tokens(&self.texts) + owned_tokens + reasoning_tokens,
            reasoning_tokens,
            tool_calls: self.names.len() as u64,
            tool_name_tokens: self
                .names
                .iter()
                .map(|name| count_text(&format!(".{name}")))
                .sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_o200k() {
        assert_eq!(count_text("Hello, world!"), 4);
        assert_eq!(count_text(""), 0);
    }

    #[test]
    fn chat_prompt_adds_per_message_overhead() {
        // 3 per message + "user" (1) + "Who are you" (3) + 3 priming. (o3 itself reported 9.)
        let body = br#"{"messages":[{"content":"Who are you","role":"user"}],"model":"openai/o3","stream":true}"#;
        assert_eq!(prompt_tokens(Format::Chat, body), Some(10));
    }

    fn completion_tokens(format: Format, body: &[u8]) -> u64 {
        output_tokens(format, None, body).completion_tokens
    }

    #[test]
    fn completion_text_per_format() {
        assert_eq!(
            completion_tokens(
                Format::Chat,
                br#"{"choices":[{"delta":{"content":"Hello, world!"}}]}"#
            ),
            4
        );
        assert_eq!(
            completion_tokens(
                Format::Responses,
                br#"{"type":"response.output_text.delta","delta":"Hello, world!"}"#
            ),
            4
        );
        assert_eq!(completion_tokens(Format::Anthropic, br#"{"type":"content_block_delta","delta":{"type":"text_delta","text":"Hello, world!"}}"#), 4);
        assert_eq!(
            completion_tokens(
                Format::Gemini,
                br#"{"candidates":[{"content":{"parts":[{"text":"Hello, world!"}]}}]}"#
            ),
            4
        );
        assert_eq!(completion_tokens(Format::Chat, b"not json"), 0);
    }

    #[test]
    fn reasoning_is_counted_apart_within_the_completion() {
        let chat = br#"{"choices":[{"delta":{"reasoning":"Hello, world!","content":"Hi"}}]}"#;
        let responses = br#"{"type":"response.reasoning_text.delta","delta":"Hello, world!"}"#;
        let anthropic = br#"{"type":"content_block_delta","delta":{"type":"thinking_delta","thinking":"Hello, world!"}}"#;
        let gemini = br#"{"candidates":[{"content":{"parts":[{"text":"Hello, world!","thought":true},{"text":"Hi"}]}}]}"#;
        for (format, body, completion) in [
            (Format::Chat, &chat[..], 5),
            (Format::Responses, &responses[..], 4),
            (Format::Anthropic, &anthropic[..], 4),
            (Format::Gemini, &gemini[..], 5),
        ] {
            let output = output_tokens(format, None, body);
            assert_eq!(output.completion_tokens, completion, "{format:?}");
            assert_eq!(output.reasoning_tokens, 4, "{format:?}");
        }
    }

    #[test]
    fn whole_anthropic_bodies_count_their_content_blocks() {
        let body = br#"{"type":"message","content":[{"type":"thinking","thinking":"Hello, world!"},{"type":"text","text":"Hello, world!"},{"type":"tool_use","name":"f","input":{"a":1}}]}"#;
        let output = output_tokens(Format::Anthropic, None, body);
        assert_eq!(output.reasoning_tokens, 4);
        assert_eq!(output.completion_tokens, 4 + 4 + count_text(r#"{"a":1}"#));
    }
}
