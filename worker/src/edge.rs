//! The Worker itself (wasm32 only): one `fetch` entry that proxies to the upstream and lets
//! `llm-cost-core` decide everything about metering.

use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context as TaskContext, Poll};

use futures_channel::oneshot;
use futures_util::{Stream, StreamExt};
use llm_cost_core::{
    Call, Forward, MeterConfig, Outcome, RequestBodyPlan, RequestHead, ResponseHead, ResponsePlan,
};
use worker::js_sys::Uint8Array;
use worker::wasm_bindgen::JsValue;
use worker::*;

use crate::settings::{is_forwardable_request_header, Settings};

/// Settings parsed from `Env` on the first request of an isolate.
static SETTINGS: OnceLock<core::result::Result<Settings, String>> = OnceLock::new();

fn read_var(env: &Env, name: &str) -> Option<String> {
    env.var(name)
        .map(|v| v.to_string())
        .or_else(|_| env.secret(name).map(|v| v.to_string()))
        .ok()
}

#[event(fetch)]
async fn fetch(req: Request, env: Env, ctx: Context) -> Result<Response> {
    let settings = SETTINGS.get_or_init(|| {
        let settings = Settings::from_vars(|name| read_var(&env, name));
        match &settings {
            Ok(s) => {
                if let Err(why) = &s.meter {
                    console_error!("llm-cost: metering disabled, traffic passes unchanged: {why}");
                }
            }
            Err(why) => console_error!("llm-cost: configuration error: {why}"),
        }
        settings
    });
    match settings {
        Ok(settings) => proxy(req, settings, &ctx).await,
        Err(_) => Response::error("llm-cost worker: bad configuration (see logs)", 500),
    }
}

fn now_ms() -> u64 {
    Date::now().as_millis()
}

/// Proxies one request, metering it when the core configuration is valid.
async fn proxy(mut req: Request, s: &'static Settings, ctx: &Context) -> Result<Response> {
    let url = req.url()?;
    let path_and_query = match url.query() {
        Some(q) => format!("{}?{}", url.path(), q),
        None => url.path().to_owned(),
    };
    let method = req.method();
    let header = |name: &str| req.headers().get(name).ok().flatten();
    let authorization = header("authorization");
    let content_type = header("content-type");
    let request_id = header("x-request-id").or_else(|| header("cf-ray"));
    let content_length = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());

    let upstream_headers = Headers::new();
    for (name, value) in req.headers().entries() {
        if is_forwardable_request_header(&name) {
            upstream_headers.append(&name, &value)?;
        }
    }

    let mut call: Option<Call<'static>> = s.meter.as_ref().ok().map(|config: &MeterConfig| {
        Call::new(
            config,
            RequestHead {
                method: method.as_ref(),
                host: &s.upstream_authority,
                path: &path_and_query,
                authorization: authorization.as_deref(),
                content_type: content_type.as_deref(),
                content_length,
                request_id: request_id.as_deref(),
            },
            now_ms(),
        )
    });

    let body: Option<JsValue> = if matches!(method, Method::Get | Method::Head) {
        None
    } else {
        let plan = call.as_mut().map(|c| c.request_body_plan());
        match plan {
            Some(RequestBodyPlan::Buffer { max_bytes }) => {
                let max = max_bytes as u64;
                if content_length.is_some_and(|n| n > max) {
                    if let Some(c) = call.as_mut() {
                        c.request_body_too_large();
                    }
                    req.inner().body().map(JsValue::from)
                } else {
                    let bytes = req.bytes().await?;
                    let replaced = match call.as_mut() {
                        Some(c) if bytes.len() as u64 > max => {
                            c.request_body_too_large();
                            None
                        }
                        Some(c) => c.rewrite_request(&bytes),
                        None => None,
                    };
                    let bytes = replaced.unwrap_or(bytes);
                    Some(Uint8Array::from(bytes.as_slice()).into())
                }
            }
            _ => req.inner().body().map(JsValue::from),
        }
    };

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
    let mut upstream = match sent {
        Ok(r) => r,
        Err(_) => {
            if let Some(mut c) = call {
                emit_now(s, ctx, &c.finish_aborted(now_ms()));
            }
            return Response::error("llm-cost worker: upstream unreachable", 502);
        }
    };

    let status = upstream.status_code();
    let headers = Headers::new();
    for (name, value) in upstream.headers().entries() {
        headers.append(&name, &value)?;
    }
    let resp_header = |name: &str| headers.get(name).ok().flatten();
    let content_type = resp_header("content-type");
    let content_length = resp_header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
    // The body length may change (stream comment, re-encoding): let the runtime set it.
    headers.delete("content-length")?;

    let Some(mut call) = call else {
        return respond_stream(upstream.stream()?, status, headers);
    };
    let plan = call.on_response_head(ResponseHead {
        status,
        content_type: content_type.as_deref(),
        content_length,
        // `fetch` in Workers hands over an already decoded body, whatever Content-Encoding says.
        content_encoding: None,
    });
    match plan {
        ResponsePlan::BufferJson { max_bytes } => {
            let max = max_bytes as u64;
            if content_length.is_some_and(|n| n > max) {
                call.response_body_too_large();
                let metered = Metered::new(upstream.stream()?, call, Mode::PassThrough, s, ctx);
                return respond_stream(metered, status, headers);
            }
            let body = match upstream.bytes().await {
                Ok(body) => body,
                Err(_) => {
                    emit_now(s, ctx, &call.finish_aborted(now_ms()));
                    return Response::error("llm-cost worker: upstream body failed", 502);
                }
            };
            let outcome = if body.len() as u64 > max {
                call.response_body_too_large();
                call.finish_passthrough(now_ms())
            } else {
                call.finish_json(&body, now_ms())
            };
            for (name, value) in &outcome.headers {
                headers.set(name, value)?;
            }
            emit_now(s, ctx, &outcome);
            Ok(Response::from_bytes(body)?
                .with_status(status)
                .with_headers(headers))
        }
        ResponsePlan::Stream => {
            let metered = Metered::new(upstream.stream()?, call, Mode::Stream, s, ctx);
            respond_stream(metered, status, headers)
        }
        ResponsePlan::PassThrough => {
            let metered = Metered::new(upstream.stream()?, call, Mode::PassThrough, s, ctx);
            respond_stream(metered, status, headers)
        }
    }
}

fn respond_stream<S>(body: S, status: u16, headers: Headers) -> Result<Response>
where
    S: Stream<Item = Result<Vec<u8>>> + 'static,
{
    Ok(Response::from_stream(body)?
        .with_status(status)
        .with_headers(headers))
}

/// Writes the record as one log line and, when a sink is configured, posts it after the response
/// (`ctx.wait_until`: the client never waits on the sink).
fn emit_now(s: &'static Settings, ctx: &Context, outcome: &Outcome) {
    console_log!("{}", outcome.record_json);
    if let Some(sink) = s.log_sink_url.as_deref() {
        ctx.wait_until(post_record(sink, outcome.record_json.clone()));
    }
}

/// Same as [`emit_now`] for a record that only exists when a streamed body ends.
fn emit_later(s: &'static Settings, ctx: &Context) -> oneshot::Sender<String> {
    let (tx, rx) = oneshot::channel::<String>();
    let sink = s.log_sink_url.as_deref();
    ctx.wait_until(async move {
        if let Ok(record) = rx.await {
            console_log!("{}", record);
            if let Some(sink) = sink {
                post_record(sink, record).await;
            }
        }
    });
    tx
}

/// POSTs one NDJSON line to the sink. Failures are logged without the URL (it may hold a token).
fn post_record(sink: &'static str, record: String) -> impl Future<Output = ()> + 'static {
    async move {
        let headers = Headers::new();
        if headers.set("content-type", "application/x-ndjson").is_err() {
            return;
        }
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_headers(headers)
            .with_body(Some(JsValue::from_str(&format!("{record}\n"))));
        let sent = match Request::new_with_init(sink, &init) {
            Ok(req) => Fetch::Request(req).send().await,
            Err(e) => Err(e),
        };
        match sent {
            Ok(resp) if resp.status_code() < 300 => {}
            Ok(resp) => console_warn!("llm-cost: log sink answered HTTP {}", resp.status_code()),
            Err(_) => console_warn!("llm-cost: log sink unreachable; record kept in this log only"),
        }
    }
}

/// What the core asked for the response body.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// SSE: scan each chunk, append the cost comment at the end.
    Stream,
    /// Forward untouched; only the end (or abort) is reported.
    PassThrough,
}

/// The upstream body, forwarded chunk by chunk as it arrives while the core watches it.
struct Metered {
    upstream: Pin<Box<ByteStream>>,
    call: Option<Call<'static>>,
    mode: Mode,
    record: Option<oneshot::Sender<String>>,
    done: bool,
}

impl Metered {
    fn new(
        upstream: ByteStream,
        call: Call<'static>,
        mode: Mode,
        s: &'static Settings,
        ctx: &Context,
    ) -> Self {
        Metered {
            upstream: Box::pin(upstream),
            call: Some(call),
            mode,
            record: Some(emit_later(s, ctx)),
            done: false,
        }
    }

    fn finish(&mut self, end: impl FnOnce(&mut Call<'static>) -> Outcome) -> Option<Outcome> {
        let mut call = self.call.take()?;
        let outcome = end(&mut call);
        if let Some(tx) = self.record.take() {
            let _ = tx.send(outcome.record_json.clone());
        }
        Some(outcome)
    }
}

impl Stream for Metered {
    type Item = Result<Vec<u8>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if this.done {
                return Poll::Ready(None);
            }
            let next = match this.upstream.poll_next_unpin(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(next) => next,
            };
            match next {
                Some(Ok(chunk)) => {
                    let forwarded = match (this.mode, this.call.as_mut()) {
                        (Mode::Stream, Some(call)) => match call.feed_stream(&chunk) {
                            Forward::Unchanged => chunk,
                            Forward::Replace(bytes) => bytes,
                        },
                        _ => chunk,
                    };
                    if forwarded.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(forwarded)));
                }
                Some(Err(e)) => {
                    this.done = true;
                    this.finish(|c| c.finish_aborted(now_ms()));
                    return Poll::Ready(Some(Err(e)));
                }
                None => {
                    this.done = true;
                    let mode = this.mode;
                    let outcome = this.finish(|c| match mode {
                        Mode::Stream => c.finish_stream(now_ms()),
                        Mode::PassThrough => c.finish_passthrough(now_ms()),
                    });
                    if let Some(outcome) = outcome {
                        if !outcome.sse_comment.is_empty() {
                            return Poll::Ready(Some(Ok(outcome.sse_comment)));
                        }
                    }
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for Metered {
    /// The client went away (or the runtime dropped the body) before the end: record an abort.
    fn drop(&mut self) {
        self.finish(|c| c.finish_aborted(now_ms()));
    }
}
