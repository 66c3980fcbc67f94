//! Audio: OpenAI `POST …/audio/transcriptions` and `…/audio/translations` (speech to text) and
//! `…/audio/speech` (text to speech).
//!
//! - Transcriptions answer JSON (`json`, `verbose_json`) with a `usage` of one of two types
//!   (OpenAI's `Transcription.usage`): `{"type": "tokens", "input_tokens": 14,
//!   "input_token_details": {"text_tokens": 0, "audio_tokens": 14}, "output_tokens": 45,
//!   "total_tokens": 59}` (gpt-4o-transcribe, gpt-4o-mini-transcribe: audio input at `audio`, text
//!   input at `prompt`, output at `completion`), or `{"type": "duration", "seconds": 9}`
//!   (whisper-1: the input audio's length, at `audio_second` per second). A stream
//!   (`stream=true`) ends with a `transcript.text.done` event carrying the same `usage`. The answer
//!   names no model: the request's form field does. Without `input_token_details`, the input is
//!   the audio (a text `prompt` is optional): all input tokens are audio tokens. `seconds` is a
//!   JSON number: kept in whole milliseconds, any finer part rounded up.
//! - A `verbose_json` answer also carries the audio's length as a top-level `duration` (seconds,
//!   a JSON number; openai-python's `TranscriptionVerbose.duration` and
//!   `TranslationVerbose.duration`). Translations carry no `usage` at all, so for a whisper-1
//!   `verbose_json` translation that `duration` is what is billed, per second as above; where a
//!   `usage` is present it wins.
//! - `text`, `srt` and `vtt` answers are plain text without usage, and so are `json`
//!   translations: `usage_not_reported` (decided in `crate::call`).
//! - Speech answers are audio bytes, never read: tts-1 and tts-1-hd bill the request's `input`
//!   per character ([`input_characters`]: Unicode scalar values, as LiteLLM counts `len(input)`;
//!   OpenAI does not say more than "characters"). gpt-4o-mini-tts bills tokens, which only its
//!   SSE answer (`stream_format: "sse"`) reports ([`parse_speech`]): `speech.audio.delta` events
//!   carry base64 audio (skipped, never kept), the last, `speech.audio.done`, `{"type":
//!   "speech.audio.done", "usage": {"input_tokens": 14, "output_tokens": 101, "total_tokens":
//!   115}}` (the OpenAI API reference's `SpeechAudioDoneEvent`): the input is the text (at
//!   `prompt`), the output audio (at `audio_out`).
//!
//! Not here: reading the form (`crate::form`), which prices apply (`crate::pricing`).

use serde::Deserialize;

use super::{ErrorObject, Facts, Report, Usage};

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(default, borrow)]
    usage: Option<AudioUsage<'a>>,
    /// `verbose_json`: the input audio's length in seconds.
    #[serde(default, borrow)]
    duration: Option<&'a serde_json::value::RawValue>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct AudioUsage<'a> {
    #[serde(default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    input_token_details: Option<InputDetails>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default, borrow)]
    seconds: Option<&'a serde_json::value::RawValue>,
}

#[derive(Deserialize)]
struct InputDetails {
    #[serde(default)]
    audio_tokens: Option<u64>,
}

impl AudioUsage<'_> {
    fn normalise(self) -> Report {
        if self.kind == Some("duration") || (self.kind.is_none() && self.seconds.is_some()) {
            return duration_report(self.seconds);
        }
        let prompt = self.input_tokens.unwrap_or(0);
        let audio = match self.input_token_details {
            Some(d) => d.audio_tokens.unwrap_or(0),
            None => prompt,
        };
        if audio > prompt {
            return Report::Overflow;
        }
        Report::Complete(Usage {
            prompt_tokens: prompt,
            completion_tokens: self.output_tokens.unwrap_or(0),
            audio_prompt_tokens: audio,
            ..Usage::default()
        })
    }
}

/// A length of audio in seconds as usage; an absurd answer (absent, not a plain non-negative
/// number, too large) is [`Report::Overflow`].
fn duration_report(seconds: Option<&serde_json::value::RawValue>) -> Report {
    match seconds.map(|s| milliseconds(s.get())) {
        Some(Some(ms)) => Report::Complete(Usage {
            audio_duration_ms: ms,
            ..Usage::default()
        }),
        _ => Report::Overflow,
    }
}

/// A JSON number of seconds (`9`, `9.5`, `12.0001`) in whole milliseconds, rounded up; `None`
/// for anything else (negative, exponent, overflow).
fn milliseconds(text: &str) -> Option<u64> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let mut ms = whole.parse::<u64>().ok()?.checked_mul(1000)?;
    let (first3, rest) = frac.split_at(frac.len().min(3));
    let mut part: u64 = 0;
    for i in 0..3 {
        let digit = first3.as_bytes().get(i).map_or(0, |b| u64::from(b - b'0'));
        part = part * 10 + digit;
    }
    ms = ms.checked_add(part)?;
    if rest.bytes().any(|b| b != b'0') {
        ms = ms.checked_add(1)?;
    }
    Some(ms)
}

/// Parses a transcription or translation body, or one event of its stream (the text is skipped,
/// never kept). Errors only when it is not JSON of an object.
pub fn parse_transcription(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: Doc<'_> = serde_json::from_slice(bytes)?;
    // A whole `verbose_json` body without `usage` (translations) bills its `duration`.
    let duration = match (doc.kind, doc.duration) {
        (None, Some(seconds)) => Some(duration_report(Some(seconds))),
        _ => None,
    };
    Ok(Facts {
        model: None,
        usage: doc.usage.map(AudioUsage::normalise).or(duration),
        usage_only: false,
        error: doc.error.map(|e| e.reason()),
        // A whole body has no `type`; a stream ends with `transcript.text.done`.
        end: matches!(doc.kind, None | Some("transcript.text.done")),
    })
}

#[derive(Deserialize)]
struct SpeechEvent<'a> {
    #[serde(default, rename = "type")]
    kind: Option<&'a str>,
    #[serde(default)]
    usage: Option<SpeechUsage>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct SpeechUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
}

/// Parses one event of a speech stream (`stream_format: "sse"`), or a speech error body. The
/// audio of a `speech.audio.delta` is skipped, never kept. Errors only when it is not JSON of an
/// object.
pub fn parse_speech(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let event: SpeechEvent<'_> = serde_json::from_slice(bytes)?;
    Ok(Facts {
        model: None,
        usage: event.usage.map(|u| {
            let output = u.output_tokens.unwrap_or(0);
            // All output is audio: gpt-4o-mini-tts answers nothing else.
            Report::Complete(Usage {
                prompt_tokens: u.input_tokens.unwrap_or(0),
                completion_tokens: output,
                audio_completion_tokens: output,
                ..Usage::default()
            })
        }),
        usage_only: false,
        error: event.error.map(|e| e.reason()),
        end: event.kind == Some("speech.audio.done"),
    })
}

/// The number of characters (Unicode scalar values) of a speech request's `input` (its raw JSON
/// value, as the request rewrite found it: `crate::rewrite::RequestFacts::input_characters`);
/// `None` when it is not a string.
pub fn input_characters(input: &serde_json::value::RawValue) -> Option<u64> {
    let text: alloc::string::String = serde_json::from_str(input.get()).ok()?;
    Some(text.chars().count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(body: &str) -> Usage {
        match parse_transcription(body.as_bytes()).unwrap().usage {
            Some(Report::Complete(u)) => u,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn token_usage_splits_audio_and_text_input() {
        // OpenAI's documented `Transcription` shape: a documented-shape fake.
        let u = usage(
            r#"{"text":"Imagine the wildest idea.","usage":{"type":"tokens","input_tokens":14,
            "input_token_details":{"text_tokens":4,"audio_tokens":10},"output_tokens":45,"total_tokens":59}}"#,
        );
        assert_eq!(
            (u.prompt_tokens, u.audio_prompt_tokens, u.completion_tokens),
            (14, 10, 45)
        );
        let u =
            usage(r#"{"text":"x","usage":{"type":"tokens","input_tokens":7,"output_tokens":2}}"#);
        assert_eq!((u.prompt_tokens, u.audio_prompt_tokens), (7, 7));
    }

    #[test]
    fn duration_usage_is_kept_in_milliseconds_rounded_up() {
        let u = usage(r#"{"text":"x","usage":{"type":"duration","seconds":9}}"#);
        assert_eq!((u.audio_duration_ms, u.prompt_tokens), (9000, 0));
        assert_eq!(milliseconds("9.5"), Some(9500));
        assert_eq!(milliseconds("0.0001"), Some(1));
        assert_eq!(milliseconds("12.3450"), Some(12345));
        assert_eq!(milliseconds("1e3"), None);
        assert_eq!(milliseconds("-1"), None);
        assert_eq!(milliseconds("99999999999999999999"), None);
        let facts = parse_transcription(br#"{"usage":{"type":"duration","seconds":"9"}}"#).unwrap();
        assert_eq!(facts.usage, Some(Report::Overflow));
    }

    #[test]
    fn a_stream_ends_with_the_done_event_and_its_usage() {
        let delta =
            parse_transcription(br#"{"type":"transcript.text.delta","delta":"I"}"#).unwrap();
        assert!(!delta.end && delta.usage.is_none());
        let done = parse_transcription(
            br#"{"type":"transcript.text.done","text":"I see.","usage":{"type":"tokens","input_tokens":3,"input_token_details":{"text_tokens":0,"audio_tokens":3},"output_tokens":2,"total_tokens":5}}"#,
        )
        .unwrap();
        assert!(done.end);
        assert!(matches!(
            done.usage,
            Some(Report::Complete(Usage {
                prompt_tokens: 3,
                ..
            }))
        ));
    }

    #[test]
    fn an_answer_without_usage_has_none_and_errors_keep_their_code() {
        let facts = parse_transcription(br#"{"text":"Hello."}"#).unwrap();
        assert!(facts.usage.is_none() && facts.end);
        let facts = parse_transcription(
            br#"{"error":{"message":"secret","type":"invalid_request_error","code":"audio_too_short"}}"#,
        )
        .unwrap();
        assert_eq!(facts.error.as_deref(), Some("audio_too_short"));
    }

    #[test]
    fn a_verbose_json_duration_is_billed_when_there_is_no_usage() {
        // openai-python's `TranslationVerbose`: `duration` (float seconds), no `usage`.
        let u = usage(
            r#"{"task":"translate","language":"english","duration":8.470000267028809,"text":"x","segments":[]}"#,
        );
        assert_eq!((u.audio_duration_ms, u.prompt_tokens), (8471, 0));
        // With a `usage` (a `TranscriptionVerbose`), the usage wins.
        let u = usage(r#"{"duration":8.47,"text":"x","usage":{"type":"duration","seconds":9}}"#);
        assert_eq!(u.audio_duration_ms, 9000);
        let facts = parse_transcription(br#"{"duration":-1,"text":"x"}"#).unwrap();
        assert_eq!(facts.usage, Some(Report::Overflow));
        // A stream event's `duration` (none is documented) is not usage.
        let facts =
            parse_transcription(br#"{"type":"transcript.text.delta","duration":3}"#).unwrap();
        assert_eq!(facts.usage, None);
    }

    #[test]
    fn a_speech_stream_reports_its_tokens_in_the_done_event() {
        let delta =
            parse_speech(br#"{"type":"speech.audio.delta","audio":"SUQzBAAAAAAA"}"#).unwrap();
        assert!(!delta.end && delta.usage.is_none() && delta.error.is_none());
        let done = parse_speech(
            br#"{"type":"speech.audio.done","usage":{"input_tokens":14,"output_tokens":101,"total_tokens":115}}"#,
        )
        .unwrap();
        assert!(done.end);
        let Some(Report::Complete(u)) = done.usage else {
            panic!("{:?}", done.usage);
        };
        assert_eq!(
            (
                u.prompt_tokens,
                u.completion_tokens,
                u.audio_completion_tokens
            ),
            (14, 101, 101)
        );
        let err = parse_speech(br#"{"error":{"message":"secret","type":"server_error"}}"#).unwrap();
        assert_eq!(err.error.as_deref(), Some("server_error"));
        assert!(parse_speech(b"[1]").is_err());
    }

    #[test]
    fn speech_input_counts_unicode_scalar_values() {
        // The request rewrite hands the `input` over: what a speech body counts, end to end.
        let input_characters = |body: &[u8]| {
            crate::rewrite::rewrite(
                body,
                crate::provider::Provider::OpenAi,
                crate::provider::Endpoint::AudioSpeech,
            )
            .ok()
            .and_then(|r| r.facts.input_characters)
        };
        assert_eq!(
            input_characters(br#"{"model":"tts-1","input":"Hello world!","voice":"alloy"}"#),
            Some(12)
        );
        // "héllo 👋": é is one character, the emoji one (two UTF-16 units, four bytes).
        assert_eq!(
            input_characters("{\"input\":\"h\\u00e9llo \u{1F44B}\"}".as_bytes()),
            Some(7)
        );
        assert_eq!(input_characters(br#"{"model":"tts-1"}"#), None);
        assert_eq!(input_characters(b"not json"), None);
        assert_eq!(input_characters(br#"{"model":"tts-1","input":7}"#), None);
        // Other endpoints' `input` (the Responses API's) is not counted.
        let responses = crate::rewrite::rewrite(
            br#"{"model":"gpt-5","input":"Hello"}"#,
            crate::provider::Provider::OpenAi,
            crate::provider::Endpoint::Responses,
        )
        .unwrap();
        assert_eq!(responses.facts.input_characters, None);
    }
}
