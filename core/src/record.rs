//! The cost record (the log line), the `X-LLM-Cost`-family headers and the stream-end comment.
//!
//! Field names are a public API, documented in the README's schema table;
//! `core/tests/record_schema.rs` checks that the table and this serializer agree (and the header
//! table and [`CostRecord::headers`]). No prompt or completion text, no API key.

use alloc::{collections::BTreeMap, format, string::String, vec::Vec};

use serde::Serialize;

use crate::budget::BudgetMark;
use crate::budget_check::BudgetError;
use crate::cost::Breakdown;
use crate::error_code::ErrorCode;

/// How far to trust `cost_usd`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CostStatus {
    /// Upstream-reported usage priced by the table.
    Exact,
    /// Token counts estimated (no usage reported).
    Estimated,
    /// Usage known, model not in the price table: no cost is made up.
    Unpriced,
    /// The response carried no usage and nothing went wrong.
    NoUsage,
    /// Metering failed; `error` says why. Traffic passed unchanged.
    Error,
}

impl CostStatus {
    /// The wire name (`exact`, `no_usage`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CostStatus::Exact => "exact",
            CostStatus::Estimated => "estimated",
            CostStatus::Unpriced => "unpriced",
            CostStatus::NoUsage => "no_usage",
            CostStatus::Error => "error",
        }
    }
}

/// Cost per component as decimal strings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BreakdownRecord {
    /// Uncached text input tokens.
    pub prompt: String,
    /// Cached input tokens read.
    pub cached: String,
    /// Input tokens written to the cache (5-minute write).
    pub cache_write: String,
    /// Input tokens written to the 1-hour cache.
    pub cache_write_1h: String,
    /// Uncached audio input tokens.
    pub audio_in: String,
    /// Uncached image input tokens.
    pub image_in: String,
    /// Text output tokens that are not reasoning.
    pub completion: String,
    /// Reasoning tokens.
    pub reasoning: String,
    /// Audio output tokens.
    pub audio_out: String,
    /// Image output tokens.
    pub image_out: String,
    /// Per-request fee.
    pub request: String,
    /// Web searches the upstream reported.
    pub web_search: String,
    /// Input audio duration (whisper-1 transcriptions).
    pub audio_duration: String,
    /// Input characters (tts-1 speech).
    pub input_characters: String,
}

impl From<&Breakdown> for BreakdownRecord {
    fn from(b: &Breakdown) -> Self {
        BreakdownRecord {
            prompt: b.prompt.to_decimal_string(),
            cached: b.cached.to_decimal_string(),
            cache_write: b.cache_write.to_decimal_string(),
            cache_write_1h: b.cache_write_1h.to_decimal_string(),
            audio_in: b.audio_in.to_decimal_string(),
            image_in: b.image_in.to_decimal_string(),
            completion: b.completion.to_decimal_string(),
            reasoning: b.reasoning.to_decimal_string(),
            audio_out: b.audio_out.to_decimal_string(),
            image_out: b.image_out.to_decimal_string(),
            request: b.request.to_decimal_string(),
            web_search: b.web_search.to_decimal_string(),
            audio_duration: b.audio_duration.to_decimal_string(),
            input_characters: b.input_characters.to_decimal_string(),
        }
    }
}

/// One call's cost record. See the README for each field's meaning.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CostRecord {
    /// Start of the call, RFC 3339 UTC with milliseconds.
    pub ts: String,
    /// The host's request id (`x-request-id`), if any.
    pub request_id: Option<String>,
    /// `:authority` / Host of the request.
    pub host: String,
    /// `openrouter`, `openai`, `anthropic`, `gemini` or `unknown`.
    pub provider: &'static str,
    /// `chat_completions`, `completions`, `responses`, `messages`, `generate_content`,
    /// `stream_generate_content`, `embeddings`, `images`, `audio_transcriptions`,
    /// `audio_translations`, `audio_speech` or `other` (`Endpoint::as_str`).
    pub endpoint: &'static str,
    /// The model the client asked for.
    pub model_requested: Option<String>,
    /// The model that answered (priced by this, else by `model_requested`).
    pub model: Option<String>,
    /// The response was a stream.
    pub stream: bool,
    /// Upstream HTTP status; null if none arrived.
    pub status_code: Option<u16>,
    /// All input tokens (cached and cache-written included).
    pub prompt_tokens: Option<u64>,
    /// All output tokens (reasoning included).
    pub completion_tokens: Option<u64>,
    /// Input tokens read from the cache (⊂ prompt).
    pub cached_tokens: Option<u64>,
    /// Input tokens written to the cache (⊂ prompt).
    pub cache_write_tokens: Option<u64>,
    /// Reasoning tokens (⊂ completion).
    pub reasoning_tokens: Option<u64>,
    /// Input tokens written to the 1-hour cache (⊂ cache_write).
    pub cache_write_1h_tokens: Option<u64>,
    /// Uncached audio input tokens (⊂ prompt).
    pub audio_prompt_tokens: Option<u64>,
    /// Audio output tokens (⊂ completion).
    pub audio_completion_tokens: Option<u64>,
    /// Uncached image input tokens (⊂ prompt).
    pub image_prompt_tokens: Option<u64>,
    /// Image output tokens (⊂ completion).
    pub image_completion_tokens: Option<u64>,
    /// Input audio length in milliseconds, billed per second (whisper-1 transcriptions).
    pub audio_duration_ms: Option<u64>,
    /// Characters of the request's input text, billed per character (tts-1 speech).
    pub input_characters: Option<u64>,
    /// The service tier that served the call (`standard`, `flex`, `priority`, `batch`, `scale`,
    /// `unknown`); null when the response does not say.
    pub service_tier: Option<&'static str>,
    /// Our exact cost, decimal USD, after any configured adjustment; null unless priced.
    pub cost_usd: Option<String>,
    /// `cost_usd` in whole micro-USD, nearest, halves up.
    pub cost_micros: Option<u64>,
    /// The upstream's own `usage.cost`, decimal USD (drift from `cost_usd` = stale prices or fees).
    pub upstream_cost_usd: Option<String>,
    /// `exact`, `estimated`, `unpriced`, `no_usage` or `error`.
    pub cost_status: CostStatus,
    /// Why metering failed or was incomplete (a short reason code); null if nothing went wrong.
    pub error: Option<ErrorCode>,
    /// `<snapshot>+<content hash>` of the prices used.
    pub pricing_version: String,
    /// Cost per component; null unless priced.
    pub breakdown: Option<BreakdownRecord>,
    /// First 12 hex digits of SHA-256 of the API key; never the key.
    pub key_id: Option<String>,
    /// The price-table entry that priced the call.
    pub priced_as: Option<String>,
    /// OpenRouter `cost_details.upstream_inference_cost`, decimal USD.
    pub upstream_inference_cost_usd: Option<String>,
    /// OpenRouter `is_byok`.
    pub is_byok: Option<bool>,
    /// Milliseconds from request headers to the end of the response.
    pub duration_ms: u64,
    /// SSE events skipped for exceeding `max_sse_event_bytes`.
    pub oversize_events: u64,
    /// The markup (+) or discount (−) applied to the list cost, in percent; null if none.
    pub adjustment_percent: Option<String>,
    /// Who spent it: configured attribution dimension → value (`{}` when none).
    pub attributes: BTreeMap<String, String>,
    /// Shadow budget rules this call would have been refused by (`[]` when none).
    pub budget_would_exceed: Vec<BudgetMark>,
    /// Budget thresholds (50 / 80 / 100 % of a limit) this call's cost crossed first in the
    /// period (`[]` when none).
    pub budget_thresholds: Vec<BudgetMark>,
    /// Why the call passed without its budget checked (the store failed); null otherwise.
    pub budget_error: Option<BudgetError>,
}

/// The subset of the record carried by the stream-end comment.
#[derive(Serialize)]
struct CommentFields<'a> {
    cost_usd: &'a Option<String>,
    cost_micros: Option<u64>,
    cost_status: CostStatus,
    model: &'a Option<String>,
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
    upstream_cost_usd: &'a Option<String>,
    pricing_version: &'a str,
}

impl CostRecord {
    /// The record as one JSON line (no newline).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// `attributes` as a JSON object (`{}` when none), e.g. for an access log field.
    pub fn attributes_json(&self) -> String {
        serde_json::to_string(&self.attributes).unwrap_or_default()
    }

    /// `X-LLM-Cost`-family headers, names lower-case with `prefix` (e.g. `x-llm-`).
    /// Cost headers appear only when a cost was computed: never a made-up `0`.
    pub fn headers(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut add = |name: &str, value: String| out.push((format!("{prefix}{name}"), value));
        if let (Some(usd), Some(micros)) = (&self.cost_usd, self.cost_micros) {
            add("cost", usd.clone());
            add("cost-micros", format!("{micros}"));
        }
        add("cost-status", self.cost_status.as_str().into());
        if let Some(error) = &self.error {
            add("cost-error", error.as_str().into());
        }
        if let Some(model) = &self.model {
            add("model", model.clone());
        }
        if let Some(n) = self.prompt_tokens {
            add("tokens-in", format!("{n}"));
        }
        if let Some(n) = self.completion_tokens {
            add("tokens-out", format!("{n}"));
        }
        add("pricing-version", self.pricing_version.clone());
        if let Some(upstream) = &self.upstream_cost_usd {
            add("cost-upstream", upstream.clone());
        }
        out
    }

    /// `: llm-cost {...}\n\n`: an SSE comment (ignored by clients) carrying the cost.
    pub fn sse_comment(&self) -> Vec<u8> {
        let fields = CommentFields {
            cost_usd: &self.cost_usd,
            cost_micros: self.cost_micros,
            cost_status: self.cost_status,
            model: &self.model,
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            upstream_cost_usd: &self.upstream_cost_usd,
            pricing_version: &self.pricing_version,
        };
        let json = serde_json::to_string(&fields).unwrap_or_default();
        format!(": llm-cost {json}\n\n").into_bytes()
    }
}
