//! One request → one answer: the routes (`POST <path>`, `GET /v1/spend`, `GET /healthz`), the
//! ingest of a batch, and the error answers, each a JSON body.
//!
//! hyper owns the HTTP/1.1 framing (request heads, `content-length` and `chunked` bodies,
//! `Expect: 100-continue`, keep-alive); this module decides what is answered. An answer sent
//! before the request's body was read says `connection: close` and marks the connection for a
//! bounded drain (`server.rs`), as closing with unread bytes sends a reset that can destroy it.
//! Not here: the accept loop and shutdown (`server.rs`), where lines go (`sink.rs`), the spend
//! totals themselves (`spend.rs`).

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Version};
use serde_json::{json, Value};

use super::day::Day;
use super::ingest::Batch;
use super::recent::Recent;
use super::sink::Sink;
use super::spend::{self, Period, Spend};

/// Longest wait for the next piece of a request body.
const BODY_READ: Duration = Duration::from_secs(10);
/// Spend so far per (dimension, value): `GET /v1/spend?period=day|month|none`.
const SPEND_PATH: &str = "/v1/spend";

/// An answer: a JSON body (hyper adds its `content-length`).
pub type Answer = Response<Full<Bytes>>;

/// What every connection shares.
pub struct Shared {
    pub path: String,
    pub max_body_bytes: u64,
    pub store: Sink,
    /// Lines stored recently: retried copies are dropped (`recent.rs`).
    pub recent: Mutex<Recent>,
    /// Set at SIGINT/SIGTERM: answers then say `connection: close`.
    pub stopping: AtomicBool,
    pub stats: Stats,
    /// Running spend totals (`GET /v1/spend`, `spend.rs`); kept with the daily files only.
    pub spend: Option<Spend>,
    /// `--spend-token`: the bearer token `GET /v1/spend` requires, if set.
    pub spend_token: Option<String>,
}

/// Counters printed at exit.
#[derive(Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub stored: AtomicU64,
    pub rejected: AtomicU64,
    pub duplicates: AtomicU64,
}

/// The answer to `req`; sets `unread` when the answer leaves part of the request body unread.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    unread: Arc<AtomicBool>,
) -> Result<Answer, Infallible> {
    let answer = route(req, &shared, &unread).await;
    Ok(answer)
}

async fn route(req: Request<Incoming>, shared: &Shared, unread: &AtomicBool) -> Answer {
    let path = req.uri().path();
    let method = req.method();
    if path == shared.path && method == Method::POST {
        return ingest(req, shared, unread).await;
    }
    if path == SPEND_PATH && method == Method::GET {
        let (status, body) = spend_answer(shared, &req);
        let extra: &[(&'static str, &str)] = if status == 401 {
            &[("www-authenticate", "Bearer")]
        } else {
            &[]
        };
        return bodyless(&req, shared, unread, status, &body, extra);
    }
    let (status, body, allow) = if path == shared.path {
        (405, json!({"error": "method not allowed"}), "POST")
    } else if path == "/healthz" && method == Method::GET {
        (200, json!({"status": "ok"}), "")
    } else if path == "/healthz" || path == SPEND_PATH {
        (405, json!({"error": "method not allowed"}), "GET")
    } else {
        (
            404,
            json!({"error": "unknown path", "ingest": shared.path}),
            "",
        )
    };
    let extra: &[(&'static str, &str)] = if allow.is_empty() {
        &[]
    } else {
        &[("allow", allow)]
    };
    bodyless(&req, shared, unread, status, &body, extra)
}

/// A JSON answer (the body ends with `\n`), with `connection: close` when `close`.
pub fn answer(status: u16, extra: &[(&'static str, &str)], body: &Value, close: bool) -> Answer {
    let mut text = body.to_string();
    text.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    for (name, value) in extra {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(*name, value);
        }
    }
    if close {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// An error answer sent before the body was read: closes, and the connection drains.
fn refuse(unread: &AtomicBool, status: u16, why: &str, extra: &[(&'static str, &str)]) -> Answer {
    unread.store(true, Ordering::Relaxed);
    answer(status, extra, &json!({ "error": why }), true)
}

/// Whether the client asked to close after this request (HTTP/1.0 closes unless it asks not to).
fn client_closes(req: &Request<Incoming>) -> bool {
    let tokens = |t: &str| {
        req.headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|v| v.trim().eq_ignore_ascii_case(t))
    };
    if req.version() == Version::HTTP_10 {
        !tokens("keep-alive")
    } else {
        tokens("close")
    }
}

/// Whether the connection closes after this answer: the client asks, or the collector is stopping
/// (which tells a keep-alive client not to send more here).
fn closes(req: &Request<Incoming>, shared: &Shared) -> bool {
    client_closes(req) || shared.stopping.load(Ordering::SeqCst)
}

/// Answers a request whose body is not wanted: keeps the connection only when there is none.
fn bodyless(
    req: &Request<Incoming>,
    shared: &Shared,
    unread: &AtomicBool,
    status: u16,
    body: &Value,
    extra: &[(&'static str, &str)],
) -> Answer {
    if !req.body().is_end_stream() {
        unread.store(true, Ordering::Relaxed);
        return answer(status, extra, body, true);
    }
    answer(status, extra, body, closes(req, shared))
}

/// The status and JSON of a spend query (the token first: a 401 says nothing else).
fn spend_answer(shared: &Shared, req: &Request<Incoming>) -> (u16, Value) {
    if let Some(token) = &shared.spend_token {
        let authorization = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        if !spend::authorized(authorization, token) {
            return (
                401,
                json!({"error": "spend queries need `Authorization: Bearer <--spend-token>`"}),
            );
        }
    }
    let query = req.uri().query().unwrap_or("");
    let mut period = Some(Period::Month);
    for (name, value) in query.split('&').filter_map(|p| p.split_once('=')) {
        if name == "period" {
            period = Period::parse(value);
        }
    }
    let Some(spend) = &shared.spend else {
        return (
            501,
            json!({"error": "spend totals are kept with --out only (PostgreSQL: query its daily view)"}),
        );
    };
    match period {
        Some(period) => (200, spend.query(period, Day::today())),
        None => (400, json!({"error": "period must be day, month or none"})),
    }
}

/// Why a body was not read whole.
enum BodyError {
    /// Past `--max-body-bytes`.
    TooLarge,
    /// The framing was broken (a bad chunk).
    Malformed,
    /// The client went away or stalled: nothing to answer.
    Gone,
}

/// Reads the body, at most `limit` bytes, each piece within [`BODY_READ`].
async fn read_body(mut body: Incoming, limit: u64) -> Result<Vec<u8>, BodyError> {
    // The announced length, when there is one, at most 1 MiB ahead (it is the client's word).
    let announced = body.size_hint().lower().min(limit).min(1 << 20);
    let mut out = Vec::with_capacity(usize::try_from(announced).unwrap_or(0));
    loop {
        let frame = match tokio::time::timeout(BODY_READ, body.frame()).await {
            Err(_) => return Err(BodyError::Gone),
            Ok(None) => return Ok(out),
            Ok(Some(Err(e))) if e.is_parse() => return Err(BodyError::Malformed),
            Ok(Some(Err(_))) => return Err(BodyError::Gone),
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers are ignored.
        if let Ok(data) = frame.into_data() {
            if out.len() as u64 + data.len() as u64 > limit {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
        }
    }
}

fn header_is(headers: &HeaderMap, name: header::HeaderName, pred: impl Fn(&str) -> bool) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.to_str().map_or(true, &pred))
}

async fn ingest(req: Request<Incoming>, shared: &Shared, unread: &AtomicBool) -> Answer {
    // Announced too large: answered before the body is asked for (so no `100 Continue` is sent).
    if req
        .body()
        .size_hint()
        .exact()
        .is_some_and(|n| n > shared.max_body_bytes)
    {
        return refuse(unread, 413, "body too large", &[]);
    }
    if header_is(req.headers(), header::CONTENT_ENCODING, |e| {
        !e.eq_ignore_ascii_case("identity")
    }) {
        return refuse(unread, 415, "compressed bodies are not accepted", &[]);
    }
    let close = client_closes(&req);
    let body = match read_body(req.into_body(), shared.max_body_bytes).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => return refuse(unread, 413, "body too large", &[]),
        Err(BodyError::Malformed) => return refuse(unread, 400, "bad chunk", &[]),
        // Unanswerable; the sender retries. Closing is all there is to do.
        Err(BodyError::Gone) => return refuse(unread, 400, "incomplete body", &[]),
    };
    // Parsing under the lock: of two requests carrying the same retried line, one stores it. (If
    // that one's append then fails, its sender retries the whole batch, line included.)
    let recent = || shared.recent.lock().unwrap_or_else(PoisonError::into_inner);
    let batch = Batch::parse(&body, Day::today(), &mut recent());
    let (stored, rejected, duplicates) = (batch.stored, batch.rejected, batch.duplicates);
    shared.stats.requests.fetch_add(1, Ordering::Relaxed);
    // The totals take the lines once they are durable (a copy: the sink owns the original).
    let for_totals: Vec<(Day, Vec<u8>)> = match &shared.spend {
        Some(_) => batch
            .by_day
            .iter()
            .map(|(day, lines)| (*day, lines.clone()))
            .collect(),
        None => Vec::new(),
    };
    let appended = shared.store.append(batch.by_day).await;
    let known = match appended {
        Ok(known) => known,
        Err(e) => {
            recent().forget(&batch.hashes);
            // Nothing of this request stayed: the sender may retry it whole.
            return answer(503, &[("retry-after", "1")], &json!({ "error": e }), true);
        }
    };
    if let Some(spend) = &shared.spend {
        for (day, lines) in &for_totals {
            spend.add_lines(*day, lines);
        }
    }
    // Lines the ledger already had were redelivered copies: counted as such, not as stored.
    let (stored, duplicates) = (stored.saturating_sub(known), duplicates + known);
    let stats = &shared.stats;
    stats.stored.fetch_add(stored, Ordering::Relaxed);
    stats.rejected.fetch_add(rejected, Ordering::Relaxed);
    stats.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    if rejected > 0 {
        let at: Vec<String> = batch.rejected_at.iter().map(u64::to_string).collect();
        eprintln!(
            "llm-cost collect: stored {stored} line(s), skipped {rejected} malformed (line {})",
            at.join(", ")
        );
    }
    let body = json!({ "stored": stored, "rejected": rejected, "rejected_lines": batch.rejected_at, "duplicates": duplicates });
    answer(
        200,
        &[],
        &body,
        close || shared.stopping.load(Ordering::SeqCst),
    )
}
