//! The Worker itself (wasm32 only): one `fetch` entry that proxies to the upstream and lets
//! `llm-cost-core` decide everything about metering.

use std::cell::{OnceCell, RefCell};
use std::rc::Rc;

use llm_cost_core::budget::UnpricedRefusal;
use llm_cost_core::identity::credential;
use llm_cost_core::{
    Call, ErrorCode, Forward, MeterConfig, Outcome, Rejection, RequestBodyPlan, RequestHead,
    ResponseHead, ResponsePlan,
};
use web_sys::{ReadableStreamDefaultReader, TransformStream, TransformStreamDefaultController};
use worker::js_sys::{Object, Reflect, Uint8Array};
use worker::wasm_bindgen::closure::Closure;
use worker::wasm_bindgen::{JsCast, JsValue};
use worker::wasm_bindgen_futures::JsFuture;
use worker::*;

use crate::budget_object::{self, Admission, Reservation};
use crate::delivery::Delivery;
use crate::live_prices;
use crate::settings::{is_forwardable_request_header, Settings, BUDGETS_BINDING};

type Loaded = Rc<core::result::Result<Settings, String>>;

thread_local! {
    /// Settings parsed from `Env` on the first request of an isolate (one thread per isolate).
    static SETTINGS: OnceCell<Loaded> = const { OnceCell::new() };
}

fn read_var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let loaded = settings_for(&env);
    match loaded.as_ref() {
        Ok(settings) => {
            let meter = live_prices::meter(&env, settings, &ctx).await;
            proxy(req, settings, &meter, &env, &ctx).await
        }
        Err(_) => Response::error("llm-cost worker: bad configuration (see logs)", 500),
    }
}

/// This isolate's settings (parsed on first use; the budget Durable Object reads them too).
pub(crate) fn settings_for(env: &Env) -> Loaded {
    SETTINGS.with(|cell| cell.get_or_init(|| load(env)).clone())
}

fn load(env: &Env) -> Loaded {
    let budgets_bound = env.durable_object(BUDGETS_BINDING).is_ok();
    let settings = Settings::from_vars(|name| read_var(env, name), budgets_bound);
    match &settings {
        Ok(s) => {
            if let Err(why) = &s.meter {
                console_error!("llm-cost: metering disabled, traffic passes unchanged: {why}");
            }
            for warning in &s.warnings {
                console_warn!("llm-cost: {warning}");
            }
        }
        Err(why) => console_error!("llm-cost: configuration error: {why}"),
    }
    Rc::new(settings)
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Proxies one request, metering it when the core configuration is valid.
/// `meter`: the configuration to meter with (`s.meter`, or it with live prices installed).
async fn proxy(
    mut req: Request,
    s: &Settings,
    meter: &core::result::Result<Rc<MeterConfig>, String>,
    env: &Env,
    ctx: &Context,
) -> Result<Response> {
    let delivery = Delivery::new(env, s);
    let url = req.url()?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    };
    let method = req.method();
    // The request's headers, read in one pass over the JS iterator: every lookup below answers
    // from here (a `Headers.get` per lookup and a second pass to copy them were a JS call each).
    let request_headers: Vec<(String, String)> = req.headers().entries().collect();
    let header = |name: &str| {
        request_headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    let authorization = credential(header, &path_and_query);
    let attribution_headers: Vec<(String, String)> = match meter {
        Ok(config) => config
            .attribution
            .header_names()
            .into_iter()
            .filter_map(|name| Some((name.to_owned(), header(name)?)))
            .collect(),
        Err(_) => Vec::new(),
    };
    let content_type = header("content-type");
    // The same id everywhere: the client's `x-request-id`, else Cloudflare's `cf-ray`, else new.
    let request_id = header("x-request-id")
        .or_else(|| header("cf-ray"))
        .or_else(generated_request_id);
    // The host the client called (the record's `host`, as in Envoy); the provider is detected
    // from the upstream's.
    let client_host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    };
    let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());

    // A client must not hand our headers to the upstream as if we had set them.
    // Attribution sources (e.g. `x-llm-tags`) stay unless `remove_headers` says otherwise.
    let is_own = |name: &str| {
        meter.as_ref().is_ok_and(|c| {
            if c.attribution.is_source_header(name) {
                c.attribution.remove_headers
            } else {
                c.is_own_header(name)
            }
        })
    };
    // A copy of the request's headers in one JS call (`new Headers(init)`), then the few that do
    // not go upstream deleted: an `append` per forwarded header was a JS call each.
    let upstream_headers = req.headers().clone();
    for (name, _) in &request_headers {
        if !is_forwardable_request_header(name) || is_own(name) {
            upstream_headers.delete(name)?;
        }
    }

    let call = meter.as_ref().ok().map(|config| {
        Call::new(
            config,
            RequestHead {
                method: method.as_ref(),
                host: &client_host,
                upstream_host: Some(&s.upstream_authority),
                path: &path_and_query,
                authorization: authorization.as_deref(),
                content_type: content_type.as_deref(),
                content_length,
                request_id: request_id.as_deref(),
                attribution_headers: &attribution_headers,
            },
            now_ms(),
        )
    });
    if let (Ok(config), Some(key_id)) = (meter, call.as_ref().and_then(Call::key_id)) {
        if let Some(name) = &config.key_id_header {
            upstream_headers.set(name, key_id)?;
        }
    }
    // Health checks, `GET /models` and the like pass untouched and leave no record.
    let mut call = call.filter(Call::is_metered);

    let body: Option<JsValue> = if matches!(method, Method::Get | Method::Head) {
        None
    } else {
        let plan = call.as_mut().map(|c| c.request_body_plan());
        match plan {
            // The Worker reads request bodies whole either way (it sends the upstream request
            // only when the body is complete); `Observe` only reads, `Buffer` may rewrite.
            Some(
                plan @ (RequestBodyPlan::Buffer { max_bytes }
                | RequestBodyPlan::Observe { max_bytes }),
            ) => {
                if content_length.is_some_and(|n| n > max_bytes as u64) {
                    // Known too large: stream it on unread.
                    if let Some(c) = call.as_mut() {
                        c.request_body_too_large();
                    }
                    req.inner().body().map(JsValue::from)
                } else {
                    let read = JsFuture::from(req.inner().array_buffer()?).await?;
                    let bytes = Uint8Array::new(&read).to_vec();
                    // The core checks the size of what was read (a missing or wrong length).
                    let replaced = match (call.as_mut(), plan) {
                        (Some(c), RequestBodyPlan::Buffer { .. }) => c.rewrite_request(&bytes),
                        (Some(c), _) => {
                            c.observe_request(&bytes);
                            None
                        }
                        (None, _) => None,
                    };
                    // Unchanged: the body read goes upstream as it is (no copy back out of wasm).
                    Some(match replaced {
                        Some(bytes) => Uint8Array::from(bytes.as_slice()).into(),
                        None => read,
                    })
                }
            }
            // A form (an audio transcription): the Worker sends the upstream request once its
            // body is read whole (as for JSON); the core scans it for the few fields it needs.
            Some(RequestBodyPlan::ScanForm) => {
                let bytes = req.bytes().await?;
                if let Some(c) = call.as_mut() {
                    c.scan_request_chunk(&bytes);
                }
                Some(Uint8Array::from(bytes.as_slice()).into())
            }
            _ => req.inner().body().map(JsValue::from),
        }
    };

    // The budgets decide once the request is known (its body read: it may name the model and
    // attributes), before the upstream is called: a refused call never reaches it.
    let mut reservation = None;
    if let (Ok(config), Some(c)) = (meter, call.as_mut()) {
        let facts = c.budget_facts();
        let charges = config.budgets.charges(&facts);
        if !charges.is_empty() {
            if let Some(refusal) = config.budgets.unpriced_refusal(&facts, &charges) {
                let outcome = c.finish_refused(
                    UnpricedRefusal::STATUS,
                    ErrorCode::UnpricedModelRefused,
                    now_ms(),
                );
                emit_now(&delivery, ctx, outcome, None);
                let headers = Headers::new();
                headers.set("content-type", "application/json")?;
                return Ok(Response::ok(refusal.body_json())?
                    .with_status(UnpricedRefusal::STATUS)
                    .with_headers(headers));
            }
            match budget_object::admit(env, ctx, config, charges).await {
                Admission::Admitted {
                    reservation: held,
                    unchecked,
                } => {
                    reservation = held;
                    if let Some(why) = unchecked {
                        c.budget_unchecked(why);
                    }
                }
                Admission::Refused(rejection) => {
                    let outcome =
                        c.finish_refused(Rejection::STATUS, ErrorCode::BudgetExceeded, now_ms());
                    emit_now(&delivery, ctx, outcome, None);
                    let headers = Headers::new();
                    for (name, value) in rejection.headers() {
                        headers.set(name, &value)?;
                    }
                    return Ok(Response::ok(rejection.body_json())?
                        .with_status(Rejection::STATUS)
                        .with_headers(headers));
                }
            }
        }
    }

    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(upstream_headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(body);
    let upstream_url = s.upstream_url(&path_and_query);
    let sent = match Request::new_with_init(&upstream_url, &init) {
        Ok(upstream_req) => Fetch::Request(upstream_req).send().await,
        Err(e) => Err(e),
    };
    let upstream = match sent {
        Ok(r) => r,
        Err(_) => {
            if let Some(mut c) = call {
                emit_now(
                    &delivery,
                    ctx,
                    c.finish_refused(502, ErrorCode::UpstreamUnreachable, now_ms()),
                    reservation,
                );
            }
            return Response::error("llm-cost worker: upstream unreachable", 502);
        }
    };

    let Some(mut call) = call else {
        // Not an LLM call, or metering is off: hand the upstream response over as it is.
        return Ok(upstream);
    };
    let status = upstream.status_code();
    // A copy of the upstream's headers in one JS call (`new Headers(init)`), not one per header.
    let headers = upstream.headers().clone();
    let resp_header = |name: &str| headers.get(name).ok().flatten();
    let content_type = resp_header("content-type");
    let content_length = resp_header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    // The body length may change (stream comment, re-encoding): let the runtime set it.
    headers.delete("content-length")?;

    let plan = call.on_response_head(ResponseHead {
        status,
        content_type: content_type.as_deref(),
        content_length,
        // `fetch` in Workers hands over an already decoded body, whatever Content-Encoding says.
        content_encoding: None,
    });
    match plan {
        // The Worker builds its own response: it can always add headers.
        ResponsePlan::BufferJson { max_bytes } | ResponsePlan::ObserveJson { max_bytes } => {
            let source = upstream_stream(&upstream);
            let buffered = match &source {
                Some(source) => buffer_up_to(source, max_bytes).await,
                None => Ok(Buffered::Whole(Vec::new())),
            };
            let body = match buffered {
                Ok(Buffered::Whole(body)) => body,
                Ok(Buffered::Over(prefix)) => {
                    // Larger than the core wants to hold: the rest streams through unchanged.
                    call.response_body_too_large();
                    let body = metered_body(
                        source,
                        prefix,
                        call,
                        reservation,
                        Mode::PassThrough,
                        delivery,
                        ctx,
                    )?;
                    return respond_stream(body, status, headers);
                }
                Err(_) => {
                    emit_now(&delivery, ctx, call.finish_aborted(now_ms()), reservation);
                    return Response::error("llm-cost worker: upstream body failed", 502);
                }
            };
            let outcome = call.finish_json(&body, now_ms());
            for (name, value) in &outcome.headers {
                headers.set(name, value)?;
            }
            emit_now(&delivery, ctx, outcome, reservation);
            Ok(Response::from_bytes(body)?
                .with_status(status)
                .with_headers(headers))
        }
        ResponsePlan::Stream => {
            let source = upstream_stream(&upstream);
            let body = metered_body(
                source,
                Vec::new(),
                call,
                reservation,
                Mode::Stream,
                delivery,
                ctx,
            )?;
            respond_stream(body, status, headers)
        }
        ResponsePlan::PassThroughPriced => {
            // Priced from the request (speech): the headers carry the cost, and the audio body
            // goes to the client as the upstream's own stream, never read.
            let outcome = call.finish_passthrough(now_ms());
            for (name, value) in &outcome.headers {
                headers.set(name, value)?;
            }
            emit_now(&delivery, ctx, outcome, reservation);
            let body = match upstream_stream(&upstream) {
                Some(stream) => ResponseBody::Stream(stream),
                None => ResponseBody::Empty,
            };
            respond_stream(body, status, headers)
        }
        ResponsePlan::PassThrough => {
            let source = upstream_stream(&upstream);
            let body = metered_body(
                source,
                Vec::new(),
                call,
                reservation,
                Mode::PassThrough,
                delivery,
                ctx,
            )?;
            respond_stream(body, status, headers)
        }
    }
}

/// The upstream body as a JS stream (`None` when there is no body).
fn upstream_stream(upstream: &Response) -> Option<web_sys::ReadableStream> {
    match upstream.body() {
        ResponseBody::Stream(stream) => Some(stream.clone()),
        ResponseBody::Body(_) | ResponseBody::Empty => None,
    }
}

/// A JSON body read with a bound.
enum Buffered {
    /// The whole body, within the bound.
    Whole(Vec<u8>),
    /// The bound was passed: the chunks read so far (still JS memory); the rest is in the stream.
    Over(Vec<Uint8Array>),
}

/// Reads `source` until it ends or holds more than `max` bytes.
async fn buffer_up_to(
    source: &web_sys::ReadableStream,
    max: usize,
) -> core::result::Result<Buffered, JsValue> {
    let reader: ReadableStreamDefaultReader = source.get_reader().unchecked_into();
    let mut chunks = Vec::new();
    let mut len = 0usize;
    loop {
        let step = JsFuture::from(reader.read()).await?;
        if Reflect::get(&step, &JsValue::from_str("done"))?.is_truthy() {
            break;
        }
        let chunk: Uint8Array = Reflect::get(&step, &JsValue::from_str("value"))?
            .dyn_into()
            .map_err(|_| JsValue::from_str("upstream body chunk is not bytes"))?;
        len += chunk.length() as usize;
        chunks.push(chunk);
        if len > max {
            reader.release_lock();
            return Ok(Buffered::Over(chunks));
        }
    }
    let mut body = vec![0; len];
    let mut at = 0;
    for chunk in chunks {
        let n = chunk.length() as usize;
        chunk.copy_to(&mut body[at..at + n]);
        at += n;
    }
    Ok(Buffered::Whole(body))
}

fn respond_stream(body: ResponseBody, status: u16, headers: Headers) -> Result<Response> {
    Ok(Response::from_body(body)?
        .with_status(status)
        .with_headers(headers))
}

/// Ends a call after the response (`ctx.wait_until`: the client never waits on the budget, the
/// sink or the queue): [`finish`].
fn emit_now(
    delivery: &Delivery,
    ctx: &Context,
    outcome: Outcome,
    reservation: Option<Reservation>,
) {
    ctx.wait_until(finish(delivery.clone(), outcome, reservation));
}

/// Settles the call's budget reservations, if it holds any (their shadow rules and thresholds go
/// on the record), then writes the record as one log line, its Analytics Engine data point, and
/// hands it to `delivery`.
async fn finish(delivery: Delivery, mut outcome: Outcome, reservation: Option<Reservation>) {
    if let Some(held) = reservation {
        let (would_exceed, thresholds) = held.settle(outcome.cost).await;
        outcome.mark_budgets(would_exceed, thresholds);
    }
    // One string handed to `console.log` as is (no `format!` copy first).
    web_sys::console::log_1(&JsValue::from_str(&outcome.record_json));
    delivery.write_point(&outcome.record);
    delivery.deliver(outcome.record_json).await;
}

/// What the core asked for the response body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SSE: scan each chunk, append the cost comment at the end.
    Stream,
    /// Forward untouched; only the end (or abort) is reported.
    PassThrough,
}

/// `Transformer.transform(chunk, controller)`.
type TransformFn =
    dyn FnMut(JsValue, TransformStreamDefaultController) -> core::result::Result<(), JsValue>;
/// `Transformer.flush(controller)`.
type FlushFn = dyn FnMut(TransformStreamDefaultController) -> core::result::Result<(), JsValue>;

/// The call, shared by the transformer callbacks and the task that watches the pipe.
struct Metering {
    call: Call,
    /// Set when the body ended normally (the transformer's `flush`).
    outcome: Option<Outcome>,
    /// Wasm memory each chunk is copied into for the core, reused from chunk to chunk (an
    /// allocation and a free per chunk were a visible part of the stream's CPU time).
    scratch: Vec<u8>,
}

/// Chunks larger than this are still scanned, but their copy is not kept for the next one: the
/// memory a stream holds stays bounded whatever chunk sizes the runtime hands over.
const MAX_KEPT_SCRATCH: usize = 64 * 1024;

impl Metering {
    /// Copies `chunk` into wasm memory (one copy, into the reused buffer) and scans it.
    fn feed(&mut self, chunk: &Uint8Array) -> Forward {
        let len = chunk.length() as usize;
        self.scratch.clear();
        self.scratch.resize(len, 0);
        chunk.copy_to(&mut self.scratch);
        let forward = self.call.feed_stream(&self.scratch);
        if self.scratch.capacity() > MAX_KEPT_SCRATCH {
            self.scratch = Vec::new();
        }
        forward
    }
}

/// Pipes the upstream body through a `TransformStream` whose callbacks hand each chunk to the
/// core as it arrives and forward it at once (the original JS chunk when the core leaves it
/// unchanged: no copy out of wasm). `flush` appends the cost comment. The pipe's promise, awaited
/// in `ctx.wait_until`, tells when the body is done or broken (upstream reset, client gone); then
/// the record is written. `prefix`: chunks already taken from `source`, sent first.
fn metered_body(
    source: Option<web_sys::ReadableStream>,
    prefix: Vec<Uint8Array>,
    call: Call,
    reservation: Option<Reservation>,
    mode: Mode,
    delivery: Delivery,
    ctx: &Context,
) -> Result<ResponseBody> {
    let Some(source) = source else {
        // No body to pipe (e.g. 204): the call ends now.
        let mut call = call;
        let outcome = match mode {
            Mode::Stream => call.finish_stream(now_ms()),
            Mode::PassThrough => call.finish_passthrough(now_ms()),
        };
        let tail = outcome.sse_comment.clone();
        emit_now(&delivery, ctx, outcome, reservation);
        return Ok(match tail.is_empty() {
            true => ResponseBody::Empty,
            false => ResponseBody::Body(tail),
        });
    };
    let state = Rc::new(RefCell::new(Metering {
        call,
        outcome: None,
        scratch: Vec::new(),
    }));

    let scan = Rc::clone(&state);
    let transform = Closure::<TransformFn>::new(
        move |chunk: JsValue, controller: TransformStreamDefaultController| {
            let replaced = match (mode, chunk.dyn_ref::<Uint8Array>()) {
                (Mode::Stream, Some(bytes)) => match scan.borrow_mut().feed(bytes) {
                    Forward::Unchanged => None,
                    Forward::Replace(bytes) => Some(bytes),
                },
                _ => None,
            };
            match replaced {
                None => controller.enqueue_with_chunk(&chunk),
                Some(bytes) if bytes.is_empty() => Ok(()),
                Some(bytes) => controller.enqueue_with_chunk(&Uint8Array::from(bytes.as_slice())),
            }
        },
    );
    let end = Rc::clone(&state);
    let flush = Closure::<FlushFn>::new(move |controller: TransformStreamDefaultController| {
        let mut end = end.borrow_mut();
        let outcome = match mode {
            Mode::Stream => end.call.finish_stream(now_ms()),
            Mode::PassThrough => end.call.finish_passthrough(now_ms()),
        };
        let tail = (!outcome.sse_comment.is_empty())
            .then(|| Uint8Array::from(outcome.sse_comment.as_slice()));
        end.outcome = Some(outcome);
        match tail {
            Some(tail) => controller.enqueue_with_chunk(&tail),
            None => Ok(()),
        }
    });
    let transformer = Object::new();
    if !prefix.is_empty() {
        // Bytes already read from `source` (an over-long JSON body) go out first.
        let start = Closure::once_into_js(move |controller: TransformStreamDefaultController| {
            for chunk in &prefix {
                controller.enqueue_with_chunk(chunk)?;
            }
            Ok::<(), JsValue>(())
        });
        Reflect::set(&transformer, &JsValue::from_str("start"), &start)?;
    }
    Reflect::set(
        &transformer,
        &JsValue::from_str("transform"),
        transform.as_ref(),
    )?;
    Reflect::set(&transformer, &JsValue::from_str("flush"), flush.as_ref())?;
    let pipe = TransformStream::new_with_transformer(&transformer)?;
    let done = JsFuture::from(source.pipe_to(&pipe.writable()));

    ctx.wait_until(async move {
        // Resolves after `flush`; rejects when the upstream breaks or the client goes away.
        let _ = done.await;
        drop((transform, flush)); // no more callbacks once the pipe has settled
        let outcome = {
            let mut state = state.borrow_mut();
            match state.outcome.take() {
                Some(outcome) => outcome,
                None => state.call.finish_aborted(now_ms()),
            }
        };
        finish(delivery, outcome, reservation).await;
    });
    Ok(ResponseBody::Stream(pipe.readable()))
}

/// A fresh request id (`crypto.randomUUID()`) for a call that came with none.
fn generated_request_id() -> Option<String> {
    let crypto = Reflect::get(&worker::js_sys::global(), &JsValue::from_str("crypto")).ok()?;
    let random_uuid: worker::js_sys::Function =
        Reflect::get(&crypto, &JsValue::from_str("randomUUID"))
            .ok()?
            .dyn_into()
            .ok()?;
    random_uuid.call0(&crypto).ok()?.as_string()
}
