//! Anthropic Messages (`/v1/messages`): `usage` on the body; in a stream, `message_start`
//! (`message.usage`, `message.model`) then `message_delta` usage whose values are cumulative —
//! they replace, never add to, the earlier ones.
//!
//! `input_tokens` excludes cache tokens, so prompt = input + cache_read + cache_creation;
//! cache reads are `cached_tokens`, cache creation `cache_write_tokens`, of which
//! `cache_creation.ephemeral_1h_input_tokens` are `cache_write_1h_tokens` (priced at the 1-hour
//! write price; the rest, and a total without the split, at the 5-minute price);
//! `usage.service_tier` (`standard`, `priority`, `batch`) is the tier that served the call; `output_tokens_details.thinking_tokens` is reasoning (⊂ output);
//! `server_tool_use.web_search_requests` are web searches, priced at the `web_search` price.
//! With compaction, `usage.iterations[]` lists every sampling pass of the request and the top-level
//! fields only the last: the billed total is the sum of the iterations, which is what we report.

use alloc::{string::String, vec::Vec};

use serde::Deserialize;

use super::{ErrorObject, Facts, Report, Usage};
use crate::service_tier::ServiceTier;

/// Anthropic's raw counters, each optional because stream events carry only some of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// `input_tokens` (uncached input).
    pub input: Option<u64>,
    /// `output_tokens`.
    pub output: Option<u64>,
    /// `cache_read_input_tokens`.
    pub cache_read: Option<u64>,
    /// `cache_creation_input_tokens`.
    pub cache_creation: Option<u64>,
    /// `output_tokens_details.thinking_tokens`.
    pub thinking: Option<u64>,
    /// `server_tool_use.web_search_requests`.
    pub web_searches: Option<u64>,
    /// `cache_creation.ephemeral_1h_input_tokens`.
    pub cache_creation_1h: Option<u64>,
    /// `service_tier`.
    pub service_tier: Option<ServiceTier>,
}

impl Counts {
    /// `later`'s fields replace ours where present (stream usage is cumulative).
    pub fn overlay(self, later: Counts) -> Counts {
        Counts {
            input: later.input.or(self.input),
            output: later.output.or(self.output),
            cache_read: later.cache_read.or(self.cache_read),
            cache_creation: later.cache_creation.or(self.cache_creation),
            thinking: later.thinking.or(self.thinking),
            web_searches: later.web_searches.or(self.web_searches),
            cache_creation_1h: later.cache_creation_1h.or(self.cache_creation_1h),
            service_tier: later.service_tier.or(self.service_tier),
        }
    }

    /// The normalised usage; `None` when prompt = input + cache read + cache write does not fit
    /// in 64 bits (absurd upstream counts: an error, never a wrapped number).
    pub fn normalise(self) -> Option<Usage> {
        let (input, cache_read, cache_creation) = (
            self.input.unwrap_or(0),
            self.cache_read.unwrap_or(0),
            self.cache_creation.unwrap_or(0),
        );
        Some(Usage {
            prompt_tokens: input.checked_add(cache_read)?.checked_add(cache_creation)?,
            completion_tokens: self.output.unwrap_or(0),
            cached_tokens: cache_read,
            cache_write_tokens: cache_creation,
            cache_write_1h_tokens: self.cache_creation_1h.unwrap_or(0).min(cache_creation),
            reasoning_tokens: self.thinking.unwrap_or(0),
            web_search_requests: self.web_searches.unwrap_or(0),
            service_tier: self.service_tier,
            ..Usage::default()
        })
    }
}

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default, borrow)]
    error: Option<ErrorObject<'a>>,
}

#[derive(Deserialize)]
struct Message {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<RawUsage>,
}

#[derive(Deserialize, Default)]
struct RawUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens_details: Option<OutputDetails>,
    #[serde(default)]
    iterations: Option<Vec<RawUsage>>,
    #[serde(default)]
    server_tool_use: Option<ServerToolUse>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
    #[serde(default)]
    service_tier: Option<String>,
}

/// The cache writes by time to live.
#[derive(Deserialize, Default)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize, Default)]
struct ServerToolUse {
    #[serde(default)]
    web_search_requests: Option<u64>,
}

#[derive(Deserialize, Default)]
struct OutputDetails {
    #[serde(default)]
    thinking_tokens: Option<u64>,
}

impl RawUsage {
    /// The counts; `None` when the iterations' sum does not fit in 64 bits.
    fn counts(self) -> Option<Counts> {
        let own = Counts {
            input: self.input_tokens,
            output: self.output_tokens,
            cache_read: self.cache_read_input_tokens,
            cache_creation: self.cache_creation_input_tokens,
            thinking: self.output_tokens_details.and_then(|d| d.thinking_tokens),
            web_searches: self.server_tool_use.and_then(|s| s.web_search_requests),
            cache_creation_1h: self
                .cache_creation
                .and_then(|c| c.ephemeral_1h_input_tokens),
            service_tier: self.service_tier.as_deref().map(ServiceTier::from_wire),
        };
        match self.iterations {
            Some(iterations) if !iterations.is_empty() => {
                let add = |sum: Option<u64>, more: Option<u64>| {
                    sum.unwrap_or(0).checked_add(more.unwrap_or(0))
                };
                let mut sum = Counts {
                    input: Some(0),
                    output: Some(0),
                    cache_read: Some(0),
                    cache_creation: Some(0),
                    cache_creation_1h: Some(0),
                    ..own
                };
                for iteration in iterations {
                    let c = iteration.counts()?;
                    sum.input = Some(add(sum.input, c.input)?);
                    sum.output = Some(add(sum.output, c.output)?);
                    sum.cache_read = Some(add(sum.cache_read, c.cache_read)?);
                    sum.cache_creation = Some(add(sum.cache_creation, c.cache_creation)?);
                    sum.cache_creation_1h = Some(add(sum.cache_creation_1h, c.cache_creation_1h)?);
                }
                Some(sum)
            }
            _ => Some(own),
        }
    }
}

/// Parses a Messages body or stream event.
pub fn parse(bytes: &[u8]) -> Result<Facts, serde_json::Error> {
    let doc: Doc<'_> = serde_json::from_slice(bytes)?;
    let (model, usage) = match doc.message {
        Some(message) => (message.model, message.usage),
        None => (doc.model, doc.usage),
    };
    Ok(Facts {
        model,
        usage: usage.map(|u| u.counts().map_or(Report::Overflow, Report::Anthropic)),
        usage_only: false,
        error: doc.error.map(|e| e.reason()),
        end: doc.kind.as_deref() == Some("message_stop"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(bytes: &[u8]) -> Counts {
        match parse(bytes).unwrap().usage {
            Some(Report::Anthropic(c)) => c,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prompt_includes_cache_reads_and_writes() {
        let body = br#"{"model":"claude-sonnet-5","usage":{"cache_creation_input_tokens":426,"cache_read_input_tokens":14210,"input_tokens":4,"output_tokens":290,"output_tokens_details":{"thinking_tokens":15}}}"#;
        let u = counts(body).normalise().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.cache_write_tokens),
            (14640, 14210, 426)
        );
        assert_eq!((u.completion_tokens, u.reasoning_tokens), (290, 15));
    }

    #[test]
    fn stream_delta_replaces_cumulative_values_and_keeps_absent_ones() {
        let start = counts(br#"{"type":"message_start","message":{"model":"m","usage":{"input_tokens":10,"cache_read_input_tokens":5,"output_tokens":1}}}"#);
        let delta = counts(br#"{"type":"message_delta","usage":{"output_tokens":42}}"#);
        let u = start.overlay(delta).normalise().unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (15, 42));
    }

    #[test]
    fn web_searches_come_from_server_tool_use() {
        let delta = counts(br#"{"type":"message_delta","usage":{"output_tokens":9,"server_tool_use":{"web_search_requests":3,"web_fetch_requests":1}}}"#);
        let start = counts(br#"{"type":"message_start","message":{"model":"m","usage":{"input_tokens":10,"output_tokens":1}}}"#);
        assert_eq!(
            start
                .overlay(delta)
                .normalise()
                .unwrap()
                .web_search_requests,
            3
        );
    }

    #[test]
    fn compaction_iterations_are_summed() {
        let delta = br#"{"type":"message_delta","usage":{"input_tokens":181,"cache_read_input_tokens":0,"output_tokens":8,"iterations":[{"input_tokens":100,"output_tokens":83,"cache_read_input_tokens":55096,"cache_creation_input_tokens":0,"type":"compaction"},{"input_tokens":181,"output_tokens":8,"cache_read_input_tokens":0,"cache_creation_input_tokens":0,"type":"message"}]}}"#;
        let u = counts(delta).normalise().unwrap();
        assert_eq!(
            (u.prompt_tokens, u.cached_tokens, u.completion_tokens),
            (55377, 55096, 91)
        );
    }

    #[test]
    fn sums_that_overflow_are_reported_as_such() {
        let max = u64::MAX;
        let body =
            alloc::format!(r#"{{"usage":{{"input_tokens":{max},"cache_read_input_tokens":5}}}}"#);
        assert_eq!(counts(body.as_bytes()).normalise(), None);
        let iterations = alloc::format!(
            r#"{{"usage":{{"iterations":[{{"output_tokens":{max}}},{{"output_tokens":1}}]}}}}"#
        );
        assert_eq!(
            parse(iterations.as_bytes()).unwrap().usage,
            Some(Report::Overflow)
        );
    }

    #[test]
    fn one_hour_cache_writes_and_the_tier_come_from_usage() {
        let body = br#"{"usage":{"input_tokens":3,"cache_creation_input_tokens":1969,"cache_read_input_tokens":26315,"cache_creation":{"ephemeral_5m_input_tokens":0,"ephemeral_1h_input_tokens":1969},"output_tokens":1,"service_tier":"standard"}}"#;
        let u = counts(body).normalise().unwrap();
        assert_eq!(
            (u.cache_write_tokens, u.cache_write_1h_tokens),
            (1969, 1969)
        );
        assert_eq!(u.service_tier, Some(ServiceTier::Standard));
        // A total without the split stays a 5-minute write; a split above the total is clamped.
        let total_only =
            counts(br#"{"usage":{"cache_creation_input_tokens":10,"service_tier":"batch"}}"#);
        let u = total_only.normalise().unwrap();
        assert_eq!((u.cache_write_tokens, u.cache_write_1h_tokens), (10, 0));
        assert_eq!(u.service_tier, Some(ServiceTier::Batch));
        let over = counts(br#"{"usage":{"cache_creation_input_tokens":1,"cache_creation":{"ephemeral_1h_input_tokens":5}}}"#);
        assert_eq!(over.normalise().unwrap().cache_write_1h_tokens, 1);
    }

    #[test]
    fn message_stop_ends_and_errors_give_their_type() {
        assert!(parse(br#"{"type":"message_stop"}"#).unwrap().end);
        let error = br#"{"type":"error","error":{"type":"overloaded_error","message":"x"}}"#;
        assert_eq!(
            parse(error).unwrap().error.as_deref(),
            Some("overloaded_error")
        );
    }
}
