//! The record's `error` codes: why a call was not metered exactly (one list for the core and
//! every host; the README's list is checked against [`ErrorCode::ALL`] by
//! `core/tests/record_schema.rs`).
//!
//! Wire names are snake_case and a public API: never rename one, only add.

use core::fmt;

/// Defines [`ErrorCode`], its wire names and the list of all codes from one table.
macro_rules! error_codes {
    ($($(#[doc = $doc:literal])+ $variant:ident = $name:literal,)+) => {
        /// Why metering failed or was incomplete: the record's `error`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $($(#[doc = $doc])+ $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)+];

            /// The wire name (`cost_overflow`, `truncated_stream`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $name,)+
                }
            }
        }
    };
}

error_codes! {
    /// Usage reported, but the model is in neither the price table nor the overrides.
    UnknownModel = "unknown_model",
    /// An `error` object in the body or in the stream.
    UpstreamError = "upstream_error",
    /// The upstream answered with HTTP status ≥ 400.
    UpstreamStatus = "upstream_status",
    /// The JSON response body is not a JSON object.
    MalformedJson = "malformed_json",
    /// No usage, and stream events that had to be read were not JSON.
    MalformedStream = "malformed_stream",
    /// The stream ended without usage or its end marker (or, for Anthropic and Gemini, with usage
    /// but no end marker: the counts are a lower bound).
    TruncatedStream = "truncated_stream",
    /// No usage, and events were skipped for exceeding `max_sse_event_bytes`.
    OversizeEvent = "oversize_event",
    /// The client or the upstream went away before the end.
    Aborted = "aborted",
    /// The request body exceeded `max_request_body_bytes`: not read, not rewritten.
    RequestTooLarge = "request_too_large",
    /// The request body (or its `Content-Type`) is not JSON.
    RequestNotJson = "request_not_json",
    /// The JSON response body exceeded `max_response_body_bytes`.
    ResponseTooLarge = "response_too_large",
    /// The response has a `Content-Encoding` other than `identity`.
    CompressedResponse = "compressed_response",
    /// The response is neither JSON nor an event stream.
    UnsupportedContentType = "unsupported_content_type",
    /// A Gemini `streamGenerateContent` answer that is not SSE (no `alt=sse`).
    UnsupportedStreamFormat = "unsupported_stream_format",
    /// A path the meter does not meter (e.g. `GET /models`).
    UnmeteredEndpoint = "unmetered_endpoint",
    /// A Gemini embeddings answer without `usageMetadata` (recorded for `gemini-embedding-001`
    /// and `gemini-embedding-2-preview`): nothing to price; `cost_status` is `no_usage`.
    UsageNotReported = "usage_not_reported",
    /// Absurd upstream numbers: token counts whose sum exceeds 2⁶⁴−1, or a cost too large to
    /// represent.
    CostOverflow = "cost_overflow",
    /// A JSON body was finished, but the response was not read as JSON (a host bug).
    NotJsonResponse = "not_json_response",
    /// A second `finish_*` for the same call (a host bug): shows instead of hiding.
    AlreadyFinished = "already_finished",
    /// Host-chosen: the Envoy filter refused the call, its budget spent (`429`).
    BudgetExceeded = "budget_exceeded",
    /// Host-chosen: the Envoy filter refused a call to a model the table cannot price while a
    /// budget applies to it (`budgets.unpriced: "deny"`, `403`).
    UnpricedModelRefused = "unpriced_model_refused",
    /// Host-chosen: the Envoy filter refused a call a budget applies to while the collector's
    /// spend was not known (`budgets.on_unknown_spend: "deny"`, `503`).
    BudgetSpendUnknown = "budget_spend_unknown",
    /// Host-chosen: the Worker could not reach the upstream (`502`).
    UpstreamUnreachable = "upstream_unreachable",
    /// Cached input tokens reported, but the entry has no `input_cache_read` price.
    UnpricedCached = "unpriced_cached",
    /// Cache writes (5-minute) reported, but the entry has no `input_cache_write` price.
    UnpricedCacheWrite = "unpriced_cache_write",
    /// 1-hour cache writes reported, but the entry has no `input_cache_write_1h` price.
    UnpricedCacheWrite1h = "unpriced_cache_write_1h",
    /// Audio input tokens reported, but the entry has no `audio` price.
    UnpricedAudioIn = "unpriced_audio_in",
    /// Audio output tokens reported, but the entry has no `audio_output` price.
    UnpricedAudioOut = "unpriced_audio_out",
    /// Image output tokens reported, but the entry has no `image_output` price.
    UnpricedImageOut = "unpriced_image_out",
    /// Web searches reported, but the entry has no `web_search` price.
    UnpricedWebSearch = "unpriced_web_search",
    /// The response names a service tier (`service_tier`) the entry has no prices for.
    UnpricedServiceTier = "unpriced_service_tier",
    /// Audio duration reported (whisper-1 transcriptions), but the entry has no `audio_second`
    /// price.
    UnpricedAudioDuration = "unpriced_audio_duration",
    /// A speech request's input characters, but the entry has no `input_character` price.
    UnpricedInputCharacters = "unpriced_input_characters",
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_are_unique_snake_case_and_serialize_as_themselves() {
        let mut names: alloc::vec::Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert!(names.iter().all(|n| !n.is_empty()
            && n.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')));
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            assert_eq!(
                serde_json::to_string(code).unwrap(),
                alloc::format!("\"{code}\"")
            );
        }
    }
}
