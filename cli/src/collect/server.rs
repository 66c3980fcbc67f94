//! The accept loop and one thread per connection: HTTP requests in, lines to the writer, answers
//! out only after the writer has them on disk.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::json;

use super::day::Day;
use super::http::{self, Error, Framing, Head};
use super::ingest::Batch;
use super::sink::Sink;

/// Longest wait for a read or write while a request is being served.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle keep-alive connection is kept.
const IDLE: Duration = Duration::from_secs(60);
/// How often an idle connection checks for shutdown.
const POLL: Duration = Duration::from_millis(100);
/// After an error answer, how long and how much of the unread request is read and dropped before
/// closing (closing with unread bytes sends a reset that can destroy the answer).
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_BYTES: u64 = 64 << 20;

/// What every connection shares.
pub struct Shared {
    pub path: String,
    pub max_body_bytes: u64,
    pub max_connections: usize,
    /// After SIGINT/SIGTERM, how long requests under way may take to arrive whole (a client
    /// trickling bytes cannot hold the shutdown forever).
    pub shutdown_grace: Duration,
    pub store: Sink,
    /// Lines stored recently: retried copies are dropped (`recent.rs`).
    pub recent: std::sync::Mutex<super::recent::Recent>,
    pub stopping: Arc<AtomicBool>,
    pub stats: Stats,
    /// Running spend totals (`GET /v1/spend`, `spend.rs`); kept with the daily files only.
    pub spend: Option<super::spend::Spend>,
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

impl Shared {
    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}

/// Accepts until `stopping` is set (and the accept is woken), then closes the listener and waits
/// up to `shutdown_grace` for every connection to finish its request. Returns how many did not.
pub fn serve(listener: TcpListener, shared: &Arc<Shared>) -> usize {
    let mut workers: Vec<JoinHandle<()>> = Vec::new();
    for conn in listener.incoming() {
        if shared.stopping() {
            break;
        }
        workers.retain(|w| !w.is_finished());
        match conn {
            Ok(stream) if workers.len() >= shared.max_connections => {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let body = json!({"error": "too many connections"}).to_string();
                let _ =
                    http::write_response(&mut &stream, 503, &[("retry-after", "1")], &body, true);
            }
            Ok(stream) => {
                let shared = Arc::clone(shared);
                match std::thread::Builder::new()
                    .name("collect-conn".into())
                    .spawn(move || connection(&stream, &shared))
                {
                    Ok(worker) => workers.push(worker),
                    Err(e) => eprintln!("llm-cost collect: cannot start a connection thread: {e}"),
                }
            }
            Err(e) => {
                eprintln!("llm-cost collect: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    drop(listener);
    let until = Instant::now() + shared.shutdown_grace;
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < until {
        std::thread::sleep(POLL / 2);
    }
    let (done, stuck): (Vec<_>, Vec<_>) = workers.into_iter().partition(|w| w.is_finished());
    for worker in done {
        let _ = worker.join();
    }
    stuck.len()
}

/// What to do with the connection after a request.
enum Next {
    KeepAlive,
    Close,
    /// An error was answered before the request was read whole.
    DrainAndClose,
}

fn connection(stream: &TcpStream, shared: &Shared) {
    let _ = stream.set_nodelay(true);
    let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    loop {
        if !wait_for_request(stream, &mut reader, shared) {
            return;
        }
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        match serve_one(&mut reader, &mut &*stream, shared) {
            Next::KeepAlive => {}
            Next::Close => return,
            Next::DrainAndClose => return drain(stream, &mut reader),
        }
    }
}

/// Waits for the first byte of the next request; `false` on close, idle timeout or shutdown.
fn wait_for_request(
    stream: &TcpStream,
    reader: &mut BufReader<TcpStream>,
    shared: &Shared,
) -> bool {
    let _ = stream.set_read_timeout(Some(POLL));
    let idle_until = Instant::now() + IDLE;
    loop {
        match reader.fill_buf() {
            Ok(buf) => return !buf.is_empty(),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                if shared.stopping() || Instant::now() >= idle_until {
                    return false;
                }
            }
            Err(_) => return false,
        }
    }
}

fn answer(
    w: &mut impl Write,
    status: u16,
    extra: &[(&str, &str)],
    body: &serde_json::Value,
    close: bool,
) -> bool {
    http::write_response(w, status, extra, &body.to_string(), close).is_ok()
}

fn refuse(w: &mut impl Write, status: u16, why: &str, extra: &[(&str, &str)]) -> Next {
    answer(w, status, extra, &json!({ "error": why }), true);
    Next::DrainAndClose
}

fn serve_one(reader: &mut BufReader<TcpStream>, w: &mut impl Write, shared: &Shared) -> Next {
    let head = match http::read_head(reader) {
        Ok(head) => head,
        Err(Error::Closed) => return Next::Close,
        Err(Error::Status(status, why)) => return refuse(w, status, why, &[]),
    };
    let framing = match head.framing() {
        Ok(framing) => framing,
        Err(Error::Status(status, why)) => return refuse(w, status, why, &[]),
        Err(Error::Closed) => return Next::Close,
    };
    let path = head.path();
    let method = head.method.as_str();
    if path == shared.path && method == "POST" {
        return ingest(reader, w, shared, &head, framing);
    }
    if path == SPEND_PATH && method == "GET" {
        let (status, body) = spend_answer(shared, &head);
        let extra: &[(&str, &str)] = if status == 401 {
            &[("www-authenticate", "Bearer")]
        } else {
            &[]
        };
        return bodyless(w, &head, framing, status, &body, extra);
    }
    let (status, body, allow) = if path == shared.path {
        (405, json!({"error": "method not allowed"}), "POST")
    } else if path == "/healthz" && method == "GET" {
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
    let extra: &[(&str, &str)] = if allow.is_empty() {
        &[]
    } else {
        &[("allow", allow)]
    };
    bodyless(w, &head, framing, status, &body, extra)
}

/// Spend so far per (dimension, value): `GET /v1/spend?period=day|month|none`.
const SPEND_PATH: &str = "/v1/spend";

/// The status and JSON of a spend query (the token first: a 401 says nothing else).
fn spend_answer(shared: &Shared, head: &Head) -> (u16, serde_json::Value) {
    if let Some(token) = &shared.spend_token {
        if !super::spend::authorized(head.header("authorization"), token) {
            return (
                401,
                json!({"error": "spend queries need `Authorization: Bearer <--spend-token>`"}),
            );
        }
    }
    let query = head.target.split_once('?').map_or("", |(_, q)| q);
    let mut period = Some(super::spend::Period::Month);
    for (name, value) in query.split('&').filter_map(|p| p.split_once('=')) {
        if name == "period" {
            period = super::spend::Period::parse(value);
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

/// Answers a request whose body is not wanted: keeps the connection only when there is none.
fn bodyless(
    w: &mut impl Write,
    head: &Head,
    framing: Option<Framing>,
    status: u16,
    body: &serde_json::Value,
    extra: &[(&str, &str)],
) -> Next {
    let has_body = !matches!(framing, None | Some(Framing::Length(0)));
    if has_body {
        answer(w, status, extra, body, true);
        return Next::DrainAndClose;
    }
    if answer(w, status, extra, body, !head.keep_alive()) && head.keep_alive() {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

fn ingest(
    reader: &mut BufReader<TcpStream>,
    w: &mut impl Write,
    shared: &Shared,
    head: &Head,
    framing: Option<Framing>,
) -> Next {
    if let Some(Framing::Length(n)) = framing {
        if n > shared.max_body_bytes {
            return refuse(w, 413, "body too large", &[]);
        }
    }
    if head
        .header("content-encoding")
        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return refuse(w, 415, "compressed bodies are not accepted", &[]);
    }
    if framing.is_some() && head.expects_continue() && http::write_continue(w).is_err() {
        return Next::Close;
    }
    let body = match framing {
        None => Vec::new(),
        Some(framing) => match http::read_body(reader, framing, shared.max_body_bytes) {
            Ok(body) => body,
            Err(Error::Status(status, why)) => return refuse(w, status, why, &[]),
            Err(Error::Closed) => return Next::Close,
        },
    };
    // Parsing under the lock: of two requests carrying the same retried line, one stores it. (If
    // that one's append then fails, its sender retries the whole batch, line included.)
    let recent = || {
        shared
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
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
    let appended = shared.store.append(batch.by_day);
    if let (Ok(_), Some(spend)) = (&appended, &shared.spend) {
        for (day, lines) in &for_totals {
            spend.add_lines(*day, lines);
        }
    }
    if appended.is_err() {
        recent().forget(&batch.hashes);
    }
    let known = match appended {
        Ok(known) => known,
        Err(e) => {
            // Nothing of this request stayed in the files: the sender may retry it whole.
            answer(
                w,
                503,
                &[("retry-after", "1")],
                &json!({ "error": e }),
                true,
            );
            return Next::Close;
        }
    };
    // Lines the ledger already had were redelivered copies: counted as such, not as stored.
    let (stored, duplicates) = (stored.saturating_sub(known), duplicates + known);
    shared.stats.stored.fetch_add(stored, Ordering::Relaxed);
    shared.stats.rejected.fetch_add(rejected, Ordering::Relaxed);
    shared
        .stats
        .duplicates
        .fetch_add(duplicates, Ordering::Relaxed);
    if rejected > 0 {
        let at: Vec<String> = batch.rejected_at.iter().map(u64::to_string).collect();
        eprintln!(
            "llm-cost collect: stored {stored} line(s), skipped {rejected} malformed (line {})",
            at.join(", ")
        );
    }
    // Closing when stopping tells a keep-alive client not to send more here.
    let keep = head.keep_alive() && !shared.stopping();
    let body = json!({ "stored": stored, "rejected": rejected, "rejected_lines": batch.rejected_at, "duplicates": duplicates });
    if answer(w, 200, &[], &body, !keep) && keep {
        Next::KeepAlive
    } else {
        Next::Close
    }
}

/// Half-closes, then reads and drops what the client still sends, bounded in time and bytes.
fn drain(stream: &TcpStream, reader: &mut BufReader<TcpStream>) {
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(POLL));
    let until = Instant::now() + DRAIN_TIME;
    let mut left = DRAIN_BYTES;
    let mut buf = [0u8; 16 * 1024];
    while left > 0 && Instant::now() < until {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => left = left.saturating_sub(n as u64),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return,
        }
    }
}
