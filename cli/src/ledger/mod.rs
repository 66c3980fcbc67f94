//! The PostgreSQL ledger: `collect --postgres URL` inserts records into `llm_cost_records`.
//!
//! Owns the connection pool (r2d2 over the sync `postgres` client: the collector serves one
//! thread per connection, so a blocking client fits and brings no async runtime of our own), TLS
//! (rustls, Mozilla's roots, chosen by the URL's `sslmode`), the embedded migrations
//! (`migrations.rs`) and the batch insert. Does not own HTTP or de-duplication within the process
//! (`collect/`). The URL is never printed: it may carry a password.

mod migrations;
pub mod query;
mod row;

use std::sync::Arc;
use std::time::Duration;

use r2d2_postgres::r2d2::{Pool, PooledConnection};
use r2d2_postgres::PostgresConnectionManager;
use serde_json::{Map, Value};
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
const POOL_SIZE: u32 = 8;

type Manager = PostgresConnectionManager<MakeRustlsConnect>;

/// A pool of connections to the ledger database.
#[derive(Clone)]
pub struct Ledger {
    pool: Pool<Manager>,
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

impl Ledger {
    /// Connects to `url` (`postgres://user:pass@host:port/db?sslmode=require`, or the key=value
    /// form) and applies the pending migrations.
    pub fn connect(url: &str) -> Result<Ledger, String> {
        let ledger = Ledger::open(url)?;
        let mut conn = ledger.get()?;
        migrations::migrate(&mut conn)
            .map_err(|e| format!("ledger {}: migration failed: {e}", ledger.target))?;
        Ok(ledger)
    }

    /// A pool for `url` without touching the schema (`report --postgres`: a read-only user will do).
    pub fn open(url: &str) -> Result<Ledger, String> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| format!("--postgres: not a PostgreSQL URL: {e}"))?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT);
        }
        config.application_name("llm-cost");
        config.options(&format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
        let target = describe(&config);
        let manager = PostgresConnectionManager::new(config, tls()?);
        let pool = Pool::builder()
            .max_size(POOL_SIZE)
            .min_idle(Some(0))
            .connection_timeout(CHECKOUT)
            .build_unchecked(manager);
        Ok(Ledger { pool, target })
    }

    fn get(&self) -> Result<PooledConnection<Manager>, String> {
        self.pool
            .get()
            .map_err(|e| format!("ledger {} unavailable: {e}", self.target))
    }

    /// Inserts `records` in one transaction: all of them are committed, or none (the error).
    pub fn insert(&self, records: &[Map<String, Value>]) -> Result<Inserted, String> {
        if records.is_empty() {
            return Ok(Inserted {
                rows: 0,
                duplicates: 0,
            });
        }
        let mut conn = self.get()?;
        let fail = |e: postgres::Error| format!("ledger {}: insert failed: {e}", self.target);
        let mut tx = conn.transaction().map_err(fail)?;
        let statement = tx.prepare(INSERT).map_err(fail)?;
        let mut done = Inserted {
            rows: 0,
            duplicates: 0,
        };
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
                .map_err(fail)?;
            if n == 0 {
                done.duplicates += 1;
            } else {
                done.rows += n;
            }
        }
        tx.commit().map_err(fail)?;
        Ok(done)
    }
}

/// `host:port/dbname` of `config`.
fn describe(config: &postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
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
