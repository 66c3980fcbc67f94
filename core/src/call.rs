//! One metered call, from request headers to the cost record: the only API hosts need.
//!
//! Hosts feed facts and bytes in, in the order they arrive, and apply the answers (see
//! `docs/CORE_API.md`). Every fault — bad JSON, unknown model, oversize body, truncated stream,
//! abort, upstream error — leaves the traffic as it was and shows up in the record's `error`.

use alloc::{borrow::ToOwned, boxed::Box, format, rc::Rc, string::String, vec::Vec};

use crate::attribution::BodyValues;
use crate::budget::{BudgetFacts, BudgetMark};
use crate::budget_check::BudgetError;
use crate::config::{Adjustment, MeterConfig};
use crate::cost::{price, Breakdown, CostError};
use crate::error_code::ErrorCode;
use crate::form::FormScan;
use crate::identity::key_id;
use crate::money::Usd;
use crate::pricing::{Priced, Prices};
use crate::provider::{self, Endpoint, Provider};
use crate::record::{BreakdownRecord, CostRecord, CostStatus};
use crate::rewrite::{rewrite, RequestFacts};
use crate::stream::{Forward, StreamScan};
use crate::time::{minute_of_day, rfc3339_millis};
use crate::usage::{Format, OutputTokens, Report, Usage};

/// Request facts a host hands over when the request headers arrive.
#[derive(Clone, Copy, Debug, Default)]
pub struct RequestHead<'a> {
    /// `:method`.
    pub method: &'a str,
    /// `:authority` / Host: the host the client called (the record's `host`; adjustments match it).
    pub host: &'a str,
    /// The upstream's authority when the host sends the call to a configured upstream of its own
    /// (the Worker's `UPSTREAM_BASE_URL`): the provider is detected from it. `None`: from `host`.
    pub upstream_host: Option<&'a str>,
    /// `:path`, query included.
    pub path: &'a str,
    /// The request's credential, as [`crate::identity::credential`] finds it: only hashed into
    /// `key_id`.
    pub authorization: Option<&'a str>,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
    /// `x-request-id`, if any.
    pub request_id: Option<&'a str>,
    /// The request headers named by `config.attribution.header_names()` that are present, as
    /// `(name, value)`; empty when attribution is not configured.
    pub attribution_headers: &'a [(String, String)],
}

/// Response facts a host hands over when the response headers arrive.
#[derive(Clone, Copy, Debug, Default)]
pub struct ResponseHead<'a> {
    /// HTTP status.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: Option<&'a str>,
    /// `Content-Length`, if sent.
    pub content_length: Option<u64>,
    /// `Content-Encoding`, if any.
    pub content_encoding: Option<&'a str>,
}

/// What to do with the request body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestBodyPlan {
    /// Hold the headers and buffer up to `max_bytes`, then call [`Call::rewrite_request`].
    Buffer {
        /// Past this, call [`Call::request_body_too_large`] and let the body pass.
        max_bytes: usize,
    },
    /// Let the body pass as it arrives (never hold the headers), keeping a copy of up to
    /// `max_bytes`; at its end call [`Call::observe_request`]. Chosen when `inject_usage` or
    /// `hold_headers` is off: nothing is rewritten, so nothing needs holding.
    Observe {
        /// Past this, call [`Call::request_body_too_large`] and stop copying.
        max_bytes: usize,
    },
    /// A `multipart/form-data` body (an audio transcription: the file may be 25 MB): let it pass
    /// as it arrives, never held nor copied, handing each chunk to [`Call::scan_request_chunk`].
    ScanForm,
    /// Let the body pass untouched.
    PassThrough,
}

/// What to do with the response body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResponsePlan {
    /// Hold the headers, buffer the body, then call [`Call::finish_json`] and add the headers.
    BufferJson {
        /// Past this, call [`Call::response_body_too_large`] and let the body pass.
        max_bytes: usize,
    },
    /// `hold_headers: false`: forward every chunk at once, keeping a copy of up to `max_bytes`;
    /// then [`Call::finish_json`] for the record. The headers already went: none are added.
    ObserveJson {
        /// Past this, call [`Call::response_body_too_large`] and stop copying.
        max_bytes: usize,
    },
    /// Forward every chunk at once through [`Call::feed_stream`]; then [`Call::finish_stream`].
    Stream,
    /// Forward untouched; then [`Call::finish_passthrough`].
    PassThrough,
    /// The cost is known from the request (text to speech billed per input character): call
    /// [`Call::finish_passthrough`] now and add its headers to these response headers, then
    /// forward the body untouched (audio: never held, never read).
    PassThroughPriced,
}

/// Everything a host emits at the end of a call.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// `X-LLM-Cost`-family headers (names carry the configured prefix): response headers for
    /// JSON, trailers for streams.
    pub headers: Vec<(String, String)>,
    /// Bytes to append at the end of a stream: any held-back bytes, then the `: llm-cost {...}`
    /// comment when [`Call::stream_cost_comment`] says so. Empty unless the response was a stream.
    pub sse_comment: Vec<u8>,
    /// The cost record.
    pub record: CostRecord,
    /// The record as one JSON line (no newline).
    pub record_json: String,
    /// The exact cost (`cost_usd`), when the call was priced.
    pub cost: Option<Usd>,
    /// Model label for metrics: the price-table id that priced the call, else `other`
    /// (bounded cardinality).
    pub metric_model: String,
    /// Attribute values dropped for breaking the bounds (hosts count them).
    pub attributes_dropped: u32,
}

impl Outcome {
    /// Adds the host's budget events to the record (and its JSON): the shadow rules the call
    /// would exceed, and the thresholds its cost crossed (known once the host settled it).
    pub fn mark_budgets(&mut self, would_exceed: Vec<BudgetMark>, thresholds: Vec<BudgetMark>) {
        if would_exceed.is_empty() && thresholds.is_empty() {
            return;
        }
        self.record.budget_would_exceed = would_exceed;
        self.record.budget_thresholds = thresholds;
        self.record_json = self.record.to_json();
    }
}

#[derive(Debug)]
enum ResponseState {
    Pending,
    Json,
    Stream(Box<StreamScan>),
    PassThrough,
}

/// One metered call.
#[derive(Debug)]
pub struct Call {
    config: Rc<MeterConfig>,
    provider: Provider,
    endpoint: Endpoint,
    format: Option<Format>,
    host: String,
    path: String,
    request_id: Option<String>,
    key_id: Option<String>,
    /// Attribution headers seen with the request headers.
    attribution_headers: Vec<(String, String)>,
    /// Attribution values read from the request body.
    body_values: BodyValues,
    start_ms: u64,
    request: RequestFacts,
    /// The scan of a `multipart/form-data` request body ([`RequestBodyPlan::ScanForm`]).
    form: Option<Box<FormScan>>,
    /// The response is priced from the request ([`ResponsePlan::PassThroughPriced`]).
    priced_from_request: bool,
    usage_chunk_injected: bool,
    /// Estimated prompt tokens (builds with the `estimate` feature).
    estimated_prompt: Option<u64>,
    /// Why the request was not rewritten, if it was not.
    request_note: Option<ErrorCode>,
    /// Why the response could not be metered, if it could not.
    response_fault: Option<ErrorCode>,
    status_code: Option<u16>,
    response: ResponseState,
    finished: bool,
    /// The host answered the call itself ([`Call::finish_refused`]).
    refused: bool,
    /// The host let the call through without checking its budget ([`Call::budget_unchecked`]).
    budget_error: Option<BudgetError>,
}

impl Call {
    /// Starts a call when its request headers arrive; `now_unix_ms` is the host's clock.
    pub fn new(config: &Rc<MeterConfig>, head: RequestHead<'_>, now_unix_ms: u64) -> Call {
        let routed_by = head.upstream_host.unwrap_or(head.host);
        let provider = provider::detect(&config.routes, routed_by, head.path);
        let endpoint = Endpoint::of_request(head.method, head.path);
        let mut call = Call {
            config: Rc::clone(config),
            provider,
            endpoint,
            format: Format::of(endpoint),
            host: head.host.to_owned(),
            path: head.path.to_owned(),
            request_id: head.request_id.map(str::to_owned),
            key_id: head.authorization.and_then(key_id),
            attribution_headers: head.attribution_headers.to_vec(),
            body_values: BodyValues::default(),
            start_ms: now_unix_ms,
            request: RequestFacts::default(),
            form: None,
            priced_from_request: false,
            usage_chunk_injected: false,
            estimated_prompt: None,
            request_note: None,
            response_fault: None,
            status_code: None,
            response: ResponseState::Pending,
            finished: false,
            refused: false,
            budget_error: None,
        };
        call.request.model = gemini_model_from_path(head.path);
        if call.format == Some(Format::Transcription) {
            // A form, never held: its size does not matter, and neither does JSON.
            call.form = head.content_type.and_then(FormScan::new).map(Box::new);
            if call.form.is_none() {
                call.request_note = Some(ErrorCode::RequestNotJson);
            }
        } else if head
            .content_type
            .is_some_and(|t| !t.to_ascii_lowercase().contains("json"))
        {
            call.request_note = Some(ErrorCode::RequestNotJson);
        } else if head
            .content_length
            .is_some_and(|n| n > config.max_request_body_bytes as u64)
        {
            call.request_note = Some(ErrorCode::RequestTooLarge);
        }
        call
    }

    /// True for LLM API calls (chat and legacy completions, responses, messages, generate
    /// content, embeddings).
    /// Hosts may skip records of calls that are not metered (health checks, `GET /models`).
    pub fn is_metered(&self) -> bool {
        self.endpoint != Endpoint::Other
    }

    /// Does this call's stream end with the `: llm-cost {...}` comment? `stream_cost_comment` for
    /// the call's wire format (see [`crate::config::StreamCostComment`]); [`Call::finish_stream`]
    /// follows it, so hosts append [`Outcome::sse_comment`] as it comes.
    pub fn stream_cost_comment(&self) -> bool {
        self.format
            .is_some_and(|format| self.config.stream_cost_comment.applies_to(format))
    }

    /// The caller's `key_id` (short hash of its API key), if it sent one.
    pub fn key_id(&self) -> Option<&str> {
        self.key_id.as_deref()
    }

    /// What budget rules match this call on, as far as it is known now: the request body (once
    /// read or observed) adds the model and the `body:` attributes.
    pub fn budget_facts(&self) -> BudgetFacts {
        let model = self.request.model.as_deref();
        let priced = model.and_then(|m| self.resolve(m));
        BudgetFacts {
            key_id: self.key_id.clone(),
            priced: priced.is_some(),
            model: priced.map(|p| p.id).or_else(|| model.map(str::to_owned)),
            provider: self.provider.as_str(),
            attributes: self
                .config
                .attribution
                .resolve(&self.attribution_headers, &self.body_values)
                .values,
        }
    }

    /// The host answered the call itself with `status` (e.g. `429` for a spent budget) and the
    /// upstream never saw it; `reason` becomes the record's `error`.
    pub fn finish_refused(&mut self, status: u16, reason: ErrorCode, now_unix_ms: u64) -> Outcome {
        self.status_code = Some(status);
        self.response = ResponseState::PassThrough;
        if self.finished {
            return self.already_finished(now_unix_ms);
        }
        self.finished = true;
        self.refused = true;
        self.outcome(None, None, Some(reason), Vec::new(), now_unix_ms)
    }

    /// The host could not check this call's budget (its store failed) and let it through: the
    /// record's `budget_error` says why. Call before the `finish_*` that ends the call.
    pub fn budget_unchecked(&mut self, why: BudgetError) {
        self.budget_error = Some(why);
    }

    /// Whether to buffer the request body for the rewrite, or only observe it.
    pub fn request_body_plan(&self) -> RequestBodyPlan {
        let max_bytes = self.config.max_request_body_bytes;
        if self.form.is_some() {
            RequestBodyPlan::ScanForm
        } else if self.endpoint == Endpoint::Other || self.request_note.is_some() {
            RequestBodyPlan::PassThrough
        } else if self.config.inject_usage && self.config.hold_headers {
            RequestBodyPlan::Buffer { max_bytes }
        } else {
            RequestBodyPlan::Observe { max_bytes }
        }
    }

    /// Reads the whole request body that already went on ([`RequestBodyPlan::Observe`]): learns
    /// the model and whether it streams, changes nothing.
    pub fn observe_request(&mut self, body: &[u8]) {
        let _ = self.read_request(body, false);
    }

    /// Scans the next chunk of a form body ([`RequestBodyPlan::ScanForm`]) as it passes: learns
    /// the model and whether it streams, keeps nothing else.
    pub fn scan_request_chunk(&mut self, chunk: &[u8]) {
        let Some(form) = self.form.as_mut() else {
            return;
        };
        form.feed(chunk);
        let fields = form.fields();
        if fields.model.is_some() && self.request.model != fields.model {
            self.request.model.clone_from(&fields.model);
        }
        self.request.stream = fields.stream;
    }

    /// A form ([`RequestBodyPlan::ScanForm`]) whose budget check needs its `model` field
    /// ([`crate::budget::Budgets::depends_on_model`]): hold the request headers while the form
    /// arrives, at most this many bytes (`max_request_body_bytes`), until
    /// [`Call::form_hold_over`] says the check can run; a form is never held for anything else.
    /// `None`: check the budget at the headers and let the form pass as it arrives.
    pub fn form_hold_bytes(&self) -> Option<usize> {
        let needed = self.form.is_some()
            && self.request.model.is_none()
            && self.config.budgets.depends_on_model();
        needed.then_some(self.config.max_request_body_bytes)
    }

    /// Whether a form held for its budget check ([`Call::form_hold_bytes`]) can go on, after
    /// `held` bytes of it were scanned: its `model` is known, its end came, or it reached the
    /// hold's size (a form whose `model` comes after a larger file may be checked without it:
    /// a host's last chunk can carry more than the bound, and all of it is scanned first).
    pub fn form_hold_over(&self, held: usize, end_of_body: bool) -> bool {
        end_of_body || self.request.model.is_some() || held >= self.config.max_request_body_bytes
    }

    /// The body outgrew `max_bytes` while buffering: it passes unchanged.
    pub fn request_body_too_large(&mut self) {
        self.request_note = Some(ErrorCode::RequestTooLarge);
    }

    /// Reads the whole request body; returns the body to send instead, if it changes.
    pub fn rewrite_request(&mut self, body: &[u8]) -> Option<Vec<u8>> {
        self.read_request(body, self.config.inject_usage)
    }

    /// Learns the request's facts; returns the rewritten body when `may_rewrite` allows one.
    fn read_request(&mut self, body: &[u8], may_rewrite: bool) -> Option<Vec<u8>> {
        if body.len() > self.config.max_request_body_bytes {
            self.request_note = Some(ErrorCode::RequestTooLarge);
            return None;
        }
        self.body_values = self.config.attribution.body_values(body);
        // Legacy completions share chat's wire format but not its prompt (`prompt`, no message
        // framing): no estimate rather than a chat-shaped one.
        #[cfg(feature = "estimate")]
        if let (true, Some(format), false) = (
            self.config.estimates(),
            self.format,
            self.endpoint == Endpoint::Completions,
        ) {
            self.estimated_prompt = crate::estimate::prompt_tokens(format, body);
        }
        match rewrite(body, self.provider, self.endpoint) {
            Ok(mut result) => {
                // Gemini names the model in the path; a body's `model` (`:embedContent` may
                // carry `models/…`) does not override it.
                result.facts.model = self.request.model.take().or(result.facts.model);
                self.request = result.facts;
                if !may_rewrite {
                    return None;
                }
                self.usage_chunk_injected = result.usage_chunk_injected && result.body.is_some();
                result.body
            }
            Err(_) => {
                self.request_note = Some(ErrorCode::RequestNotJson);
                None
            }
        }
    }

    /// Decides how to handle the response body from its headers.
    pub fn on_response_head(&mut self, head: ResponseHead<'_>) -> ResponsePlan {
        self.status_code = Some(head.status);
        let content_type = head.content_type.unwrap_or("").to_ascii_lowercase();
        let stream = content_type.starts_with("text/event-stream");
        let fault = if self.format.is_none() {
            Some(ErrorCode::UnmeteredEndpoint)
        } else if head.status >= 400 {
            Some(ErrorCode::UpstreamStatus)
        } else if head
            .content_encoding
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            Some(ErrorCode::CompressedResponse)
        } else if self.format == Some(Format::Speech) && !stream {
            // The answer is audio: the request says what it costs, the body is never read. (A
            // `stream_format: "sse"` answer reports its tokens: scanned as a stream below.)
            self.priced_from_request = true;
            self.response = ResponseState::PassThrough;
            return ResponsePlan::PassThroughPriced;
        } else if self.endpoint == Endpoint::StreamGenerateContent && !stream {
            // A JSON-array stream (no `alt=sse`): holding it would stop the stream.
            Some(ErrorCode::UnsupportedStreamFormat)
        } else {
            None
        };
        let plan = match fault {
            Some(_) => ResponsePlan::PassThrough,
            None if stream => ResponsePlan::Stream,
            None if content_type.contains("json") => {
                let max_bytes = self.config.max_response_body_bytes;
                if head.content_length.is_some_and(|n| n > max_bytes as u64) {
                    self.response_fault = Some(ErrorCode::ResponseTooLarge);
                    ResponsePlan::PassThrough
                } else if self.config.hold_headers {
                    ResponsePlan::BufferJson { max_bytes }
                } else {
                    ResponsePlan::ObserveJson { max_bytes }
                }
            }
            // `text`, `srt` and `vtt` transcriptions: plain text, no usage in it.
            None if self.format == Some(Format::Transcription) => {
                self.response_fault = Some(ErrorCode::UsageNotReported);
                ResponsePlan::PassThrough
            }
            None => {
                self.response_fault = Some(ErrorCode::UnsupportedContentType);
                ResponsePlan::PassThrough
            }
        };
        if fault.is_some() {
            self.response_fault = fault;
        }
        self.response = match plan {
            ResponsePlan::BufferJson { .. } | ResponsePlan::ObserveJson { .. } => {
                ResponseState::Json
            }
            ResponsePlan::Stream => ResponseState::Stream(Box::new(
                StreamScan::new(
                    self.format.unwrap_or(Format::Chat),
                    self.config.max_sse_event_bytes,
                    self.usage_chunk_injected && self.config.hide_injected_usage_chunk,
                )
                .with_estimate(self.config.estimates()),
            )),
            ResponsePlan::PassThrough | ResponsePlan::PassThroughPriced => {
                ResponseState::PassThrough
            }
        };
        plan
    }

    /// The JSON body outgrew `max_bytes`: it passes unchanged, unmetered.
    pub fn response_body_too_large(&mut self) {
        self.response_fault = Some(ErrorCode::ResponseTooLarge);
        self.response = ResponseState::PassThrough;
    }

    /// Scans one stream chunk; forward what it says, at once.
    pub fn feed_stream(&mut self, chunk: &[u8]) -> Forward {
        match &mut self.response {
            ResponseState::Stream(scan) => scan.feed(chunk),
            _ => Forward::Unchanged,
        }
    }

    /// The whole JSON body arrived.
    pub fn finish_json(&mut self, body: &[u8], now_unix_ms: u64) -> Outcome {
        if self.finished {
            return self.already_finished(now_unix_ms);
        }
        self.finished = true;
        if !matches!(self.response, ResponseState::Json) {
            let fault = self.response_fault.unwrap_or(ErrorCode::NotJsonResponse);
            return self.outcome(None, None, Some(fault), Vec::new(), now_unix_ms);
        }
        let format = self.format.unwrap_or(Format::Chat);
        match format.parse(body) {
            Ok(facts) => {
                // `None` inside: counts whose sum does not fit (`cost_overflow`).
                let reported = match facts.usage {
                    Some(Report::Complete(usage)) => Some(Some(usage)),
                    Some(Report::Anthropic(counts)) => Some(counts.normalise()),
                    Some(Report::Overflow) => Some(None),
                    None => None,
                };
                let mut fault = if facts.error.is_some() {
                    Some(ErrorCode::UpstreamError)
                } else if matches!(reported, Some(None)) {
                    Some(ErrorCode::CostOverflow)
                } else {
                    None
                };
                let usage = match reported {
                    Some(usage) => usage.map(Reported::Exact),
                    None if fault.is_none() => {
                        let model = facts.model.as_deref().or(self.request.model.as_deref());
                        self.estimate(output_estimate(format, model, body))
                    }
                    None => None,
                };
                if usage.is_none()
                    && fault.is_none()
                    && matches!(
                        format,
                        Format::GeminiEmbeddings | Format::Images | Format::Transcription
                    )
                {
                    // Some Gemini embedding answers carry no usage, nor do dall-e image answers
                    // (billed per image) or translations: nothing to price, and the record says
                    // so rather than looking like a free call.
                    fault = Some(ErrorCode::UsageNotReported);
                }
                self.outcome(usage, facts.model, fault, Vec::new(), now_unix_ms)
            }
            Err(_) => self.outcome(
                None,
                None,
                Some(ErrorCode::MalformedJson),
                Vec::new(),
                now_unix_ms,
            ),
        }
    }

    /// The stream ended normally.
    pub fn finish_stream(&mut self, now_unix_ms: u64) -> Outcome {
        self.finish_stream_as(None, now_unix_ms)
    }

    /// The response passed through unmetered and ended.
    pub fn finish_passthrough(&mut self, now_unix_ms: u64) -> Outcome {
        if matches!(self.response, ResponseState::Stream(_)) {
            return self.finish_stream(now_unix_ms);
        }
        if self.finished {
            return self.already_finished(now_unix_ms);
        }
        self.finished = true;
        if self.priced_from_request {
            let (usage, fault) = self.speech_usage();
            return self.outcome(usage, None, fault, Vec::new(), now_unix_ms);
        }
        let fault = self.response_fault;
        self.outcome(None, None, fault, Vec::new(), now_unix_ms)
    }

    /// A speech call's usage, from its request: the input's characters where the entry bills
    /// per character (tts-1, tts-1-hd). gpt-4o-mini-tts bills tokens its audio answer does not
    /// report: `usage_not_reported`, never a guess. An unknown model keeps the characters, so the
    /// record says `unknown_model`.
    fn speech_usage(&self) -> (Option<Reported>, Option<ErrorCode>) {
        let Some(characters) = self.request.input_characters else {
            // The body was not read (too large, not JSON) or has no `input`.
            return (
                None,
                Some(self.request_note.unwrap_or(ErrorCode::UsageNotReported)),
            );
        };
        let priced = self.request.model.as_deref().and_then(|m| self.resolve(m));
        if priced.is_some_and(|p| !p.prices.has("input_character")) {
            return (None, Some(ErrorCode::UsageNotReported));
        }
        let usage = Usage {
            input_characters: characters,
            ..Usage::default()
        };
        (Some(Reported::Exact(usage)), None)
    }

    /// The client or the upstream went away before the end.
    pub fn finish_aborted(&mut self, now_unix_ms: u64) -> Outcome {
        if matches!(self.response, ResponseState::Stream(_)) {
            return self.finish_stream_as(Some(ErrorCode::Aborted), now_unix_ms);
        }
        if self.finished {
            return self.already_finished(now_unix_ms);
        }
        self.finished = true;
        self.outcome(
            None,
            None,
            Some(ErrorCode::Aborted),
            Vec::new(),
            now_unix_ms,
        )
    }

    fn finish_stream_as(&mut self, abort: Option<ErrorCode>, now_unix_ms: u64) -> Outcome {
        if self.finished {
            return self.already_finished(now_unix_ms);
        }
        self.finished = true;
        let ResponseState::Stream(scan) = &mut self.response else {
            return self.outcome(None, None, abort, Vec::new(), now_unix_ms);
        };
        let tail = scan.finish();
        let oversized = scan.oversized_events();
        let facts = scan.facts();
        // Anthropic and Gemini report cumulative usage as the stream goes: cut before its end,
        // the counts are only a lower bound.
        let partial = facts.usage.is_some()
            && !facts.saw_end
            && matches!(self.format, Some(Format::Anthropic | Format::Gemini));
        let fault = if facts.error.is_some() {
            Some(ErrorCode::UpstreamError)
        } else if abort.is_some() && !facts.saw_end {
            // After the end marker the answer is whole: a client that hangs up then (openai's
            // Python SDK closes its connection at `[DONE]`) did not cut anything.
            abort
        } else if facts.overflow {
            Some(ErrorCode::CostOverflow)
        } else if facts.usage.is_none() && facts.malformed_events > 0 {
            Some(ErrorCode::MalformedStream)
        } else if facts.usage.is_none() && oversized > 0 {
            Some(ErrorCode::OversizeEvent)
        } else if (facts.usage.is_none() || partial) && !facts.saw_end {
            Some(ErrorCode::TruncatedStream)
        } else {
            None
        };
        let model = facts.model.clone();
        let streamed = facts.estimated_output(
            self.format.unwrap_or(Format::Chat),
            model.as_deref().or(self.request.model.as_deref()),
        );
        let usage = match facts.usage.clone() {
            Some(mut usage) if partial => {
                usage.completion_tokens = usage.completion_tokens.max(streamed.completion_tokens);
                Some(Reported::Estimated(usage))
            }
            Some(usage) => Some(Reported::Exact(usage)),
            None if facts.error.is_none() && !facts.overflow => self.estimate(streamed),
            None => None,
        };
        self.outcome(usage, model, fault, tail, now_unix_ms)
    }

    /// The answer to a second `finish_*`: an error record, so a host bug shows instead of hiding.
    fn already_finished(&self, now_unix_ms: u64) -> Outcome {
        self.outcome(
            None,
            None,
            Some(ErrorCode::AlreadyFinished),
            Vec::new(),
            now_unix_ms,
        )
    }

    /// Usage from the token estimate, when this build estimates and there is something to count.
    fn estimate(&self, output: OutputTokens) -> Option<Reported> {
        if !self.config.estimates()
            || (self.estimated_prompt.is_none() && output.completion_tokens == 0)
        {
            return None;
        }
        Some(Reported::Estimated(Usage {
            prompt_tokens: self.estimated_prompt.unwrap_or(0),
            completion_tokens: output.completion_tokens,
            reasoning_tokens: output.reasoning_tokens,
            ..Usage::default()
        }))
    }

    fn resolve(&self, model: &str) -> Option<Priced> {
        self.config
            .resolve_model(model, self.provider)
            .map(|resolved| resolved.priced)
    }

    /// `usage` at `prices` as they stood when the call started, then the route's or tenant's
    /// adjustment: the breakdown and the total.
    fn cost_of(
        &self,
        usage: &Usage,
        prices: &Prices,
        adjustment: Option<&Adjustment>,
    ) -> Result<(Breakdown, Usd), CostError> {
        let breakdown = price(usage, prices, Some(minute_of_day(self.start_ms)))?;
        let total = match adjustment {
            Some(a) => breakdown
                .total
                .scaled_signed_bp(a.basis_points)
                .map_err(CostError::Overflow)?,
            None => breakdown.total,
        };
        Ok((breakdown, total))
    }

    fn outcome(
        &self,
        usage: Option<Reported>,
        response_model: Option<String>,
        fault: Option<ErrorCode>,
        stream_tail: Vec<u8>,
        now_unix_ms: u64,
    ) -> Outcome {
        let model = response_model.or_else(|| self.request.model.clone());
        let adjustment = self
            .config
            .adjustments
            .iter()
            .find(|a| a.matches(&self.host, &self.path, self.key_id.as_deref()));
        let mut status = CostStatus::NoUsage;
        let mut error: Option<ErrorCode> = fault;
        let estimated = matches!(usage, Some(Reported::Estimated(_)));
        let usage = usage.map(|u| match u {
            Reported::Exact(u) | Reported::Estimated(u) => u,
        });
        let (mut cost, mut breakdown, mut priced_as) = (None, None, None);
        if let Some(usage) = &usage {
            match model.as_deref().and_then(|m| self.resolve(m)) {
                Some(priced) => match self.cost_of(usage, &priced.prices, adjustment) {
                    Ok((b, total)) => {
                        status = if estimated {
                            CostStatus::Estimated
                        } else {
                            CostStatus::Exact
                        };
                        cost = Some(total);
                        breakdown = Some(BreakdownRecord::from(&b));
                        // `openai/gpt-5+litellm:gpt-5`: the entry, and the second source of a
                        // price it used (e.g. a flex price OpenRouter does not list).
                        priced_as = Some(match priced.prices.supplement.as_ref() {
                            Some(s) if b.supplemented => format!("{}+{}", priced.id, s.source),
                            _ => priced.id,
                        });
                    }
                    Err(CostError::Unpriced(component)) => {
                        // The entry was found, but a billed part of the call has no price.
                        status = CostStatus::Unpriced;
                        error = error.or(Some(component.error_code()));
                        priced_as = Some(priced.id);
                    }
                    Err(CostError::Overflow(_)) => {
                        status = CostStatus::Error;
                        error = Some(ErrorCode::CostOverflow);
                    }
                },
                None => {
                    status = CostStatus::Unpriced;
                    error = error.or(Some(ErrorCode::UnknownModel));
                }
            }
        } else if let Some(note) = error.or(self.request_note) {
            // A refused call never ran, and an answer without usage was read as it is: no
            // usage, but nothing was metered wrong.
            if !self.refused && note != ErrorCode::UsageNotReported {
                status = CostStatus::Error;
            }
            error = Some(note);
        }
        let attributes = self
            .config
            .attribution
            .resolve(&self.attribution_headers, &self.body_values);
        let cost_usd = cost.map(Usd::to_decimal_string);
        let cost_micros = cost.map(Usd::to_micros);
        let stream = matches!(self.response, ResponseState::Stream(_)) || self.request.stream;
        let record = CostRecord {
            ts: rfc3339_millis(self.start_ms),
            request_id: self.request_id.clone(),
            host: self.host.clone(),
            provider: self.provider.as_str(),
            endpoint: self.endpoint.as_str(),
            model_requested: self.request.model.clone(),
            model,
            stream,
            status_code: self.status_code,
            prompt_tokens: usage.as_ref().map(|u| u.prompt_tokens),
            completion_tokens: usage.as_ref().map(|u| u.completion_tokens),
            cached_tokens: usage.as_ref().map(|u| u.cached_tokens),
            cache_write_tokens: usage.as_ref().map(|u| u.cache_write_tokens),
            reasoning_tokens: usage
                .as_ref()
                .map(|u| u.reasoning_tokens.min(u.completion_tokens)),
            cache_write_1h_tokens: usage
                .as_ref()
                .map(|u| u.cache_write_1h_tokens.min(u.cache_write_tokens)),
            audio_prompt_tokens: usage.as_ref().map(|u| u.audio_prompt_tokens),
            audio_completion_tokens: usage.as_ref().map(|u| u.audio_completion_tokens),
            image_prompt_tokens: usage.as_ref().map(|u| u.image_prompt_tokens),
            image_completion_tokens: usage.as_ref().map(|u| u.image_completion_tokens),
            audio_duration_ms: usage.as_ref().map(|u| u.audio_duration_ms),
            input_characters: usage.as_ref().map(|u| u.input_characters),
            service_tier: usage
                .as_ref()
                .and_then(|u| u.service_tier)
                .map(|t| t.as_str()),
            cost_usd,
            cost_micros,
            upstream_cost_usd: usage.as_ref().and_then(|u| u.upstream_cost.clone()),
            cost_status: status,
            error,
            pricing_version: self.config.pricing_version().to_owned(),
            breakdown,
            key_id: self.key_id.clone(),
            priced_as: priced_as.clone(),
            upstream_inference_cost_usd: usage
                .as_ref()
                .and_then(|u| u.upstream_inference_cost.clone()),
            is_byok: usage.as_ref().and_then(|u| u.is_byok),
            duration_ms: now_unix_ms.saturating_sub(self.start_ms),
            oversize_events: match &self.response {
                ResponseState::Stream(scan) => scan.oversized_events(),
                _ => 0,
            },
            adjustment_percent: adjustment
                .filter(|_| cost_micros.is_some())
                .map(|a| a.percent.trim().to_owned()),
            attributes: attributes.values,
            budget_would_exceed: Vec::new(),
            budget_thresholds: Vec::new(),
            budget_error: self.budget_error,
        };
        let mut sse_comment = stream_tail;
        if matches!(self.response, ResponseState::Stream(_)) && self.stream_cost_comment() {
            sse_comment.extend_from_slice(&record.sse_comment());
        }
        Outcome {
            headers: record.headers(&self.config.header_prefix),
            sse_comment,
            record_json: record.to_json(),
            record,
            cost,
            metric_model: priced_as.unwrap_or_else(|| "other".to_owned()),
            attributes_dropped: attributes.dropped,
        }
    }
}

/// Gemini names the model in the path: `/v1beta/models/gemini-2.5-flash:generateContent`,
/// `/v1beta/models/gemini-embedding-001:batchEmbedContents`.
fn gemini_model_from_path(path: &str) -> Option<String> {
    let path = path.split('?').next().unwrap_or("");
    let (_, rest) = path.split_once("/models/")?;
    let (model, method) = rest.split_once(':')?;
    let metered = matches!(
        method,
        "generateContent" | "streamGenerateContent" | "embedContent" | "batchEmbedContents"
    );
    (metered && !model.is_empty()).then(|| model.to_owned())
}

/// Usage as the call learned it.
enum Reported {
    /// Reported by the upstream.
    Exact(Usage),
    /// Estimated, or a lower bound from a stream cut short.
    Estimated(Usage),
}

/// Output tokens of a whole JSON body answered by `model` (only in builds that estimate).
fn output_estimate(format: Format, model: Option<&str>, body: &[u8]) -> OutputTokens {
    #[cfg(feature = "estimate")]
    return crate::estimate::output_tokens(format, model, body);
    #[cfg(not(feature = "estimate"))]
    {
        let _ = (format, model, body);
        OutputTokens::default()
    }
}

#[cfg(test)]
mod tests {
    //! The decision table: every way a call can end, and the plan, status and error it gets.

    use alloc::{format, vec, vec::Vec};

    use super::*;
    use crate::replay::{replay, End, Recorded};

    const CHAT: &str = "/api/v1/chat/completions";
    const USAGE: &[u8] = br#"{"model":"openai/gpt-4o","choices":[{}],"usage":{"prompt_tokens":10,"completion_tokens":5}}"#;
    const STREAM: &[u8] = b"data: {\"model\":\"openai/gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"model\":\"openai/gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}\n\n\
data: [DONE]\n\n";
    /// `STREAM` without its end marker (`[DONE]`).
    const UNENDED_STREAM: &[u8] = b"data: {\"model\":\"openai/gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n\
data: {\"model\":\"openai/gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5}}\n\n";
    const NO_USAGE_STREAM: &[u8] =
        b"data: {\"model\":\"openai/gpt-4o\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\n";

    const FORM_TYPE: Option<&str> = Some("multipart/form-data; boundary=b");
    /// A transcription form, the file first (as openai-node sends it for `{file, model}`).
    const FORM_MINI: &[u8] = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\x00\r\n--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-mini-transcribe\r\n--b--\r\n";
    const FORM_WHISPER: &[u8] = b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--b--\r\n";
    const FORM_GPT_4O: &[u8] =
        b"--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o\r\n--b--\r\n";

    /// The plan's kind, without its size limit.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    enum Plan {
        Buffer,
        Observe,
        Stream,
        Pass,
        Priced,
    }

    impl From<ResponsePlan> for Plan {
        fn from(plan: ResponsePlan) -> Plan {
            match plan {
                ResponsePlan::BufferJson { .. } => Plan::Buffer,
                ResponsePlan::ObserveJson { .. } => Plan::Observe,
                ResponsePlan::Stream => Plan::Stream,
                ResponsePlan::PassThrough => Plan::Pass,
                ResponsePlan::PassThroughPriced => Plan::Priced,
            }
        }
    }

    /// One row: a call and what it must give.
    struct Row {
        name: &'static str,
        config: &'static str,
        method: &'static str,
        host: &'static str,
        path: &'static str,
        request_type: Option<&'static str>,
        request_length: Option<u64>,
        request: Option<&'static [u8]>,
        status: u16,
        response_type: Option<&'static str>,
        response_length: Option<u64>,
        encoding: Option<&'static str>,
        body: &'static [u8],
        end: End,
        plan: Plan,
        cost_status: CostStatus,
        error: Option<ErrorCode>,
    }

    /// A metered chat call with a JSON request and a 200 JSON response carrying usage.
    const BASE: Row = Row {
        name: "",
        config: r#"{"estimate_missing_usage": false}"#,
        method: "POST",
        host: "openrouter.ai",
        path: CHAT,
        request_type: Some("application/json"),
        request_length: None,
        request: Some(br#"{"model":"openai/gpt-4o","messages":[]}"#),
        status: 200,
        response_type: Some("application/json"),
        response_length: None,
        encoding: None,
        body: USAGE,
        end: End::Complete,
        plan: Plan::Buffer,
        cost_status: CostStatus::Exact,
        error: None,
    };

    fn rows() -> Vec<Row> {
        use CostStatus::{Error, Estimated, Exact, NoUsage, Unpriced};
        use ErrorCode as E;
        let sse = Some("text/event-stream");
        vec![
            Row { name: "json with usage", ..BASE },
            Row { name: "encoding identity is not compression", encoding: Some(" Identity "), ..BASE },
            Row { name: "content type in capitals", response_type: Some("Application/JSON; charset=utf-8"), ..BASE },
            Row { name: "hold_headers off observes", config: r#"{"estimate_missing_usage": false, "hold_headers": false}"#, plan: Plan::Observe, ..BASE },
            Row { name: "stream with usage", response_type: sse, body: STREAM, plan: Plan::Stream, ..BASE },
            Row { name: "json without usage", body: br#"{"model":"openai/gpt-4o","choices":[{}]}"#, cost_status: NoUsage, ..BASE },
            Row { name: "unknown model", body: br#"{"model":"nobody/no-such-model","usage":{"prompt_tokens":1,"completion_tokens":1}}"#, request: Some(br#"{"model":"nobody/no-such-model"}"#), cost_status: Unpriced, error: Some(E::UnknownModel), ..BASE },
            // The entry is found, but a billed part of the call has no price in it: unpriced, named.
            Row { name: "audio input without an audio price", body: br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"audio_tokens":5}}}"#, cost_status: Unpriced, error: Some(E::UnpricedAudioIn), ..BASE },
            Row { name: "audio output without an audio price", body: br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":9,"completion_tokens_details":{"audio_tokens":5}}}"#, cost_status: Unpriced, error: Some(E::UnpricedAudioOut), ..BASE },
            Row { name: "cache reads without a cache price", body: br#"{"model":"bytedance-seed/seed-2.0-code","usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cached_tokens":5}}}"#, cost_status: Unpriced, error: Some(E::UnpricedCached), ..BASE },
            Row { name: "cache writes without a write price", body: br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":10,"completion_tokens":1,"prompt_tokens_details":{"cache_write_tokens":5}}}"#, cost_status: Unpriced, error: Some(E::UnpricedCacheWrite), ..BASE },
            Row { name: "one-hour cache writes without a one-hour price", host: "api.anthropic.com", path: "/v1/messages", request: Some(br#"{"model":"openai/gpt-4o"}"#), body: br#"{"model":"openai/gpt-4o","usage":{"input_tokens":1,"output_tokens":1,"cache_creation_input_tokens":5,"cache_creation":{"ephemeral_1h_input_tokens":5}}}"#, cost_status: Unpriced, error: Some(E::UnpricedCacheWrite1h), ..BASE },
            Row { name: "image output without an image price", host: "generativelanguage.googleapis.com", path: "/v1beta/models/gemini-3.5-flash:generateContent", request: Some(b"{}"), body: br#"{"modelVersion":"gemini-3.5-flash","usageMetadata":{"promptTokenCount":1,"candidatesTokenCount":9,"candidatesTokensDetails":[{"modality":"IMAGE","tokenCount":5}]}}"#, cost_status: Unpriced, error: Some(E::UnpricedImageOut), ..BASE },
            Row { name: "web searches without a search price", path: "/api/v1/responses", body: br#"{"model":"openai/gpt-4o","output":[{"type":"web_search_call"}],"usage":{"input_tokens":1,"output_tokens":1}}"#, cost_status: Unpriced, error: Some(E::UnpricedWebSearch), ..BASE },
            Row { name: "a served tier without prices", body: br#"{"model":"openai/gpt-4o","service_tier":"scale","usage":{"prompt_tokens":1,"completion_tokens":1}}"#, cost_status: Unpriced, error: Some(E::UnpricedServiceTier), ..BASE },
            Row { name: "upstream error object", body: br#"{"error":{"code":502,"message":"x"}}"#, cost_status: Error, error: Some(E::UpstreamError), ..BASE },
            Row { name: "upstream status 400", status: 400, plan: Plan::Pass, cost_status: Error, error: Some(E::UpstreamStatus), ..BASE },
            Row { name: "upstream status", status: 503, plan: Plan::Pass, cost_status: Error, error: Some(E::UpstreamStatus), ..BASE },
            Row { name: "upstream status wins over compression", status: 429, encoding: Some("gzip"), plan: Plan::Pass, cost_status: Error, error: Some(E::UpstreamStatus), ..BASE },
            Row { name: "compressed response", encoding: Some("gzip"), plan: Plan::Pass, cost_status: Error, error: Some(E::CompressedResponse), ..BASE },
            Row { name: "compressed stream", encoding: Some("br"), response_type: sse, body: STREAM, plan: Plan::Pass, cost_status: Error, error: Some(E::CompressedResponse), ..BASE },
            Row { name: "unsupported content type", response_type: Some("text/html"), plan: Plan::Pass, cost_status: Error, error: Some(E::UnsupportedContentType), ..BASE },
            Row { name: "no content type", response_type: None, plan: Plan::Pass, cost_status: Error, error: Some(E::UnsupportedContentType), ..BASE },
            Row { name: "gemini stream without alt=sse", host: "generativelanguage.googleapis.com", path: "/v1beta/models/gemini-2.5-flash:streamGenerateContent", request: Some(b"{}"), plan: Plan::Pass, cost_status: Error, error: Some(E::UnsupportedStreamFormat), ..BASE },
            Row { name: "unmetered endpoint", method: "GET", path: "/api/v1/models", request: None, plan: Plan::Pass, cost_status: Error, error: Some(E::UnmeteredEndpoint), ..BASE },
            Row { name: "response too large by content-length", config: r#"{"estimate_missing_usage": false, "max_response_body_bytes": 16}"#, response_length: Some(USAGE.len() as u64), plan: Plan::Pass, cost_status: Error, error: Some(E::ResponseTooLarge), ..BASE },
            Row { name: "response too large while buffering", config: r#"{"estimate_missing_usage": false, "max_response_body_bytes": 16}"#, cost_status: Error, error: Some(E::ResponseTooLarge), ..BASE },
            Row { name: "malformed json", body: b"{not json", cost_status: Error, error: Some(E::MalformedJson), ..BASE },
            Row { name: "request content type not json", request_type: Some("text/plain"), body: br#"{"model":"openai/gpt-4o","choices":[{}]}"#, cost_status: Error, error: Some(E::RequestNotJson), ..BASE },
            Row { name: "request body not json", request: Some(b"not json"), body: br#"{"model":"openai/gpt-4o","choices":[{}]}"#, cost_status: Error, error: Some(E::RequestNotJson), ..BASE },
            Row { name: "request not json, usage still priced", request: Some(b"not json"), ..BASE },
            Row { name: "request too large by content-length", config: r#"{"estimate_missing_usage": false, "max_request_body_bytes": 8}"#, request_length: Some(100), body: br#"{"model":"openai/gpt-4o","choices":[{}]}"#, cost_status: Error, error: Some(E::RequestTooLarge), ..BASE },
            Row { name: "request too large while buffering", config: r#"{"estimate_missing_usage": false, "max_request_body_bytes": 8}"#, body: br#"{"model":"openai/gpt-4o","choices":[{}]}"#, cost_status: Error, error: Some(E::RequestTooLarge), ..BASE },
            Row { name: "malformed stream", response_type: sse, body: b"data: {broken\n\ndata: [DONE]\n\n", plan: Plan::Stream, cost_status: Error, error: Some(E::MalformedStream), ..BASE },
            Row { name: "oversize event", config: r#"{"estimate_missing_usage": false, "max_sse_event_bytes": 32}"#, response_type: sse, body: STREAM, plan: Plan::Stream, cost_status: Error, error: Some(E::OversizeEvent), ..BASE },
            Row { name: "truncated stream", response_type: sse, body: NO_USAGE_STREAM, plan: Plan::Stream, cost_status: Error, error: Some(E::TruncatedStream), ..BASE },
            Row { name: "stream error event", response_type: sse, body: b"data: {\"error\":{\"code\":500}}\n\n", plan: Plan::Stream, cost_status: Error, error: Some(E::UpstreamError), ..BASE },
            Row { name: "stream with usage then aborted", response_type: sse, body: UNENDED_STREAM, end: End::Aborted, plan: Plan::Stream, cost_status: Exact, error: Some(E::Aborted), ..BASE },
            // The client hung up after `[DONE]` (openai's Python SDK does): a normal end.
            Row { name: "stream aborted after its end marker", response_type: sse, body: STREAM, end: End::Aborted, plan: Plan::Stream, cost_status: Exact, error: None, ..BASE },
            Row { name: "stream aborted before usage", response_type: sse, body: NO_USAGE_STREAM, end: End::Aborted, plan: Plan::Stream, cost_status: Error, error: Some(E::Aborted), ..BASE },
            Row { name: "json aborted", end: End::Aborted, cost_status: Error, error: Some(E::Aborted), ..BASE },
            Row {
                name: "anthropic stream cut before its end: a lower bound",
                host: "api.anthropic.com",
                path: "/v1/messages",
                request: Some(br#"{"model":"claude-sonnet-4-5"}"#),
                response_type: sse,
                body: b"data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\n",
                plan: Plan::Stream,
                cost_status: Estimated,
                error: Some(E::TruncatedStream),
                ..BASE
            },
            Row { name: "openai embeddings", host: "api.openai.com", path: "/v1/embeddings", request: Some(br#"{"model":"text-embedding-3-small","input":["hello"]}"#), body: br#"{"data":[],"model":"text-embedding-3-small","object":"list","usage":{"prompt_tokens":2,"total_tokens":2}}"#, ..BASE },
            Row { name: "openrouter embeddings", path: "/api/v1/embeddings", request: Some(br#"{"model":"openai/text-embedding-3-small","input":"x"}"#), body: br#"{"data":[],"model":"openai/text-embedding-3-small","usage":{"prompt_tokens":2,"total_tokens":2}}"#, ..BASE },
            Row { name: "gemini embeddings with usage", host: "generativelanguage.googleapis.com", path: "/v1beta/models/gemini-embedding-2:batchEmbedContents", request: Some(br#"{"requests":[]}"#), body: br#"{"embeddings":[{"values":[0.1]}],"usageMetadata":{"promptTokenCount":11}}"#, ..BASE },
            Row { name: "gemini embeddings without usage", host: "generativelanguage.googleapis.com", path: "/v1beta/models/gemini-embedding-001:embedContent", request: Some(br#"{"model":"models/gemini-embedding-001","content":{}}"#), body: br#"{"embedding":{"values":[0.1]}}"#, cost_status: NoUsage, error: Some(E::UsageNotReported), ..BASE },
            Row { name: "legacy completions", host: "api.openai.com", path: "/v1/completions", request: Some(br#"{"model":"gpt-3.5-turbo-instruct","prompt":"x"}"#), body: br#"{"object":"text_completion","model":"gpt-3.5-turbo-instruct","choices":[{"text":"y"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#, ..BASE },
            Row { name: "legacy completions stream", host: "api.openai.com", path: "/v1/completions", request: Some(br#"{"model":"gpt-3.5-turbo-instruct","prompt":"x","stream":true}"#), response_type: sse, body: b"data: {\"object\":\"text_completion\",\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[{\"text\":\"y\"}]}\n\ndata: {\"model\":\"gpt-3.5-turbo-instruct\",\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n", plan: Plan::Stream, ..BASE },
            Row { name: "transcription priced by tokens", host: "api.openai.com", path: "/v1/audio/transcriptions", request_type: FORM_TYPE, request: Some(FORM_MINI), body: br#"{"text":"Hi.","usage":{"type":"tokens","input_tokens":14,"input_token_details":{"text_tokens":0,"audio_tokens":14},"output_tokens":4,"total_tokens":18}}"#, ..BASE },
            Row { name: "transcription priced by duration", host: "api.openai.com", path: "/v1/audio/transcriptions", request_type: FORM_TYPE, request: Some(FORM_WHISPER), body: br#"{"text":"Hi.","usage":{"type":"duration","seconds":9}}"#, ..BASE },
            Row { name: "translation without usage", host: "api.openai.com", path: "/v1/audio/translations", request_type: FORM_TYPE, request: Some(FORM_WHISPER), body: br#"{"text":"Hi."}"#, cost_status: NoUsage, error: Some(E::UsageNotReported), ..BASE },
            Row { name: "transcription as plain text", host: "api.openai.com", path: "/v1/audio/transcriptions", request_type: FORM_TYPE, request: Some(FORM_WHISPER), response_type: Some("text/plain; charset=utf-8"), body: b"Hi.\n", plan: Plan::Pass, cost_status: NoUsage, error: Some(E::UsageNotReported), ..BASE },
            Row { name: "transcription stream", host: "api.openai.com", path: "/v1/audio/transcriptions", request_type: FORM_TYPE, request: Some(FORM_MINI), response_type: sse, body: b"data: {\"type\":\"transcript.text.delta\",\"delta\":\"Hi\"}\n\ndata: {\"type\":\"transcript.text.done\",\"text\":\"Hi.\",\"usage\":{\"type\":\"tokens\",\"input_tokens\":14,\"input_token_details\":{\"text_tokens\":0,\"audio_tokens\":14},\"output_tokens\":4,\"total_tokens\":18}}\n\n", plan: Plan::Stream, ..BASE },
            Row { name: "duration without a per-second price", host: "api.openai.com", path: "/v1/audio/transcriptions", request_type: FORM_TYPE, request: Some(FORM_GPT_4O), body: br#"{"text":"Hi.","usage":{"type":"duration","seconds":9}}"#, cost_status: Unpriced, error: Some(E::UnpricedAudioDuration), ..BASE },
            Row { name: "speech priced by its input characters", host: "api.openai.com", path: "/v1/audio/speech", request: Some(br#"{"model":"tts-1","input":"Hello world!","voice":"alloy"}"#), response_type: Some("audio/mpeg"), body: b"ID3\x04\x00", plan: Plan::Priced, ..BASE },
            Row { name: "speech of an unknown model", host: "api.openai.com", path: "/v1/audio/speech", request: Some(br#"{"model":"acme-tts","input":"Hello","voice":"alloy"}"#), response_type: Some("audio/mpeg"), body: b"ID3", plan: Plan::Priced, cost_status: Unpriced, error: Some(E::UnknownModel), ..BASE },
            Row { name: "speech of a model billed by tokens", host: "api.openai.com", path: "/v1/audio/speech", request: Some(br#"{"model":"gpt-4o","input":"Hello","voice":"alloy"}"#), response_type: Some("audio/mpeg"), body: b"ID3", plan: Plan::Priced, cost_status: NoUsage, error: Some(E::UsageNotReported), ..BASE },
            Row { name: "speech stream priced by its done event", host: "api.openai.com", path: "/v1/audio/speech", request: Some(br#"{"model":"gpt-4o-mini-tts","input":"Hello","voice":"alloy","stream_format":"sse"}"#), response_type: sse, body: b"data: {\"type\":\"speech.audio.delta\",\"audio\":\"SUQz\"}\n\ndata: {\"type\":\"speech.audio.done\",\"usage\":{\"input_tokens\":2,\"output_tokens\":30,\"total_tokens\":32}}\n\n", plan: Plan::Stream, ..BASE },
            Row { name: "speech stream cut before its done event", host: "api.openai.com", path: "/v1/audio/speech", request: Some(br#"{"model":"gpt-4o-mini-tts","input":"Hello","voice":"alloy","stream_format":"sse"}"#), response_type: sse, body: b"data: {\"type\":\"speech.audio.delta\",\"audio\":\"SUQz\"}\n\n", plan: Plan::Stream, cost_status: Error, error: Some(E::TruncatedStream), ..BASE },
            Row { name: "verbose translation priced by its duration", host: "api.openai.com", path: "/v1/audio/translations", request_type: FORM_TYPE, request: Some(FORM_WHISPER), body: br#"{"task":"translate","language":"english","duration":8.5,"text":"Hi.","segments":[]}"#, ..BASE },
            Row { name: "speech refused upstream", host: "api.openai.com", path: "/v1/audio/speech", request: Some(br#"{"model":"tts-1","input":"Hello","voice":"alloy"}"#), status: 400, body: br#"{"error":{"code":"invalid_value"}}"#, plan: Plan::Pass, cost_status: Error, error: Some(E::UpstreamStatus), ..BASE },
            Row {
                name: "absurd counts",
                body: br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}"#,
                cost_status: Error,
                error: Some(E::CostOverflow),
                ..BASE
            },
        ]
    }

    #[test]
    fn a_form_is_held_for_its_model_only_when_a_budget_depends_on_it() {
        let head = RequestHead {
            method: "POST",
            host: "api.openai.com",
            path: "/v1/audio/transcriptions",
            content_type: FORM_TYPE,
            ..RequestHead::default()
        };
        let call = |config: &str| {
            Call::new(
                &Rc::new(MeterConfig::from_json(config.as_bytes()).unwrap()),
                head,
                1,
            )
        };
        let key_rule = r#"{"budgets":{"rules":[{"dimension":"key_id","default_limit_usd":"1"}]}}"#;
        assert_eq!(call(key_rule).form_hold_bytes(), None);
        let model_rule = r#"{"max_request_body_bytes":4096,"budgets":{"rules":[{"dimension":"model","default_limit_usd":"1"}]}}"#;
        let mut c = call(model_rule);
        assert_eq!(c.form_hold_bytes(), Some(4096));
        // The file first: nothing known yet, under the bound.
        let (file, model) = FORM_MINI.split_at(FORM_MINI.len() - 40);
        c.scan_request_chunk(file);
        assert!(!c.form_hold_over(file.len(), false));
        assert!(c.form_hold_over(4096, false), "the bound ends the hold");
        assert!(c.form_hold_over(file.len(), true), "so does the body's end");
        c.scan_request_chunk(model);
        assert!(
            c.form_hold_over(FORM_MINI.len(), false),
            "the model is known"
        );
        assert_eq!(c.form_hold_bytes(), None);
        assert_eq!(
            c.budget_facts().model.as_deref(),
            Some("openai/gpt-4o-mini-transcribe")
        );
    }

    fn run(row: &Row) -> (Plan, Outcome) {
        let config = Rc::new(MeterConfig::from_json(row.config.as_bytes()).unwrap());
        let recorded = Recorded {
            request_head: RequestHead {
                method: row.method,
                host: row.host,
                path: row.path,
                content_type: row.request_type,
                content_length: row.request_length,
                ..RequestHead::default()
            },
            request: row.request,
            response_head: ResponseHead {
                status: row.status,
                content_type: row.response_type,
                content_length: row.response_length,
                content_encoding: row.encoding,
            },
            response: row.body,
            cuts: &[],
            start_ms: 0,
            end_ms: 1,
            end: row.end,
        };
        let replayed = replay(&config, &recorded);
        (replayed.response_plan.into(), replayed.outcome)
    }

    #[test]
    fn every_row_of_the_decision_table() {
        let mut failures = Vec::new();
        for row in rows() {
            let (plan, outcome) = run(&row);
            let record = outcome.record;
            let got = (plan, record.cost_status, record.error);
            let expected = (row.plan, row.cost_status, row.error);
            if got != expected {
                failures.push(format!("{}: got {got:?}, expected {expected:?}", row.name));
            }
            // A cost only when priced, never a made-up one.
            let priced = matches!(
                record.cost_status,
                CostStatus::Exact | CostStatus::Estimated
            );
            assert_eq!(record.cost_usd.is_some(), priced, "{}", row.name);
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn host_bugs_and_host_refusals_give_their_codes() {
        let config = Rc::new(MeterConfig::from_json(BASE.config.as_bytes()).unwrap());
        let head = RequestHead {
            method: "POST",
            host: "openrouter.ai",
            path: CHAT,
            ..RequestHead::default()
        };
        // A JSON body finished for a response that passed through.
        let mut call = Call::new(&config, head, 0);
        call.on_response_head(ResponseHead {
            status: 200,
            content_type: Some("text/html"),
            ..ResponseHead::default()
        });
        let mut stream = Call::new(&config, head, 0);
        stream.on_response_head(ResponseHead {
            status: 200,
            content_type: Some("text/event-stream"),
            ..ResponseHead::default()
        });
        let before_head = Call::new(&config, head, 0).finish_json(USAGE, 1).record;
        assert_eq!(before_head.error, Some(ErrorCode::NotJsonResponse));
        assert_eq!(
            stream.finish_json(USAGE, 1).record.error,
            Some(ErrorCode::NotJsonResponse)
        );
        // A second end, of any kind.
        let first = call.finish_passthrough(1).record;
        assert_eq!(first.error, Some(ErrorCode::UnsupportedContentType));
        for second in [
            call.finish_json(USAGE, 2),
            call.finish_passthrough(2),
            call.finish_aborted(2),
            call.finish_refused(429, ErrorCode::BudgetExceeded, 2),
        ] {
            assert_eq!(
                (second.record.cost_status, second.record.error),
                (CostStatus::Error, Some(ErrorCode::AlreadyFinished))
            );
        }
        // The host answered the call itself: nothing metered wrong, so not an error status.
        for code in [
            ErrorCode::BudgetExceeded,
            ErrorCode::UnpricedModelRefused,
            ErrorCode::BudgetSpendUnknown,
            ErrorCode::UpstreamUnreachable,
        ] {
            let record = Call::new(&config, head, 0)
                .finish_refused(429, code, 1)
                .record;
            assert_eq!(
                (record.cost_status, record.error),
                (CostStatus::NoUsage, Some(code))
            );
        }
    }

    #[test]
    fn a_call_let_through_unchecked_says_why_and_is_metered_as_usual() {
        let config = Rc::new(MeterConfig::default());
        let head = RequestHead {
            method: "POST",
            host: "openrouter.ai",
            path: "/api/v1/chat/completions",
            ..RequestHead::default()
        };
        let checked = Call::new(&config, head, 0).finish_json(USAGE, 1);
        let mut call = Call::new(&config, head, 0);
        call.budget_unchecked(BudgetError::StoreTimeout);
        let unchecked = call.finish_json(USAGE, 1);
        assert_eq!(checked.record.budget_error, None);
        assert_eq!(
            unchecked.record.budget_error,
            Some(BudgetError::StoreTimeout)
        );
        assert_eq!(unchecked.cost, checked.cost);
        assert!(unchecked
            .record_json
            .contains(r#""budget_error":"store_timeout""#));
    }

    #[test]
    fn the_table_reaches_every_error_code() {
        let mut seen: Vec<ErrorCode> = rows().iter().filter_map(|r| r.error).collect();
        // Set by the host-bug and refusal test above.
        seen.extend([
            ErrorCode::NotJsonResponse,
            ErrorCode::AlreadyFinished,
            ErrorCode::BudgetExceeded,
            ErrorCode::UnpricedModelRefused,
            ErrorCode::BudgetSpendUnknown,
            ErrorCode::UpstreamUnreachable,
            // Not reachable through a call: speech without a character price is
            // `usage_not_reported` (`speech_usage`); `cost::price` has its own test.
            ErrorCode::UnpricedInputCharacters,
        ]);
        let missing: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|c| !seen.contains(c))
            .collect();
        assert!(missing.is_empty(), "no row for {missing:?}");
    }

    #[test]
    fn budget_facts_learn_the_model_and_body_attributes_from_the_request_body() {
        let config = Rc::new(
            MeterConfig::from_json(
                br#"{"attribution":{"dimensions":{"team":{"from":["header:x-team"]},
                    "feature":{"from":["body:metadata.feature"]}}}}"#,
            )
            .unwrap(),
        );
        let headers = vec![("x-team".to_owned(), "search".to_owned())];
        let head = RequestHead {
            method: "POST",
            host: "openrouter.ai",
            path: CHAT,
            authorization: Some("Bearer sk-x"),
            attribution_headers: &headers,
            ..RequestHead::default()
        };
        let mut call = Call::new(&config, head, 0);
        let before = call.budget_facts();
        assert_eq!(before.model, None);
        assert_eq!(
            before.attributes.get("team").map(String::as_str),
            Some("search")
        );
        assert!(!before.attributes.contains_key("feature"));
        assert_eq!(
            before.key_id.as_deref(),
            crate::identity::key_id("sk-x").as_deref()
        );
        call.rewrite_request(
            br#"{"model":"anthropic/claude-sonnet-4-5","metadata":{"feature":"chat"}}"#,
        );
        let after = call.budget_facts();
        // The table's id, as `priced_as` would say.
        assert_eq!(after.model.as_deref(), Some("anthropic/claude-sonnet-4.5"));
        assert!(after.priced);
        assert_eq!(after.provider, "openrouter");
        assert_eq!(
            after.attributes.get("feature").map(String::as_str),
            Some("chat")
        );
        let mut unknown = Call::new(&config, head, 0);
        unknown.rewrite_request(br#"{"model":"acme/none"}"#);
        let facts = unknown.budget_facts();
        assert_eq!(
            (facts.model.as_deref(), facts.priced),
            (Some("acme/none"), false)
        );
    }

    #[test]
    fn budget_marks_reach_the_record_and_its_json() {
        let config = Rc::new(MeterConfig::default());
        let head = RequestHead {
            method: "POST",
            host: "openrouter.ai",
            path: CHAT,
            ..RequestHead::default()
        };
        let mut outcome = Call::new(&config, head, 0).finish_aborted(1);
        assert!(outcome
            .record_json
            .contains(r#""budget_would_exceed":[],"budget_thresholds":[]"#));
        let mark = BudgetMark {
            dimension: "team".into(),
            value: "search".into(),
            period: "month",
            limit_usd: "10".into(),
            spent_usd: "8".into(),
            percent: Some(80),
        };
        outcome.mark_budgets(Vec::new(), vec![mark.clone()]);
        assert_eq!(outcome.record.budget_thresholds, vec![mark]);
        assert!(
            outcome.record_json.contains(
                r#""budget_thresholds":[{"dimension":"team","value":"search","period":"month","limit_usd":"10","spent_usd":"8","percent":80}]"#
            ),
            "{}",
            outcome.record_json
        );
    }
}
