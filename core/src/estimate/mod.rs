//! Token estimates for calls that end without usage (client abort, truncated stream, an upstream
//! that omits it): prompt tokens from the request, completion tokens from the streamed text.
//!
//! Counting uses tiktoken's `o200k_base` (the GPT-4o / GPT-4.1 / GPT-5 / o-series vocabulary), the
//! only encoding bundled; other vendors' models are approximated with it. Streamed text is counted
//! delta by delta and never kept. Chat prompts add OpenAI's per-message overhead (3 tokens per
//! message, 3 to prime the reply) and function tools as OpenAI renders them ([`tools`]); images,
//! server-side tools and provider system prompts are not counted.

use alloc::format;
use alloc::vec::Vec;

use serde_json::Value;

use crate::usage::Format;

pub mod tools;

/// Tokens in `text` (o200k_base, no special tokens).
pub fn count_text(text: &str) -> u64 {
    tiktoken_rs::o200k_base_singleton()
        .encode_ordinary(text)
        .len() as u64
}

/// Estimated prompt tokens of a request body, or `None` if it is not JSON.
pub fn prompt_tokens(format: Format, body: &[u8]) -> Option<u64> {
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
    let overhead = match format {
        Format::Chat | Format::Responses => 3 * messages + 3 + tools::prompt_tokens(&doc),
        Format::Anthropic | Format::Gemini => 0,
    };
    Some(text_tokens + overhead)
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
    /// Tool calls started (OpenAI formats).
    pub tool_calls: u64,
    /// Tokens of those calls' function names, each as `.NAME` (see [`tools::call_tokens`]).
    pub tool_name_tokens: u64,
}

impl Generated {
    /// Adds another event's tally.
    pub fn add(&mut self, other: Generated) {
        self.text_tokens += other.text_tokens;
        self.tool_calls += other.tool_calls;
        self.tool_name_tokens += other.tool_name_tokens;
    }

    /// Estimated completion tokens: the text plus the tool calls as the model writes them.
    pub fn tokens(&self) -> u64 {
        self.text_tokens + tools::call_tokens(self.tool_calls, self.tool_name_tokens)
    }
}

/// Estimated completion tokens of a whole JSON response body.
pub fn completion_tokens(format: Format, body: &[u8]) -> u64 {
    generated(format, body).tokens()
}

/// The generated output one stream event (or a whole JSON body) carries: content, reasoning and
/// tool-call argument text, and tool calls started, per the wire format.
pub fn generated(format: Format, doc: &[u8]) -> Generated {
    let Ok(value) = serde_json::from_slice::<Value>(doc) else {
        return Generated::default();
    };
    let mut texts: Vec<&str> = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    match format {
        Format::Chat => {
            for choice in value["choices"].as_array().into_iter().flatten() {
                for part in [&choice["delta"], &choice["message"]] {
                    for key in ["content", "reasoning", "refusal"] {
                        texts.extend(part[key].as_str());
                    }
                    for call in part["tool_calls"].as_array().into_iter().flatten() {
                        texts.extend(call["function"]["arguments"].as_str());
                        names.extend(call["function"]["name"].as_str());
                    }
                }
            }
        }
        Format::Responses => {
            let kind = value["type"].as_str().unwrap_or("");
            if kind.ends_with(".delta") {
                texts.extend(value["delta"].as_str());
            }
            // A function call starts with its item (stream); a whole body lists its output.
            let items = value["output"].as_array().into_iter().flatten();
            let added = (kind == "response.output_item.added").then_some(&value["item"]);
            for item in items.chain(added) {
                if item["type"] == "function_call" {
                    names.extend(item["name"].as_str());
                    texts.extend(item["arguments"].as_str());
                }
                for part in item["content"].as_array().into_iter().flatten() {
                    texts.extend(part["text"].as_str());
                }
            }
        }
        Format::Anthropic => {
            let delta = &value["delta"];
            for key in ["text", "thinking", "partial_json"] {
                texts.extend(delta[key].as_str());
            }
        }
        Format::Gemini => {
            for candidate in value["candidates"].as_array().into_iter().flatten() {
                for part in candidate["content"]["parts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    texts.extend(part["text"].as_str());
                }
            }
        }
    }
    Generated {
        text_tokens: texts.iter().map(|t| count_text(t)).sum(),
        tool_calls: names.len() as u64,
        tool_name_tokens: names
            .iter()
            .map(|name| count_text(&format!(".{name}")))
            .sum(),
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
}
