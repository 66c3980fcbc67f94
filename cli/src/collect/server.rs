//! The accept loop, one hyper HTTP/1.1 connection per task, and the graceful shutdown.
//!
//! At the stop signal the listener is closed (new connections are refused), every connection is
//! told to finish: an idle keep-alive one closes at once, one with a request under way answers it
//! (with `connection: close`) and then closes. The connections get `--shutdown-grace` for that;
//! the ones still open then are counted and left to the process exit (their requests were never
//! answered, so their senders retry them). Not here: what a request is answered (`routes.rs`).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::routes::{self, Shared};

/// Longest wait for a request head, also between requests of a keep-alive connection.
const IDLE: Duration = Duration::from_secs(60);
/// After an answer that left the body unread, how long and how much of the rest is read and
/// dropped before closing (closing with unread bytes sends a reset that can destroy the answer).
const DRAIN_TIME: Duration = Duration::from_secs(2);
const DRAIN_BYTES: u64 = 64 << 20;
/// Largest request head (hyper's read buffer: a larger head gets 431); hyper keeps its default
/// of at most 100 header fields.
const MAX_HEAD: usize = 64 << 10;
/// How long a connection past `--max-connections` gets for its 503.
const REFUSE_TIME: Duration = Duration::from_secs(1);

/// Serves until `stop` resolves, then shuts down gracefully (module header). Returns how many
/// connections were still open after `grace`.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    max_connections: usize,
    grace: Duration,
    stop: impl Future<Output = ()>,
) -> usize {
    let (stopping, stop_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(stop);
    loop {
        let accepted = tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => accepted,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) if connections.len() >= max_connections => {
                tokio::spawn(tokio::time::timeout(REFUSE_TIME, too_many(stream)));
            }
            Ok((stream, _)) => {
                connections.spawn(connection(stream, Arc::clone(&shared), stop_rx.clone()));
            }
            Err(e) => {
                eprintln!("llm-cost collect: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    drop(listener);
    shared.stopping.store(true, Ordering::SeqCst);
    let _ = stopping.send(true);
    let until = Instant::now() + grace;
    while !connections.is_empty() {
        let left = until.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, connections.join_next()).await {
            Ok(_) => {}
            Err(_) => break,
        }
    }
    connections.len()
}

fn builder() -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE)
        .max_buf_size(MAX_HEAD);
    builder
}

/// Serves one connection until it closes or, after the stop signal, its request is answered.
async fn connection(stream: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let unread = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&unread);
    let service = service_fn(move |req| {
        Box::pin(routes::handle(req, Arc::clone(&shared), Arc::clone(&flag)))
    });
    let mut conn = builder().serve_connection(TokioIo::new(stream), service);
    let mut told = false;
    let served = loop {
        tokio::select! {
            served = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => break served,
            _ = stop.changed(), if !told => {
                told = true;
                std::pin::Pin::new(&mut conn).graceful_shutdown();
            }
        }
    };
    if served.is_err() {
        return;
    }
    let mut stream = conn.into_parts().io.into_inner();
    if unread.load(Ordering::Relaxed) {
        drain(&mut stream).await;
    }
}

/// Half-closes, then reads and drops what the client still sends, bounded in time and bytes.
async fn drain(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let until = tokio::time::Instant::now() + DRAIN_TIME;
    let mut left = DRAIN_BYTES;
    let mut buf = vec![0u8; 16 * 1024];
    while left > 0 {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n as u64),
            _ => return,
        }
    }
}

/// Answers 503 to a connection past `--max-connections`.
async fn too_many(stream: TcpStream) {
    let service = service_fn(|_req| async {
        Ok::<_, std::convert::Infallible>(routes::answer(
            503,
            &[("retry-after", "1")],
            &json!({"error": "too many connections"}),
            true,
        ))
    });
    let _ = builder()
        .serve_connection(TokioIo::new(stream), service)
        .await;
}
