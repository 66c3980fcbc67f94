//! The per-request HTTP filter: hands one call's bytes to a core `Call` and applies its answers.
//!
//! Host rules this file works around (Envoy 1.40, checked by running it):
//! - `Pause` in a headers callback holds the headers; the body callback then sees the whole
//!   buffered body. For requests this needs `allow_on_headers_stop_iteration: true` in the wasm
//!   `PluginConfig`, or Envoy never calls the body callback and the request hangs.
//! - Envoy never fixes `content-length` after a body change; we set it while headers are held.
//! - A paused body past the listener's `per_connection_buffer_limit_bytes` gets the client a 500
//!   (413 for requests), so we stop holding at the core's `max_bytes` and let the rest pass.
//! - Streams are never paused: every chunk is forwarded in the callback that received it.

use std::rc::Rc;

use llm_cost_core::identity::credential;
use llm_cost_core::{
    BudgetMark, Call, Charge, Endpoint, ErrorCode, Forward, MeterConfig, Outcome, RequestBodyPlan,
    RequestHead, ResponseHead, ResponsePlan, Usd,
};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::{Action, BufferType, MapType};

use crate::body_copy::BodyCopy;
use crate::budget::{self, Admission};
use crate::host::{self, header, now_unix_ms};
use crate::root::Shared;
use llm_cost_core::budget::{SpendUnknownRefusal, UnpricedRefusal};
use llm_cost_core::Rejection;

/// Filter state key: `%FILTER_STATE(wasm.llm_cost:PLAIN)%` in an access log prints the record.
pub const FILTER_STATE_KEY: &str = "llm_cost";

/// Filter state key holding the call's cost in whole micro-USD (`0` when unpriced):
/// `%FILTER_STATE(wasm.llm_cost_micros:PLAIN)%`, e.g. as a rate limit `hits_addend`.
pub const FILTER_STATE_MICROS_KEY: &str = "llm_cost_micros";

/// Filter state key holding the record's `attributes` object (JSON):
/// `%FILTER_STATE(wasm.llm_cost_attributes:PLAIN)%`.
pub const FILTER_STATE_ATTRIBUTES_KEY: &str = "llm_cost_attributes";

/// Prefix of the filter state key of each attribute's value:
/// `%FILTER_STATE(wasm.llm_cost_attr_team:PLAIN)%` (absent when the call has no value).
pub const FILTER_STATE_ATTRIBUTE_PREFIX: &str = "llm_cost_attr_";

/// What the response body callbacks do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Response {
    /// Headers not seen yet.
    Pending,
    /// Holding a JSON body (headers held too) up to `max_bytes`.
    Json { max_bytes: usize },
    /// Forwarding a JSON body, copying it into `response_copy` (`hold_headers: false`).
    ObservedJson,
    /// Forwarding an SSE stream chunk by chunk.
    Stream,
    /// Forwarding untouched.
    PassThrough,
}

/// One request's filter.
pub struct MeterFilter {
    config: Option<Rc<MeterConfig>>,
    shared: Rc<Shared>,
    call: Option<Call>,
    /// Holding the request body for the rewrite, up to this many bytes.
    request_limit: Option<usize>,
    /// The request body copied as it passes (`RequestBodyPlan::Observe`).
    request_copy: Option<BodyCopy>,
    /// Each request chunk goes to the core's form scan as it passes (`RequestBodyPlan::ScanForm`).
    scan_form: bool,
    /// While the request headers are held for a form's `model` (`Call::form_hold_bytes`): the
    /// bytes of the held body already scanned.
    form_held: Option<usize>,
    /// The JSON response body copied as it passes (`Response::ObservedJson`).
    response_copy: Option<BodyCopy>,
    request_had_length: bool,
    response: Response,
    finished: bool,
    /// Budget rules holding a reservation for this call, settled when it ends.
    held: Vec<Charge>,
    /// Shadow budget rules this call is over (for its record).
    would_exceed: Vec<BudgetMark>,
    /// The budget check waits for the request body (it may name the model and attributes).
    budget_pending: bool,
}

impl MeterFilter {
    /// A filter for one request; `config` is `None` only if the configuration was refused.
    pub fn new(config: Option<Rc<MeterConfig>>, shared: Rc<Shared>) -> Self {
        MeterFilter {
            config,
            shared,
            call: None,
            request_limit: None,
            request_copy: None,
            scan_form: false,
            form_held: None,
            response_copy: None,
            request_had_length: false,
            response: Response::Pending,
            finished: false,
            held: Vec::new(),
            would_exceed: Vec::new(),
            budget_pending: false,
        }
    }

    /// Finishes the call once (`finish` runs the core), then emits what it produced.
    fn finish(&mut self, finish: impl FnOnce(&mut Call, u64) -> Outcome) -> Option<Outcome> {
        if self.finished {
            return None;
        }
        let call = self.call.as_mut()?;
        self.finished = true;
        let now = now_unix_ms();
        let mut outcome = finish(call, now);
        let mut thresholds = Vec::new();
        if let Some(config) = &self.config {
            let cost = outcome.cost.unwrap_or(Usd::ZERO);
            for charge in self.held.drain(..) {
                thresholds.extend(budget::settle(&config.budgets, &charge, cost, now));
            }
        }
        outcome.mark_budgets(std::mem::take(&mut self.would_exceed), thresholds);
        if call.is_metered() {
            self.emit(&outcome);
        }
        Some(outcome)
    }

    /// Publishes a metered call's record: filter state, metrics, the collector queue.
    fn emit(&self, outcome: &Outcome) {
        host::set_filter_state(FILTER_STATE_KEY, outcome.record_json.as_bytes());
        let micros = outcome.record.cost_micros.unwrap_or(0).to_string();
        host::set_filter_state(FILTER_STATE_MICROS_KEY, micros.as_bytes());
        let attributes = &outcome.record.attributes;
        let attributes_json = outcome.record.attributes_json();
        host::set_filter_state(FILTER_STATE_ATTRIBUTES_KEY, attributes_json.as_bytes());
        for (name, value) in attributes {
            let key = format!("{FILTER_STATE_ATTRIBUTE_PREFIX}{name}");
            host::set_filter_state(&key, value.as_bytes());
        }
        let mut labels = Vec::new();
        if let Some(attribution) = self.config.as_ref().map(|c| &c.attribution) {
            let mut admitted = self.shared.labels.borrow_mut();
            for name in &attribution.metric_labels {
                let value = attributes.get(name).map(String::as_str);
                let value = admitted.admit(name, value, attribution.max_label_values);
                labels.push((name.clone(), value));
            }
        }
        let mut metrics = self.shared.metrics.borrow_mut();
        metrics.add_record(&outcome.record, &outcome.metric_model, &labels);
        for (name, n) in budget::metric_increments(&outcome.record) {
            metrics.add(&name, n);
        }
        metrics.add(
            &format!("{}.attributes_dropped_total", crate::metrics::PREFIX),
            u64::from(outcome.attributes_dropped),
        );
        drop(metrics);
        if self.shared.send_records.get() {
            self.shared
                .queue
                .borrow_mut()
                .push(outcome.record_json.clone());
        }
    }

    /// A chunk of a form ([`RequestBodyPlan::ScanForm`]) for the core's scan. Not held, the
    /// buffer holds just this chunk: it goes on at once. Held for the budget check
    /// (`form_held`), the buffer grows by each chunk: the core reads the new bytes, and once it
    /// says the check can run, the check runs and the held form goes on (or a refusal is sent).
    fn scan_form_chunk(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(call) = self.call.as_mut() else {
            return Action::Continue;
        };
        let Some(scanned) = self.form_held else {
            call.scan_request_chunk(&host::body(BufferType::HttpRequestBody, body_size));
            return Action::Continue;
        };
        if body_size > scanned {
            let new = host::body_range(BufferType::HttpRequestBody, scanned, body_size - scanned);
            call.scan_request_chunk(&new);
        }
        if !call.form_hold_over(body_size, end_of_stream) {
            self.form_held = Some(body_size.max(scanned));
            return Action::Pause; // Envoy keeps buffering; the next call sees the new bytes
        }
        self.form_held = None;
        if self.refused_after_body() {
            return Action::Pause; // the local reply is on its way
        }
        Action::Continue
    }

    /// Runs the budget check the request headers deferred to the end of the body; true when
    /// the call was refused (a local reply is on its way: the held headers never go upstream).
    fn refused_after_body(&mut self) -> bool {
        if !std::mem::take(&mut self.budget_pending) {
            return false;
        }
        match self.config.clone() {
            Some(config) => self.refused_by_budget(&config),
            None => false,
        }
    }

    /// Checks every budget rule that matches the call; true when it was refused (a 429, or a
    /// 403 for an unpriced model under `unpriced: "deny"`, was sent).
    fn refused_by_budget(&mut self, config: &MeterConfig) -> bool {
        let Some(call) = self.call.as_mut() else {
            return false;
        };
        let facts = call.budget_facts();
        let charges = config.budgets.charges(&facts);
        if charges.is_empty() {
            return false;
        }
        let now = now_unix_ms();
        let json = || vec![("content-type", "application/json".to_owned())];
        // `budgets.on_unknown_spend`: the root has not read the collector's spend (yet).
        let unknown = config
            .budgets
            .unknown_spend(self.shared.spend_known.get(), &charges);
        if unknown.is_some() {
            self.shared
                .metrics
                .borrow_mut()
                .add(budget::SPEND_UNKNOWN, 1);
        }
        let (status, reason, headers, body) =
            match (config.budgets.unpriced_refusal(&facts, &charges), unknown) {
                (Some(refusal), _) => (
                    UnpricedRefusal::STATUS,
                    ErrorCode::UnpricedModelRefused,
                    json(),
                    refusal.body_json(),
                ),
                (None, Some(Some(refusal))) => (
                    SpendUnknownRefusal::STATUS,
                    ErrorCode::BudgetSpendUnknown,
                    json(),
                    refusal.body_json(),
                ),
                (None, _) => match budget::admit(&config.budgets, charges, now) {
                    Admission::Admitted { held, would_exceed } => {
                        self.held = held;
                        self.would_exceed = would_exceed;
                        return false;
                    }
                    Admission::Refused(rejection) => (
                        Rejection::STATUS,
                        ErrorCode::BudgetExceeded,
                        rejection.headers(),
                        rejection.body_json(),
                    ),
                },
            };
        let outcome = call.finish_refused(status, reason, now);
        self.finished = true;
        self.emit(&outcome);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        host::send_response(u32::from(status), &headers, body.as_bytes());
        true
    }
}

impl Context for MeterFilter {}

impl HttpContext for MeterFilter {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(config) = &self.config else {
            return Action::Continue;
        };
        let req = |name: &str| header(MapType::HttpRequestHeaders, name);
        let path = req(":path");
        let path = path.as_deref().unwrap_or("");
        // The path first: most requests that are not LLM calls (health checks, static files)
        // are told apart by it alone, for one host call (each costs µs in V8; docs/PERFORMANCE.md).
        if Endpoint::from_path(path) == Endpoint::Other {
            return Action::Continue;
        }
        let method = req(":method");
        let method = method.as_deref().unwrap_or("");
        // The path is an endpoint (above): what `Endpoint::of_request` adds is the method.
        if !Endpoint::is_metered_method(method) {
            // Not an LLM call (a GET of a metered path): no call, no record, and
            // no more host calls than these two, here or in the later callbacks.
            return Action::Continue;
        }
        let host = req(":authority");
        let authorization = credential(req, path);
        let attribution_headers: Vec<(String, String)> = config
            .attribution
            .header_names()
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), req(name)?)))
            .collect();
        let (content_type, request_id) = (req("content-type"), req("x-request-id"));
        let content_length = req("content-length").and_then(|v| v.trim().parse().ok());
        let head = RequestHead {
            method,
            host: host.as_deref().unwrap_or(""),
            upstream_host: None,
            path,
            authorization: authorization.as_deref(),
            content_type: content_type.as_deref(),
            content_length,
            request_id: request_id.as_deref(),
            attribution_headers: &attribution_headers,
        };
        // A client must not hand our headers to the upstream as if we had set them; attribution
        // sources (e.g. `x-llm-tags`) stay unless `remove_headers` says otherwise.
        let attribution = &config.attribution;
        host::remove_headers(MapType::HttpRequestHeaders, |name| {
            if attribution.is_source_header(name) {
                attribution.remove_headers
            } else {
                config.is_own_header(name)
            }
        });
        let call = Call::new(config, head, now_unix_ms());
        if let (Some(name), Some(key_id)) = (&config.key_id_header, call.key_id()) {
            host::set_header(MapType::HttpRequestHeaders, name, key_id);
        }
        self.request_had_length = content_length.is_some();
        let plan = call.request_body_plan();
        let hold_form = call.form_hold_bytes().is_some() && !end_of_stream;
        self.call = Some(call);
        let config = Rc::clone(config);
        if !config.budgets.is_empty() {
            if hold_form {
                // A budget depends on the form's `model` field: check once it has passed (the
                // headers are held until then, a bounded prefix of the form buffered).
                self.budget_pending = true;
            } else if matches!(plan, RequestBodyPlan::Buffer { .. }) && !end_of_stream {
                // The body may name the model and `body:` attributes: check when it is complete
                // (the headers are held until then, so a refusal still reaches no upstream).
                self.budget_pending = true;
            } else if self.refused_by_budget(&config) {
                return Action::Pause; // the local reply is on its way
            }
        }
        match plan {
            // Hold the headers: content-length can only change while they are held.
            RequestBodyPlan::Buffer { max_bytes } if !end_of_stream => {
                self.request_limit = Some(max_bytes);
                Action::Pause
            }
            RequestBodyPlan::Observe { max_bytes } if !end_of_stream => {
                self.request_copy = Some(BodyCopy::new(max_bytes));
                Action::Continue
            }
            RequestBodyPlan::ScanForm if !end_of_stream => {
                self.scan_form = true;
                if hold_form {
                    self.form_held = Some(0);
                    return Action::Pause;
                }
                Action::Continue
            }
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if self.request_copy.is_some() {
            self.observe_request_chunk(body_size, end_of_stream);
            return Action::Continue;
        }
        if self.scan_form {
            return self.scan_form_chunk(body_size, end_of_stream);
        }
        let Some(max_bytes) = self.request_limit else {
            return Action::Continue;
        };
        let Some(call) = self.call.as_mut() else {
            return Action::Continue;
        };
        if body_size > max_bytes {
            // Never hold more than the limit (Envoy answers 413 past its buffer limit).
            call.request_body_too_large();
            self.request_limit = None;
            if self.refused_after_body() {
                return Action::Pause;
            }
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause; // Envoy keeps buffering; the next call sees the whole body
        }
        self.request_limit = None;
        let body = host::body(BufferType::HttpRequestBody, body_size);
        if let Some(new_body) = call.rewrite_request(&body) {
            if host::set_body(BufferType::HttpRequestBody, 0, body_size, &new_body)
                && self.request_had_length
            {
                // Headers are still held: a stale content-length would truncate the body upstream.
                let length = new_body.len().to_string();
                host::set_header(MapType::HttpRequestHeaders, "content-length", &length);
            }
        }
        if self.refused_after_body() {
            return Action::Pause; // the local reply is on its way
        }
        Action::Continue
    }

    fn on_http_request_trailers(&mut self, _num_trailers: usize) -> Action {
        // A body with trailers never reaches end-of-stream in the body callback: let it pass.
        self.request_limit = None;
        self.form_held = None;
        if let (Some(copy), Some(call)) = (self.request_copy.take(), self.call.as_mut()) {
            call.observe_request(copy.bytes());
        }
        if self.refused_after_body() {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.call.is_none() {
            return Action::Continue;
        }
        let resp = |name: &str| header(MapType::HttpResponseHeaders, name);
        let status = resp(":status").and_then(|s| s.parse().ok()).unwrap_or(0);
        let content_type = resp("content-type");
        let content_length = resp("content-length").and_then(|v| v.trim().parse().ok());
        let content_encoding = resp("content-encoding");
        let Some(call) = self.call.as_mut() else {
            return Action::Continue;
        };
        // An upstream must not forge our headers: only the filter sets them.
        if let Some(config) = &self.config {
            host::remove_headers(MapType::HttpResponseHeaders, |name| {
                config.is_own_header(name)
            });
        }
        let plan = call.on_response_head(ResponseHead {
            status,
            content_type: content_type.as_deref(),
            content_length,
            content_encoding: content_encoding.as_deref(),
        });
        self.response = match plan {
            ResponsePlan::BufferJson { max_bytes } => Response::Json { max_bytes },
            ResponsePlan::ObserveJson { max_bytes } => {
                self.response_copy = Some(BodyCopy::new(max_bytes));
                Response::ObservedJson
            }
            ResponsePlan::Stream => Response::Stream,
            ResponsePlan::PassThrough => Response::PassThrough,
            ResponsePlan::PassThroughPriced => {
                // Priced from the request: the headers are still ours to change, the body
                // (audio) goes on untouched.
                let outcome = self.finish(|c, now| c.finish_passthrough(now));
                for (name, value) in outcome.iter().flat_map(|o| &o.headers) {
                    host::set_header(MapType::HttpResponseHeaders, name, value);
                }
                self.response = Response::PassThrough;
                return Action::Continue;
            }
        };
        if end_of_stream {
            // No body at all: the headers are still ours to change.
            let outcome = match self.response {
                Response::Json { .. } | Response::ObservedJson => {
                    self.finish(|c, now| c.finish_json(&[], now))
                }
                Response::Stream => self.finish(|c, now| c.finish_stream(now)),
                _ => self.finish(|c, now| c.finish_passthrough(now)),
            };
            for (name, value) in outcome.iter().flat_map(|o| &o.headers) {
                host::set_header(MapType::HttpResponseHeaders, name, value);
            }
            return Action::Continue;
        }
        match self.response {
            Response::Json { .. } => Action::Pause, // hold the headers until the body is complete
            _ => Action::Continue,
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        match self.response {
            Response::Json { max_bytes } => self.json_body(body_size, end_of_stream, max_bytes),
            Response::ObservedJson => self.observed_json_body(body_size, end_of_stream),
            Response::Stream => self.stream_body(body_size, end_of_stream),
            Response::PassThrough | Response::Pending => {
                if end_of_stream {
                    self.finish(|c, now| c.finish_passthrough(now));
                }
                Action::Continue
            }
        }
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        // The upstream sent trailers, so no body callback saw end-of-stream. Body bytes can no
        // longer be added here; the cost still goes into the trailers and the record.
        let outcome = match self.response {
            Response::Stream => self.finish(|c, now| c.finish_stream(now)),
            _ => self.finish(|c, now| c.finish_passthrough(now)),
        };
        for (name, value) in outcome.iter().flat_map(|o| &o.headers) {
            host::set_header(MapType::HttpResponseTrailers, name, value);
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        // Runs for every stream, also when the client or upstream went away before the end.
        self.finish(|c, now| c.finish_aborted(now));
    }
}

impl MeterFilter {
    /// `Observe`: the chunk already goes on unchanged; keep a copy until the limit, read it at
    /// the end.
    fn observe_request_chunk(&mut self, body_size: usize, end_of_stream: bool) {
        let Some(copy) = self.request_copy.as_mut() else {
            return;
        };
        if !copy.append(BufferType::HttpRequestBody, body_size) {
            self.request_copy = None;
            if let Some(call) = self.call.as_mut() {
                call.request_body_too_large();
            }
            return;
        }
        if end_of_stream {
            if let (Some(copy), Some(call)) = (self.request_copy.take(), self.call.as_mut()) {
                call.observe_request(copy.bytes());
            }
        }
    }

    /// `hold_headers: false`: the chunk goes on at once; the copy is metered at the end, for the
    /// record only (the headers are gone).
    fn observed_json_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let appended = self
            .response_copy
            .as_mut()
            .is_some_and(|copy| copy.append(BufferType::HttpResponseBody, body_size));
        if !appended {
            if let Some(call) = self.call.as_mut() {
                call.response_body_too_large();
            }
            self.response = Response::PassThrough;
            self.response_copy = None;
            if end_of_stream {
                self.finish(|c, now| c.finish_passthrough(now));
            }
            return Action::Continue;
        }
        if end_of_stream {
            if let Some(copy) = self.response_copy.take() {
                self.finish(|c, now| c.finish_json(copy.bytes(), now));
            }
        }
        Action::Continue
    }

    fn json_body(&mut self, body_size: usize, end_of_stream: bool, max_bytes: usize) -> Action {
        if body_size > max_bytes {
            // Stop holding before Envoy's buffer limit turns the response into a 500.
            if let Some(call) = self.call.as_mut() {
                call.response_body_too_large();
            }
            self.response = Response::PassThrough;
            if end_of_stream {
                self.finish(|c, now| c.finish_passthrough(now));
            }
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause; // Envoy buffers; the next call sees everything so far
        }
        let body = host::body(BufferType::HttpResponseBody, body_size);
        if let Some(outcome) = self.finish(|c, now| c.finish_json(&body, now)) {
            // The headers are still held, so they can still change.
            for (name, value) in &outcome.headers {
                host::set_header(MapType::HttpResponseHeaders, name, value);
            }
        }
        Action::Continue
    }

    fn stream_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let mut size = body_size;
        if body_size > 0 {
            let chunk = host::body(BufferType::HttpResponseBody, body_size);
            let forward = match self.call.as_mut() {
                Some(call) => call.feed_stream(&chunk),
                None => Forward::Unchanged,
            };
            if let Forward::Replace(bytes) = forward {
                if host::set_body(BufferType::HttpResponseBody, 0, body_size, &bytes) {
                    size = bytes.len();
                }
            }
        }
        if end_of_stream {
            if let Some(outcome) = self.finish(|c, now| c.finish_stream(now)) {
                // Append (start = current size, replace nothing): held-back bytes, then the
                // `: llm-cost {...}` comment when the core adds one (`stream_cost_comment`).
                if !outcome.sse_comment.is_empty() {
                    host::set_body(BufferType::HttpResponseBody, size, 0, &outcome.sse_comment);
                }
                // Trailers reach HTTP/2 clients, and HTTP/1.1 chunked clients that sent
                // `TE: trailers` when the HCM has `http_protocol_options.enable_trailers`.
                for (name, value) in &outcome.headers {
                    host::add_header(MapType::HttpResponseTrailers, name, value);
                }
            }
        }
        Action::Continue
    }
}
