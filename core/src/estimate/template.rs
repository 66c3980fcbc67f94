//! Chat templates: the tokens a model family's prompt format adds around the request's messages,
//! and its output format around the generated text. Only counts; nothing is kept.
//!
//! Two families have public formats: OpenAI's chat models (`<|im_start|>ROLE<|im_sep|>TEXT<|im_end|>`
//! per message, function tools as a `namespace functions` block, see [`super::tools`]) and the
//! open-weight gpt-oss models, which read OpenAI's harmony format (a fixed system message,
//! instructions and tools in a developer message, the output in `analysis` and `final` channels;
//! openai/harmony `docs/format.md`). Anthropic's and Gemini's framing is not public: for their
//! wire formats only the text is counted.

use alloc::format;

use serde_json::Value;

use super::{count_text, tools, Generated};
use crate::usage::Format;

/// How a model family frames a conversation in tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Template {
    /// OpenAI chat models (GPT-4o, GPT-4.1, GPT-5, o-series); the default for OpenAI-style APIs.
    OpenAiChat,
    /// gpt-oss models: the harmony format.
    Harmony,
    /// Anthropic Messages and Gemini: the text alone.
    Unframed,
}

/// Special tokens around each message: start, the header/content separator, end.
const MESSAGE_FRAME: u64 = 3;

/// `<|im_start|>assistant<|im_sep|>`: the tokens that prime an OpenAI chat reply.
const OPENAI_REPLY_PRIMING: u64 = 3;

/// `<|start|>assistant`: the tokens that prime a harmony reply.
const HARMONY_REPLY_PRIMING: u64 = 2;

/// A harmony output channel's header, `<|channel|>NAME<|message|>`.
const HARMONY_CHANNEL_HEADER: u64 = 3;

/// `<|end|>` closing a harmony message, or `<|return|>` closing the reply: one special token.
const HARMONY_MESSAGE_END: u64 = 1;

/// Harmony's system message, with the reasoning effort to fill in. The date is the conversation's
/// (any `YYYY-MM-DD` is 6 tokens); the knowledge cutoff is the models'.
const HARMONY_SYSTEM: &str = "You are ChatGPT, a large language model trained by OpenAI.\n\
                              Knowledge cutoff: 2024-06\nCurrent date: 2025-06-28\n\nReasoning: ";
const HARMONY_CHANNELS: &str =
    "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message.";
/// The system message's line when the developer message defines functions.
const HARMONY_FUNCTIONS_NOTE: &str =
    "\nCalls to these tools must go to the commentary channel: 'functions'.";
/// The developer message's heading before the request's instructions.
const HARMONY_INSTRUCTIONS: &str = "# Instructions\n\n";
/// The developer message's heading before the functions block.
const HARMONY_TOOLS: &str = "\n\n# Tools\n\n## functions\n\n";

impl Template {
    /// The template for a wire format and the model named in the request (or response).
    pub fn of(format: Format, model: Option<&str>) -> Template {
        match format {
            Format::Anthropic
            | Format::Gemini
            | Format::Embeddings
            | Format::GeminiEmbeddings
            | Format::Images
            | Format::Transcription
            | Format::Speech => Template::Unframed,
            Format::Chat | Format::Responses if model.is_some_and(|m| m.contains("gpt-oss")) => {
                Template::Harmony
            }
            Format::Chat | Format::Responses => Template::OpenAiChat,
        }
    }

    /// Tokens the prompt format adds to the text of `messages` messages (each message's role and
    /// content text are counted by the caller): message frames, reply priming, tools, and any
    /// fixed system message.
    pub fn prompt_overhead(self, doc: &Value, messages: u64) -> u64 {
        match self {
            Template::OpenAiChat => {
                MESSAGE_FRAME * messages + OPENAI_REPLY_PRIMING + tools::prompt_tokens(doc)
            }
            Template::Harmony => {
                MESSAGE_FRAME * messages + HARMONY_REPLY_PRIMING + harmony_preamble(doc)
            }
            Template::Unframed => 0,
        }
    }

    /// Completion tokens of the output seen so far: its text plus the format's framing.
    pub fn completion_tokens(self, output: &Generated) -> u64 {
        let calls = tools::call_tokens(output.tool_calls, output.tool_name_tokens);
        match self {
            Template::OpenAiChat => output.text_tokens + calls,
            Template::Harmony => {
                // `<|channel|>final<|message|>…<|return|>`, after
                // `<|channel|>analysis<|message|>…<|end|><|start|>assistant` when it reasoned.
                let analysis = if output.reasoning_tokens > 0 {
                    HARMONY_CHANNEL_HEADER + HARMONY_MESSAGE_END + HARMONY_REPLY_PRIMING
                } else {
                    0
                };
                let answer = HARMONY_CHANNEL_HEADER + HARMONY_MESSAGE_END;
                output.text_tokens + calls + analysis + answer
            }
            Template::Unframed => output.text_tokens,
        }
    }
}

/// Tokens of what harmony puts before the request's own messages: the system message, and the
/// developer message's headings (the instructions themselves are counted as a message).
fn harmony_preamble(doc: &Value) -> u64 {
    let effort = doc["reasoning"]["effort"]
        .as_str()
        .or(doc["reasoning_effort"].as_str())
        .unwrap_or("medium");
    let functions = tools::render(doc);
    let note = if functions.is_some() {
        HARMONY_FUNCTIONS_NOTE
    } else {
        ""
    };
    let system = MESSAGE_FRAME
        + count_text("system")
        + count_text(&format!("{HARMONY_SYSTEM}{effort}{HARMONY_CHANNELS}{note}"));
    let has_instructions = super::has_instructions(doc);
    let instructions = if has_instructions {
        count_text(HARMONY_INSTRUCTIONS)
    } else {
        0
    };
    let tools = match functions {
        // Without instructions, the functions need a developer message of their own.
        Some(block) => {
            let own_message = if has_instructions {
                0
            } else {
                MESSAGE_FRAME + count_text("developer")
            };
            own_message + count_text(HARMONY_TOOLS) + count_text(&block)
        }
        None => 0,
    };
    system + instructions + tools
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gpt_oss_reads_harmony_and_others_their_own() {
        assert_eq!(
            Template::of(Format::Responses, Some("openai/gpt-oss-20b")),
            Template::Harmony
        );
        assert_eq!(
            Template::of(Format::Chat, Some("gpt-oss-120b")),
            Template::Harmony
        );
        assert_eq!(
            Template::of(Format::Chat, Some("gpt-4o")),
            Template::OpenAiChat
        );
        assert_eq!(Template::of(Format::Chat, None), Template::OpenAiChat);
        assert_eq!(
            Template::of(Format::Anthropic, Some("claude-sonnet-4-5")),
            Template::Unframed
        );
    }

    #[test]
    fn harmony_prompt_is_the_system_message_then_the_messages() {
        // <|start|>system<|message|>{57 tokens}<|end|> before the messages; <|start|>assistant after.
        let doc = json!({"model": "openai/gpt-oss-20b", "input": []});
        assert_eq!(Template::Harmony.prompt_overhead(&doc, 0), 3 + 1 + 57 + 2);
        let high = json!({"reasoning": {"effort": "high"}});
        assert_eq!(Template::Harmony.prompt_overhead(&high, 0), 3 + 1 + 57 + 2);
    }

    #[test]
    fn harmony_instructions_and_tools_go_to_a_developer_message() {
        let instructions = json!({"instructions": "Be brief."});
        let plain = Template::Harmony.prompt_overhead(&json!({}), 1);
        assert_eq!(
            Template::Harmony.prompt_overhead(&instructions, 1),
            plain + count_text(HARMONY_INSTRUCTIONS)
        );
        let tools = json!({"tools": [{"type": "function", "name": "f", "parameters": {}}]});
        let block = tools::render(&tools).unwrap();
        let system =
            |note: &str| count_text(&format!("{HARMONY_SYSTEM}medium{HARMONY_CHANNELS}{note}"));
        assert_eq!(
            Template::Harmony.prompt_overhead(&tools, 1),
            plain - system("")
                + system(HARMONY_FUNCTIONS_NOTE)
                + MESSAGE_FRAME
                + count_text("developer")
                + count_text(HARMONY_TOOLS)
                + count_text(&block)
        );
    }

    #[test]
    fn harmony_output_adds_its_channels() {
        let answer = Generated {
            text_tokens: 5,
            ..Generated::default()
        };
        assert_eq!(Template::Harmony.completion_tokens(&answer), 5 + 4);
        let reasoned = Generated {
            text_tokens: 30,
            reasoning_tokens: 25,
            ..Generated::default()
        };
        assert_eq!(Template::Harmony.completion_tokens(&reasoned), 30 + 10);
        assert_eq!(Template::OpenAiChat.completion_tokens(&reasoned), 30);
        assert_eq!(Template::Unframed.completion_tokens(&reasoned), 30);
    }
}
