//! The PostgreSQL ledger: `collect --postgres URL` inserts records into `llm_cost_records`.
//!
//! Owns the connection pool (deadpool over the async `tokio-postgres` client, on the collector's
//! runtime: a batch waiting for the database holds no thread), TLS (rustls, Mozilla's roots, chosen
//! by the URL's `sslmode`), the embedded migrations (`migrations.rs`, run on the first successful
//! connection: the collector starts, and answers 503, while the database is unreachable) and the
//! batch insert. Also [`Ledger::open`] (the [`Reader`] `report --postgres` queries, `query.rs`),
//! [`connect`] / [`connect_async`]: one client for a one-shot caller.
//! Does not own HTTP or de-duplication within the process (`collect/`). The URL is never printed:
//! it may carry a password.

mod migrations;
pub mod query;
mod row;

use std::cell::{RefCell, RefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use serde_json::{Map, Value};
use tokio::sync::OnceCell;
use tokio_postgres_rustls::MakeRustlsConnect;

use row::{Row, INSERT};

/// Longest wait for a pooled connection (the filter's request times out after 2 s by default:
/// a 503 before that tells it at once to retry).
const CHECKOUT: Duration = Duration::from_millis(1500);
/// Longest wait for a new connection (TLS included), unless the URL says `connect_timeout`.
const CONNECT: Duration = Duration::from_secs(5);
/// Longest a batch's statements may run before the batch is answered 503.
const STATEMENT_TIMEOUT_MS: u32 = 5_000;
/// Connections kept at most.
const POOL_SIZE: usize = 8;

/// A pool of connections to the ledger database.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool,
    /// Set once the migrations ran (on the first connection that worked).
    migrated: Arc<OnceCell<()>>,
    /// `host:port/dbname`, for messages (no user, no password).
    pub target: String,
}

/// What one batch insert did.
#[derive(Debug, PartialEq, Eq)]
pub struct Inserted {
    pub rows: u64,
    /// Records the database already had (same `request_id` and `ts`): redelivered copies.
    pub duplicates: u64,
}

/// `url` parsed (`postgres://user:pass@host:port/db?sslmode=require`, or the key=value form),
/// with the collector's connect timeout, application name and statement timeout.
fn config(url: &str) -> Result<tokio_postgres::Config, String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|e| format!("--postgres: not a PostgreSQL URL: {e}"))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT);
    }
    config.application_name("llm-cost");
    config.options(format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
    Ok(config)
}

/// One blocking client for `url` (TLS per `sslmode`, the same timeouts as the collector); runs no
/// migration. For one-shot callers outside a runtime (`Ledger::open`).
pub fn connect(url: &str) -> Result<postgres::Client, String> {
    let config = config(url)?;
    let target = describe(&config);
    postgres::Config::from(config)
        .connect(tls()?)
        .map_err(|e| format!("ledger {target} unavailable: {}", why(&e)))
}

/// One async client for `url`, its connection driven by a task on the current tokio runtime;
/// runs no migration.
#[allow(dead_code)] // for an async one-shot caller
pub async fn connect_async(url: &str) -> Result<tokio_postgres::Client, String> {
    let config = config(url)?;
    let target = describe(&config);
    let (client, connection) = config
        .connect(tls()?)
        .await
        .map_err(|e| format!("ledger {target} unavailable: {}", why(&e)))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("llm-cost: ledger {target}: connection ended: {e}");
        }
    });
    Ok(client)
}

/// One blocking connection to the ledger, for a one-shot reader (`report --postgres`).
pub struct Reader {
    client: RefCell<postgres::Client>,
    /// `host:port/dbname`, for messages (no user, no password).
    pub target: String,
}

impl Reader {
    /// The connection (one caller at a time: a second borrow is an error, not a panic).
    fn get(&self) -> Result<RefMut<'_, postgres::Client>, String> {
        self.client
            .try_borrow_mut()
            .map_err(|_| format!("ledger {}: connection already in use", self.target))
    }
}

impl Ledger {
    /// A blocking connection to `url` without touching the schema (`report --postgres`: a
    /// read-only user will do); see [`Reader`].
    pub fn open(url: &str) -> Result<Reader, String> {
        let config = config(url)?;
        let target = describe(&config);
        Ok(Reader {
            client: RefCell::new(connect(url)?),
            target,
        })
    }

    /// Makes the pool for `url` and tries the database once: reachable, the pending migrations
    /// run now; unreachable, that is said and the collector starts anyway (batches get 503 until
    /// a connection works, which then runs the migrations). Call inside the runtime.
    pub async fn start(url: &str) -> Result<Ledger, String> {
        let config = config(url)?;
        let target = describe(&config);
        let manager = Manager::from_config(
            config,
            tls()?,
            // A query per checkout: a connection the server closed is replaced, not used.
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CHECKOUT))
            .create_timeout(Some(CONNECT))
            .recycle_timeout(Some(CHECKOUT))
            .build()
            .map_err(|e| format!("ledger {target}: {e}"))?;
        let ledger = Ledger {
            pool,
            migrated: Arc::new(OnceCell::new()),
            target,
        };
        if let Err(e) = ledger.ready().await {
            eprintln!(
                "llm-cost collect: {e}; starting anyway, batches get 503 until it is reachable"
            );
        }
        Ok(ledger)
    }

    async fn get(&self) -> Result<Object, String> {
        self.pool.get().await.map_err(|e| {
            let e = match e {
                PoolError::Backend(e) => why(&e),
                other => other.to_string(),
            };
            format!("ledger {} unavailable: {e}", self.target)
        })
    }

    /// A connection, the migrations applied (on the first one that works).
    async fn ready(&self) -> Result<Object, String> {
        let mut conn = self.get().await?;
        self.migrated
            .get_or_try_init(|| async {
                let ran = migrations::migrate(&mut conn).await.map_err(|e| {
                    format!("ledger {}: migration failed: {}", self.target, why(&e))
                })?;
                eprintln!(
                    "llm-cost collect: ledger {} reachable, {ran} migration(s) applied",
                    self.target
                );
                Ok::<(), String>(())
            })
            .await?;
        Ok(conn)
    }

    /// Inserts `records` in one transaction: all of them are committed, or none (the error).
    pub async fn insert(&self, records: &[Map<String, Value>]) -> Result<Inserted, String> {
        let mut done = Inserted {
            rows: 0,
            duplicates: 0,
        };
        if records.is_empty() {
            return Ok(done);
        }
        let mut conn = self.ready().await?;
        let fail = |e: tokio_postgres::Error| {
            format!("ledger {}: insert failed: {}", self.target, why(&e))
        };
        let tx = conn.transaction().await.map_err(fail)?;
        let statement = tx.prepare_cached(INSERT).await.map_err(fail)?;
        for record in records {
            let r = Row::from_record(record);
            let n = tx
                .execute(
                    &statement,
                    &[
                        &r.ts,
                        &r.request_id,
                        &r.host,
                        &r.provider,
                        &r.endpoint,
                        &r.model_requested,
                        &r.model,
                        &r.stream,
                        &r.status_code,
                        &r.prompt_tokens,
                        &r.completion_tokens,
                        &r.cached_tokens,
                        &r.cache_write_tokens,
                        &r.reasoning_tokens,
                        &r.cost_usd,
                        &r.cost_micros,
                        &r.upstream_cost_usd,
                        &r.cost_status,
                        &r.error,
                        &r.pricing_version,
                        &r.breakdown,
                        &r.key_id,
                        &r.priced_as,
                        &r.upstream_inference_cost_usd,
                        &r.is_byok,
                        &r.duration_ms,
                        &r.oversize_events,
                        &r.adjustment_percent,
                        &r.attributes,
                        &r.record,
                    ],
                )
                .await
                .map_err(fail)?;
            if n == 0 {
                done.duplicates += 1;
            } else {
                done.rows += n;
            }
        }
        tx.commit().await.map_err(fail)?;
        Ok(done)
    }
}

/// What went wrong, with the server's own message when the server refused (a bare `db error`
/// otherwise); not its detail line, which may quote row values.
fn why(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} ({})", db.message(), db.code().code());
    }
    // `error connecting to server` says why only in its source (`Connection refused`, …).
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `host:port/dbname` of `config`.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// TLS for `sslmode=prefer|require`: rustls (ring) verifying the server against Mozilla's roots.
/// `sslmode=disable` never uses it.
fn tls() -> Result<MakeRustlsConnect, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS set-up failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
