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
use crate::money::decimal_digits;

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

/// Compact JSON text written piece by piece, byte for byte what `serde_json` writes for the same
/// values (strings escaped by the same rules: `"`, `\\`, and control characters only, as
/// `\b \f \n \r \t` or `\u00xx`).
struct JsonLine(String);

impl JsonLine {
    /// Literal JSON text (field names with their `,` and `:`).
    fn raw(&mut self, text: &str) {
        self.0.push_str(text);
    }

    fn str(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.0.push('"');
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            let short = match b {
                b'"' => b'"',
                b'\\' => b'\\',
                0x08 => b'b',
                0x0c => b'f',
                b'\n' => b'n',
                b'\r' => b'r',
                b'\t' => b't',
                0..=0x1f => b'u',
                _ => continue,
            };
            // `b` is ASCII, so `start..i` and `i + 1..` are on char boundaries.
            self.0.push_str(&s[start..i]);
            self.0.push('\\');
            self.0.push(char::from(short));
            if short == b'u' {
                self.0.push_str("00");
                self.0.push(char::from(HEX[usize::from(b >> 4)]));
                self.0.push(char::from(HEX[usize::from(b & 0xf)]));
            }
            start = i + 1;
        }
        self.0.push_str(&s[start..]);
        self.0.push('"');
    }

    fn opt_str(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.str(s),
            None => self.raw("null"),
        }
    }

    fn u64(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        self.raw(decimal_digits(&mut digits, n));
    }

    fn opt_u64(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.u64(n),
            None => self.raw("null"),
        }
    }

    fn bool(&mut self, b: bool) {
        self.raw(if b { "true" } else { "false" });
    }

    fn map(&mut self, map: &BTreeMap<String, String>) {
        self.raw("{");
        for (i, (key, value)) in map.iter().enumerate() {
            if i > 0 {
                self.raw(",");
            }
            self.str(key);
            self.raw(":");
            self.str(value);
        }
        self.raw("}");
    }

    fn marks(&mut self, marks: &[BudgetMark]) {
        self.raw("[");
        for (i, m) in marks.iter().enumerate() {
            self.raw(if i > 0 {
                ",{\"dimension\":"
            } else {
                "{\"dimension\":"
            });
            self.str(&m.dimension);
            self.raw(",\"value\":");
            self.str(&m.value);
            self.raw(",\"period\":");
            self.str(m.period);
            self.raw(",\"limit_usd\":");
            self.str(&m.limit_usd);
            self.raw(",\"spent_usd\":");
            self.str(&m.spent_usd);
            if let Some(percent) = m.percent {
                self.raw(",\"percent\":");
                self.u64(u64::from(percent));
            }
            self.raw("}");
        }
        self.raw("]");
    }
}

/// `n` in decimal (what `format!("{n}")` gives).
fn decimal(n: u64) -> String {
    let mut buf = [0u8; 20];
    String::from(decimal_digits(&mut buf, n))
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
    /// The record as one JSON line (no newline): the bytes `serde_json::to_string` makes of the
    /// derived `Serialize` (the tests compare), written by [`JsonLine`] with the field names as
    /// literal text instead of escaping each constant name at every call.
    pub fn to_json(&self) -> String {
        let mut j = JsonLine(String::with_capacity(1024));
        j.raw("{\"ts\":");
        j.str(&self.ts);
        j.raw(",\"request_id\":");
        j.opt_str(self.request_id.as_deref());
        j.raw(",\"host\":");
        j.str(&self.host);
        j.raw(",\"provider\":");
        j.str(self.provider);
        j.raw(",\"endpoint\":");
        j.str(self.endpoint);
        j.raw(",\"model_requested\":");
        j.opt_str(self.model_requested.as_deref());
        j.raw(",\"model\":");
        j.opt_str(self.model.as_deref());
        j.raw(",\"stream\":");
        j.bool(self.stream);
        j.raw(",\"status_code\":");
        j.opt_u64(self.status_code.map(u64::from));
        for (key, n) in [
            (",\"prompt_tokens\":", self.prompt_tokens),
            (",\"completion_tokens\":", self.completion_tokens),
            (",\"cached_tokens\":", self.cached_tokens),
            (",\"cache_write_tokens\":", self.cache_write_tokens),
            (",\"reasoning_tokens\":", self.reasoning_tokens),
            (",\"cache_write_1h_tokens\":", self.cache_write_1h_tokens),
            (",\"audio_prompt_tokens\":", self.audio_prompt_tokens),
            (
                ",\"audio_completion_tokens\":",
                self.audio_completion_tokens,
            ),
            (",\"image_prompt_tokens\":", self.image_prompt_tokens),
            (
                ",\"image_completion_tokens\":",
                self.image_completion_tokens,
            ),
            (",\"audio_duration_ms\":", self.audio_duration_ms),
            (",\"input_characters\":", self.input_characters),
        ] {
            j.raw(key);
            j.opt_u64(n);
        }
        j.raw(",\"service_tier\":");
        j.opt_str(self.service_tier);
        j.raw(",\"cost_usd\":");
        j.opt_str(self.cost_usd.as_deref());
        j.raw(",\"cost_micros\":");
        j.opt_u64(self.cost_micros);
        j.raw(",\"upstream_cost_usd\":");
        j.opt_str(self.upstream_cost_usd.as_deref());
        j.raw(",\"cost_status\":");
        j.str(self.cost_status.as_str());
        j.raw(",\"error\":");
        j.opt_str(self.error.map(ErrorCode::as_str));
        j.raw(",\"pricing_version\":");
        j.str(&self.pricing_version);
        j.raw(",\"breakdown\":");
        match &self.breakdown {
            Some(b) => {
                for (key, value) in [
                    ("{\"prompt\":", &b.prompt),
                    (",\"cached\":", &b.cached),
                    (",\"cache_write\":", &b.cache_write),
                    (",\"cache_write_1h\":", &b.cache_write_1h),
                    (",\"audio_in\":", &b.audio_in),
                    (",\"image_in\":", &b.image_in),
                    (",\"completion\":", &b.completion),
                    (",\"reasoning\":", &b.reasoning),
                    (",\"audio_out\":", &b.audio_out),
                    (",\"image_out\":", &b.image_out),
                    (",\"request\":", &b.request),
                    (",\"web_search\":", &b.web_search),
                    (",\"audio_duration\":", &b.audio_duration),
                    (",\"input_characters\":", &b.input_characters),
                ] {
                    j.raw(key);
                    j.str(value);
                }
                j.raw("}");
            }
            None => j.raw("null"),
        }
        j.raw(",\"key_id\":");
        j.opt_str(self.key_id.as_deref());
        j.raw(",\"priced_as\":");
        j.opt_str(self.priced_as.as_deref());
        j.raw(",\"upstream_inference_cost_usd\":");
        j.opt_str(self.upstream_inference_cost_usd.as_deref());
        j.raw(",\"is_byok\":");
        match self.is_byok {
            Some(b) => j.bool(b),
            None => j.raw("null"),
        }
        j.raw(",\"duration_ms\":");
        j.u64(self.duration_ms);
        j.raw(",\"oversize_events\":");
        j.u64(self.oversize_events);
        j.raw(",\"adjustment_percent\":");
        j.opt_str(self.adjustment_percent.as_deref());
        j.raw(",\"attributes\":");
        j.map(&self.attributes);
        j.raw(",\"budget_would_exceed\":");
        j.marks(&self.budget_would_exceed);
        j.raw(",\"budget_thresholds\":");
        j.marks(&self.budget_thresholds);
        j.raw(",\"budget_error\":");
        j.opt_str(self.budget_error.map(BudgetError::as_str));
        j.raw("}");
        j.0
    }

    /// `attributes` as a JSON object (`{}` when none), e.g. for an access log field.
    pub fn attributes_json(&self) -> String {
        let mut j = JsonLine(String::new());
        j.map(&self.attributes);
        j.0
    }

    /// `X-LLM-Cost`-family headers, names lower-case with `prefix` (e.g. `x-llm-`).
    /// Cost headers appear only when a cost was computed: never a made-up `0`.
    pub fn headers(&self, prefix: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        // Concatenated, not `format!`: the formatting machinery costs more than the copies here.
        let mut add = |name: &str, value: String| {
            let mut full = String::with_capacity(prefix.len() + name.len());
            full.push_str(prefix);
            full.push_str(name);
            out.push((full, value));
        };
        if let (Some(usd), Some(micros)) = (&self.cost_usd, self.cost_micros) {
            add("cost", usd.clone());
            add("cost-micros", decimal(micros));
        }
        add("cost-status", self.cost_status.as_str().into());
        if let Some(error) = &self.error {
            add("cost-error", error.as_str().into());
        }
        if let Some(model) = &self.model {
            add("model", model.clone());
        }
        if let Some(n) = self.prompt_tokens {
            add("tokens-in", decimal(n));
        }
        if let Some(n) = self.completion_tokens {
            add("tokens-out", decimal(n));
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

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{borrow::ToOwned, vec};

    /// Every field set, every string with the characters JSON escapes (and some it does not).
    fn full() -> CostRecord {
        let odd = "a\"b\\c/d\u{0}\u{1f}\u{7f}\u{8}\u{c}\n\r\té€😀 end";
        let b = BreakdownRecord {
            prompt: "0.1".into(),
            cached: "0".into(),
            cache_write: "0.000001".into(),
            cache_write_1h: "2".into(),
            audio_in: "3".into(),
            image_in: "4".into(),
            completion: "5".into(),
            reasoning: "6".into(),
            audio_out: "7".into(),
            image_out: "8".into(),
            request: "9".into(),
            web_search: "10".into(),
            audio_duration: "11".into(),
            input_characters: odd.into(),
        };
        let mark = |percent| BudgetMark {
            dimension: "key_id".into(),
            value: odd.into(),
            period: "day",
            limit_usd: "1.5".into(),
            spent_usd: "0.25".into(),
            percent,
        };
        CostRecord {
            ts: "2026-12-03T12:00:00.000Z".into(),
            request_id: Some(odd.into()),
            host: odd.into(),
            provider: "openrouter",
            endpoint: "chat_completions",
            model_requested: Some("openai/gpt-4o".into()),
            model: Some(odd.into()),
            stream: true,
            status_code: Some(u16::MAX),
            prompt_tokens: Some(u64::MAX),
            completion_tokens: Some(0),
            cached_tokens: Some(1),
            cache_write_tokens: Some(10),
            reasoning_tokens: Some(99),
            cache_write_1h_tokens: Some(100),
            audio_prompt_tokens: Some(12_345),
            audio_completion_tokens: Some(1_000_000),
            image_prompt_tokens: Some(7),
            image_completion_tokens: Some(8),
            audio_duration_ms: Some(9_999_999_999),
            input_characters: Some(42),
            service_tier: Some("priority"),
            cost_usd: Some("0.01058775".into()),
            cost_micros: Some(10_588),
            upstream_cost_usd: Some(odd.into()),
            cost_status: CostStatus::NoUsage,
            error: Some(ErrorCode::CostOverflow),
            pricing_version: odd.into(),
            breakdown: Some(b),
            key_id: Some("0123456789ab".into()),
            priced_as: Some(odd.into()),
            upstream_inference_cost_usd: Some("0.5".into()),
            is_byok: Some(false),
            duration_ms: u64::MAX,
            oversize_events: 3,
            adjustment_percent: Some("-12.5".into()),
            attributes: [
                ("team".to_owned(), odd.to_owned()),
                (odd.to_owned(), "".to_owned()),
            ]
            .into_iter()
            .collect(),
            budget_would_exceed: vec![mark(None), mark(Some(80))],
            budget_thresholds: vec![mark(Some(100))],
            budget_error: Some(BudgetError::StoreTimeout),
        }
    }

    /// Every optional field empty.
    fn empty() -> CostRecord {
        CostRecord {
            ts: String::new(),
            request_id: None,
            host: String::new(),
            provider: "unknown",
            endpoint: "other",
            model_requested: None,
            model: None,
            stream: false,
            status_code: None,
            prompt_tokens: None,
            completion_tokens: None,
            cached_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            cache_write_1h_tokens: None,
            audio_prompt_tokens: None,
            audio_completion_tokens: None,
            image_prompt_tokens: None,
            image_completion_tokens: None,
            audio_duration_ms: None,
            input_characters: None,
            service_tier: None,
            cost_usd: None,
            cost_micros: None,
            upstream_cost_usd: None,
            cost_status: CostStatus::Error,
            error: None,
            pricing_version: String::new(),
            breakdown: None,
            key_id: None,
            priced_as: None,
            upstream_inference_cost_usd: None,
            is_byok: None,
            duration_ms: 0,
            oversize_events: 0,
            adjustment_percent: None,
            attributes: BTreeMap::new(),
            budget_would_exceed: Vec::new(),
            budget_thresholds: Vec::new(),
            budget_error: None,
        }
    }

    #[test]
    fn decimal_is_format() {
        for n in [
            0,
            1,
            9,
            10,
            99,
            100,
            12_345,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            assert_eq!(decimal(n), alloc::format!("{n}"));
        }
    }

    #[test]
    fn hand_written_json_is_serde_jsons_byte_for_byte() {
        let mut records = vec![full(), empty()];
        let mut r = full();
        r.is_byok = Some(true);
        r.budget_would_exceed.clear();
        r.attributes.clear();
        r.error = None;
        records.push(r);
        for status in [
            CostStatus::Exact,
            CostStatus::Estimated,
            CostStatus::Unpriced,
            CostStatus::NoUsage,
            CostStatus::Error,
        ] {
            let mut r = empty();
            r.cost_status = status;
            records.push(r);
        }
        for code in ErrorCode::ALL {
            let mut r = empty();
            r.error = Some(*code);
            records.push(r);
        }
        for code in BudgetError::ALL {
            let mut r = empty();
            r.budget_error = Some(*code);
            records.push(r);
        }
        // Every single byte below 0x80 as a string value.
        for b in 0u8..0x80 {
            let mut r = empty();
            r.host = String::from(char::from(b));
            r.attributes.insert(r.host.clone(), r.host.clone());
            records.push(r);
        }
        for r in &records {
            assert_eq!(r.to_json(), serde_json::to_string(r).unwrap());
            assert_eq!(
                r.attributes_json(),
                serde_json::to_string(&r.attributes).unwrap()
            );
        }
    }
}
