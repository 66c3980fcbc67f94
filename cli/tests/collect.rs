//! `llm-cost collect` as a real process: daily files, malformed lines, limits, concurrent
//! clients, shutdown with a request in flight, restarts. Every socket has read/write timeouts and
//! every child is killed when a test fails (`Collector`'s `Drop`), so a bug fails, never hangs.
#![cfg(unix)]

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const IO: Duration = Duration::from_secs(10);

/// A running `llm-cost collect`, killed on drop.
struct Collector {
    child: Child,
    addr: SocketAddr,
    stderr: PathBuf,
}

impl Collector {
    fn start(dir: &Path, extra: &[&str]) -> Collector {
        let stderr = dir.with_extension(format!("stderr-{}", unique()));
        let mut child = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
            .args(["collect", "--listen", "127.0.0.1:0", "--out"])
            .arg(dir)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut collector = Collector {
            child,
            addr: "127.0.0.1:1".parse().unwrap(),
            stderr,
        };
        let line = rx.recv_timeout(IO).unwrap_or_default();
        // `listening on http://127.0.0.1:PORT/ingest`
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|rest| rest.split('/').next())
            .and_then(|a| a.parse().ok());
        match addr {
            Some(addr) => collector.addr = addr,
            None => panic!(
                "no address on stdout: {line:?}; stderr: {}",
                collector.log()
            ),
        }
        collector
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: sends a signal to our own child; no memory involved.
        assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    }

    /// Waits for the process to exit, at most `limit`.
    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "collector still running after {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> Conn {
        Conn::open(self.addr)
    }

    fn post(&self, path: &str, body: &[u8]) -> Response {
        self.connect().post(path, body, true)
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// A client connection with timeouts on every read and write.
struct Conn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect_timeout(&addr, IO).unwrap();
        stream.set_read_timeout(Some(IO)).unwrap();
        stream.set_write_timeout(Some(IO)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Conn { stream, reader }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn post(&mut self, path: &str, body: &[u8], close: bool) -> Response {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: collector\r\ncontent-type: application/x-ndjson\r\ncontent-length: {}\r\n{}\r\n",
            body.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        self.send(head.as_bytes());
        self.send(body);
        self.response()
    }

    fn get(&mut self, target: &str, authorization: Option<&str>) -> Response {
        let auth = authorization.map_or(String::new(), |a| format!("authorization: {a}\r\n"));
        let head =
            format!("GET {target} HTTP/1.1\r\nhost: collector\r\n{auth}connection: close\r\n\r\n");
        self.send(head.as_bytes());
        self.response()
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        line.trim_end().to_owned()
    }

    /// Reads one response (the server always sends content-length).
    fn response(&mut self) -> Response {
        let status_line = self.line();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
        let mut headers = Vec::new();
        loop {
            let line = self.line();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let length: usize = response
            .header("content-length")
            .map_or(0, |v| v.parse().unwrap());
        response.body.resize(length, 0);
        self.reader.read_exact(&mut response.body).unwrap();
        response
    }
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!("llm-cost-collect-test-{}", unique()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn read(&self, day: &str) -> String {
        std::fs::read_to_string(self.0.join(format!("llm-cost-{day}.ndjson"))).unwrap_or_default()
    }

    /// The data files, sorted (the lock file is hidden).
    fn files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.starts_with('.'))
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn record(ts: &str, id: &str, cost: &str) -> String {
    format!(
        r#"{{"ts":"{ts}","request_id":"{id}","model":"openai/o3","cost_usd":"{cost}","cost_status":"exact"}}"#
    )
}

#[test]
fn batches_land_in_daily_files_by_the_record_ts() {
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &[]);
    let a = record("2026-03-31T23:59:59.999Z", "a", "0.1");
    let b = record("2026-04-01T00:00:00.000Z", "b", "0.02");
    let d = record("2026-03-31T10:00:00.000Z", "d", "0.003");
    let r = c.post("/ingest", format!("{a}\n{b}\n").as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["stored"], 2);
    assert_eq!(r.json()["rejected"], 0);
    // The Worker's shape: one record per POST, ending with a newline; the last line may also lack it.
    assert_eq!(c.post("/ingest", d.as_bytes()).status, 200);
    assert_eq!(
        dir.files(),
        ["llm-cost-2026-03-31.ndjson", "llm-cost-2026-04-01.ndjson"]
    );
    assert_eq!(dir.read("2026-03-31"), format!("{a}\n{d}\n"));
    assert_eq!(dir.read("2026-04-01"), format!("{b}\n"));

    // The files are what `llm-cost report` reads.
    let out = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .args(["report", "--json"])
        .arg(dir.0.join("llm-cost-2026-03-31.ndjson"))
        .arg(dir.0.join("llm-cost-2026-04-01.ndjson"))
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["total"]["calls"], 3);
    assert_eq!(report["total"]["cost_usd"], "0.123");
}

#[test]
fn a_record_without_a_usable_ts_is_filed_under_its_arrival_day() {
    let today = || {
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        llm_cost_core::time::rfc3339_millis(ms)[..10].to_owned()
    };
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &[]);
    let before = today();
    let body = "{\"n\":1}\n{\"n\":2,\"ts\":\"yesterday\"}\n{\"n\":3,\"ts\":\"../../x\"}\n";
    assert_eq!(c.post("/ingest", body.as_bytes()).json()["stored"], 3);
    let after = today();
    let files = dir.files();
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(
        [
            format!("llm-cost-{before}.ndjson"),
            format!("llm-cost-{after}.ndjson")
        ]
        .contains(&files[0]),
        "{files:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.0.join(&files[0])).unwrap(),
        body
    );
}

#[test]
fn malformed_lines_are_skipped_counted_and_answered_200() {
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &[]);
    let good = record("2026-05-05T12:00:00.000Z", "good", "0.5");
    let good2 = record("2026-05-05T12:00:00.001Z", "good2", "0.5");
    let body = format!("{good}\r\nnot json\n\n[1,2]\n{{\"cut\":\n{good2}\n\u{ff}\n");
    let r = c.post("/ingest", body.as_bytes());
    // 200: the sender must not retry a batch forever for lines that can never be stored.
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["stored"], 2);
    assert_eq!(r.json()["rejected"], 4);
    assert_eq!(r.json()["rejected_lines"], serde_json::json!([2, 4, 5, 7]));
    assert_eq!(dir.read("2026-05-05"), format!("{good}\n{good2}\n"));
    // Nothing but garbage: still 200, nothing stored, the log says so.
    let r = c.post("/ingest", b"<html>\n");
    assert_eq!((r.status, r.json()["stored"].as_u64()), (200, Some(0)));
    assert_eq!(dir.files(), ["llm-cost-2026-05-05.ndjson"]);
    assert!(
        c.log().contains("skipped 4 malformed (line 2, 4, 5, 7)"),
        "{}",
        c.log()
    );
}

#[test]
fn limits_paths_and_methods() {
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &["--max-body-bytes", "1000"]);
    let line = record("2026-06-01T00:00:00.000Z", "x", "1");

    // Announced too large: 413 before the body is sent.
    let mut conn = c.connect();
    conn.send(b"POST /ingest HTTP/1.1\r\nhost: c\r\ncontent-length: 100000000\r\n\r\n");
    let r = conn.response();
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));

    // Chunked past the limit: 413 once the limit is crossed.
    let mut conn = c.connect();
    let chunk = format!("{:x}\r\n{}\r\n", 600, "x".repeat(600));
    conn.send(format!("POST /ingest HTTP/1.1\r\nhost: c\r\ntransfer-encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n").as_bytes());
    assert_eq!(conn.response().status, 413);

    // Exactly at the limit is accepted.
    let at_limit = format!("{line}\n{}", " ".repeat(1000 - line.len() - 1));
    assert_eq!(at_limit.len(), 1000);
    assert_eq!(c.post("/ingest", at_limit.as_bytes()).status, 200);

    let r = c.post("/records", line.as_bytes());
    assert_eq!(r.status, 404);
    let mut conn = c.connect();
    conn.send(b"GET /ingest HTTP/1.1\r\nhost: c\r\n\r\n");
    let r = conn.response();
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    // A 405 without a body keeps the connection: the next request on it works.
    conn.send(b"GET /healthz HTTP/1.1\r\nhost: c\r\n\r\n");
    assert_eq!(conn.response().status, 200);
    conn.send(b"PUT /ingest HTTP/1.1\r\nhost: c\r\ncontent-length: 2\r\n\r\n{}");
    assert_eq!(conn.response().status, 405);

    let mut conn = c.connect();
    conn.send(b"BROKEN\r\n\r\n");
    assert_eq!(conn.response().status, 400);
    // Both content-length and chunked (the shape of request smuggling): framed by the chunked
    // encoding alone, never by the length, and the connection is closed after the answer
    // (RFC 9112 section 6.3), so nothing after the body can be taken for another request.
    let smuggled = record("2026-06-02T00:00:00.000Z", "te", "1");
    let mut conn = c.connect();
    conn.send(
        format!(
            "POST /ingest HTTP/1.1\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{smuggled}\r\n0\r\n\r\n",
            smuggled.len()
        )
        .as_bytes(),
    );
    let r = conn.response();
    assert_eq!((r.status, r.json()["stored"].as_u64()), (200, Some(1)));
    assert_eq!(
        conn.reader.read(&mut [0u8; 1]).unwrap(),
        0,
        "connection kept"
    );
    assert_eq!(dir.read("2026-06-02"), format!("{smuggled}\n"));
    let mut conn = c.connect();
    conn.send(b"POST /ingest HTTP/1.1\r\ncontent-encoding: gzip\r\ncontent-length: 2\r\n\r\n{}");
    assert_eq!(conn.response().status, 415);

    // Only the accepted request was stored, and the server still works.
    assert_eq!(dir.read("2026-06-01"), format!("{line}\n"));
    let line2 = line.replace("\"cost_usd\":\"", "\"cost_usd\":\"1");
    assert_eq!(c.post("/ingest", line2.as_bytes()).status, 200);
    assert_eq!(dir.read("2026-06-01"), format!("{line}\n{line2}\n"));
}

#[test]
fn chunked_bodies_keep_alive_and_expect_continue() {
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &[]);
    let a = record("2026-07-01T00:00:00.000Z", "a", "1");
    let b = record("2026-07-01T00:00:01.000Z", "b", "2");
    let mut conn = c.connect();
    // Chunked, split inside a line (as Envoy may send it).
    let (x, y) = a.split_at(10);
    conn.send(
        format!(
            "POST /ingest HTTP/1.1\r\nhost: c\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{x}\r\n{:x}\r\n{y}\n\r\n0\r\n\r\n",
            x.len(),
            y.len() + 1
        )
        .as_bytes(),
    );
    let r = conn.response();
    assert_eq!((r.status, r.header("connection")), (200, None));
    // Same connection, `Expect: 100-continue` (curl does this for larger bodies).
    conn.send(
        format!(
            "POST /ingest?token=x HTTP/1.1\r\nhost: c\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
            b.len() + 1
        )
        .as_bytes(),
    );
    let interim = conn.response();
    assert_eq!(interim.status, 100);
    conn.send(format!("{b}\n").as_bytes());
    assert_eq!(conn.response().status, 200);
    assert_eq!(dir.read("2026-07-01"), format!("{a}\n{b}\n"));
}

#[test]
fn concurrent_clients_lines_never_interleave() {
    const CLIENTS: usize = 8;
    const REQUESTS: usize = 20;
    const LINES: usize = 25;
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &[]);
    let addr = c.addr;
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            std::thread::spawn(move || {
                let pad = char::from(b'a' + t as u8).to_string().repeat(1000);
                let mut conn = Conn::open(addr);
                for r in 0..REQUESTS {
                    let body: String = (0..LINES)
                        .map(|l| format!("{{\"ts\":\"2026-08-01T00:00:00.000Z\",\"id\":\"{t}-{r}-{l}\",\"pad\":\"{pad}\"}}\n"))
                        .collect();
                    let resp = conn.post("/ingest", body.as_bytes(), false);
                    assert_eq!(resp.status, 200);
                    assert_eq!(resp.json()["stored"], LINES);
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap();
    }
    let elapsed = started.elapsed();
    let text = dir.read("2026-08-01");
    let mut seen = std::collections::BTreeSet::new();
    let mut previous: Option<(String, usize)> = None;
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:.80}"));
        let id = v["id"].as_str().unwrap().to_owned();
        let pad = v["pad"].as_str().unwrap();
        let t: usize = id.split('-').next().unwrap().parse().unwrap();
        assert_eq!(
            pad,
            char::from(b'a' + t as u8).to_string().repeat(1000),
            "line mixed: {id}"
        );
        // A request's lines stay together, in order.
        let (request, l) = id.rsplit_once('-').unwrap();
        let l: usize = l.parse().unwrap();
        if l > 0 {
            assert_eq!(
                previous,
                Some((request.to_owned(), l - 1)),
                "{id} not after its predecessor"
            );
        }
        previous = Some((request.to_owned(), l));
        assert!(seen.insert(id), "duplicate line");
    }
    assert_eq!(seen.len(), CLIENTS * REQUESTS * LINES);
    eprintln!("{} lines from {CLIENTS} clients in {elapsed:?}", seen.len());
}

#[test]
fn sigterm_with_a_request_in_flight_still_stores_it() {
    let dir = TempDir::new();
    let mut c = Collector::start(&dir.0, &[]);
    let line = format!(
        "{}\n",
        record("2026-09-09T09:09:09.000Z", "in-flight", "0.25")
    );
    let mut conn = c.connect();
    let (first, rest) = line.as_bytes().split_at(20);
    conn.send(
        format!(
            "POST /ingest HTTP/1.1\r\nhost: c\r\ncontent-length: {}\r\n\r\n",
            line.len()
        )
        .as_bytes(),
    );
    conn.send(first);
    std::thread::sleep(Duration::from_millis(200));
    c.signal(libc::SIGTERM);
    // New connections are refused once the signal is taken...
    let until = Instant::now() + IO;
    while TcpStream::connect_timeout(&c.addr, Duration::from_secs(1)).is_ok() {
        assert!(Instant::now() < until, "still accepting after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        c.child.try_wait().unwrap().is_none(),
        "exited with a request in flight"
    );
    // ...while the request under way finishes and is stored.
    conn.send(rest);
    let r = conn.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert_eq!(dir.read("2026-09-09"), line);
    let status = c.wait_exit(IO);
    assert_eq!(status.code(), Some(0), "{}", c.log());
    assert!(c.log().contains("1 line(s) stored"), "{}", c.log());
}

#[test]
fn restart_appends_and_idle_connections_do_not_delay_shutdown() {
    let dir = TempDir::new();
    let a = record("2026-10-10T00:00:00.000Z", "a", "1");
    let b = record("2026-10-10T00:00:01.000Z", "b", "2");
    let mut c = Collector::start(&dir.0, &[]);
    let mut idle = c.connect();
    assert_eq!(idle.post("/ingest", a.as_bytes(), false).status, 200);
    let stopped = Instant::now();
    c.signal(libc::SIGINT);
    assert_eq!(c.wait_exit(IO).code(), Some(0), "{}", c.log());
    let took = stopped.elapsed();
    assert!(
        took < Duration::from_secs(3),
        "shutdown took {took:?} with an idle keep-alive connection"
    );
    drop(idle);

    let mut c = Collector::start(&dir.0, &[]);
    assert_eq!(c.post("/ingest", b.as_bytes()).status, 200);
    c.signal(libc::SIGTERM);
    assert_eq!(c.wait_exit(IO).code(), Some(0));
    assert_eq!(dir.read("2026-10-10"), format!("{a}\n{b}\n"));
}

#[test]
fn one_collector_per_directory() {
    let dir = TempDir::new();
    let _first = Collector::start(&dir.0, &[]);
    let mut second = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .args(["collect", "--listen", "127.0.0.1:0", "--out"])
        .arg(&dir.0)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let until = Instant::now() + IO;
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > until {
            let _ = second.kill();
            let _ = second.wait();
            panic!("the second collector did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2));
    assert!(
        err.contains("in use by another `llm-cost collect`"),
        "{err}"
    );
}

#[test]
fn a_request_that_never_completes_cannot_hold_the_shutdown() {
    let dir = TempDir::new();
    let mut c = Collector::start(&dir.0, &["--shutdown-grace", "1"]);
    let mut trickle = c.connect();
    trickle.send(b"POST /ingest HTTP/1.1\r\nhost: c\r\ncontent-length: 1000\r\n\r\n{\"ts\":");
    std::thread::sleep(Duration::from_millis(200));
    let stopped = Instant::now();
    c.signal(libc::SIGTERM);
    for _ in 0..5 {
        // Bytes keep coming, never the whole body.
        std::thread::sleep(Duration::from_millis(300));
        let _ = trickle.stream.write_all(b" ");
    }
    assert_eq!(c.wait_exit(IO).code(), Some(0), "{}", c.log());
    let took = stopped.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(5),
        "{took:?}"
    );
    assert!(
        c.log().contains("1 request(s) still incomplete after 1s"),
        "{}",
        c.log()
    );
    assert!(dir.files().is_empty());
}

#[test]
fn a_retried_batch_is_stored_once() {
    // The filter resends a batch whose answer timed out although it was stored (at-least-once):
    // the copy is dropped, the answer says so, and new lines in the same batch are kept.
    let dir = TempDir::new();
    let c = Collector::start(&dir.0, &[]);
    let (a, b) = (
        record("2026-07-01T10:00:00.000Z", "a", "0.1"),
        record("2026-07-01T10:00:00.001Z", "b", "0.2"),
    );
    let first = c.post("/ingest", format!("{a}\n{b}\n").as_bytes());
    assert_eq!(
        (first.status, first.json()["duplicates"].clone()),
        (200, 0.into())
    );
    let c_line = record("2026-07-01T10:00:01.000Z", "c", "0.3");
    let retry = c.post("/ingest", format!("{b}\n{a}\n{c_line}\n").as_bytes());
    assert_eq!(retry.status, 200);
    assert_eq!(retry.json()["stored"], 1);
    assert_eq!(retry.json()["duplicates"], 2);
    assert_eq!(dir.read("2026-07-01"), format!("{a}\n{b}\n{c_line}\n"));
}

/// The spend of `dimension` `value` in a `GET /v1/spend` answer.
fn spent(answer: &Value, dimension: &str, value: &str) -> Option<String> {
    answer["spend"]
        .as_array()?
        .iter()
        .find(|s| s["dimension"] == dimension && s["value"] == value)
        .and_then(|s| s["spent_usd"].as_str().map(str::to_owned))
}

#[test]
fn spend_queries_answer_exact_running_totals_that_survive_a_restart() {
    let dir = TempDir::new();
    // Stored before the collector starts, in a month long gone: counts for `none`, not `month`.
    std::fs::write(
        dir.0.join("llm-cost-2026-01-15.ndjson"),
        "{\"ts\":\"2026-01-15T10:00:00Z\",\"key_id\":\"3f2a9c1b7e44\",\"provider\":\"openai\",\"cost_usd\":\"0.1\"}\n",
    )
    .unwrap();
    let token = "s3cret-spend-token";
    let bearer = format!("Bearer {token}");
    let c = Collector::start(&dir.0, &["--spend-token", token]);
    // No `ts`: filed under (and counted on) the day they arrive, i.e. this month.
    let tiny = r#"{"request_id":"s1","key_id":"3f2a9c1b7e44","provider":"openai","priced_as":"openai/gpt-4o-mini","cost_usd":"0.000000000000000000000000000001","attributes":{"team":"search"}}"#;
    let big = r#"{"request_id":"s2","key_id":"3f2a9c1b7e44","provider":"openai","priced_as":"openai/gpt-4o-mini","cost_usd":"0.2","attributes":{"team":"search"}}"#;
    let refused = r#"{"request_id":"s3","key_id":"3f2a9c1b7e44","provider":"openai","status_code":429,"error":"budget_exceeded"}"#;
    let r = c.post("/ingest", format!("{tiny}\n{big}\n{refused}\n").as_bytes());
    assert_eq!(r.json()["stored"], 3, "{r:?}");
    // A retried copy is dropped by the store, so the totals do not count it either.
    assert_eq!(c.post("/ingest", big.as_bytes()).json()["duplicates"], 1);

    for auth in [None, Some("Bearer wrong"), Some(token)] {
        let r = c.connect().get("/v1/spend?period=month", auth);
        assert_eq!(r.status, 401, "{auth:?}");
        assert_eq!(r.header("www-authenticate"), Some("Bearer"));
        assert!(!String::from_utf8_lossy(&r.body).contains("spent_usd"));
    }
    let check = |c: &Collector| {
        let month = c.connect().get("/v1/spend?period=month", Some(&bearer));
        assert_eq!(month.status, 200, "{month:?}");
        let month = month.json();
        assert_eq!(month["period"], "month");
        assert_eq!(month["records"], 3);
        let exact = Some("0.200000000000000000000000000001".to_owned());
        for (dimension, value) in [
            ("key_id", "3f2a9c1b7e44"),
            ("team", "search"),
            ("model", "openai/gpt-4o-mini"),
            ("provider", "openai"),
        ] {
            assert_eq!(spent(&month, dimension, value), exact, "{dimension}");
        }
        let all = c
            .connect()
            .get("/v1/spend?period=none", Some(&bearer))
            .json();
        assert_eq!(
            spent(&all, "key_id", "3f2a9c1b7e44"),
            Some("0.300000000000000000000000000001".to_owned())
        );
        assert_eq!(
            c.connect()
                .get("/v1/spend?period=week", Some(&bearer))
                .status,
            400
        );
    };
    check(&c);
    // A restart rebuilds the same totals from the files.
    drop(c);
    let c = Collector::start(&dir.0, &["--spend-token", token]);
    check(&c);
    assert!(
        c.log().contains("spend totals from 2 stored file(s)"),
        "{}",
        c.log()
    );
    drop(c);
    // Without a token the endpoint is open.
    let c = Collector::start(&dir.0, &[]);
    assert_eq!(c.connect().get("/v1/spend", None).json()["period"], "month");
}
