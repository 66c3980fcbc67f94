//! `llm-cost collect`: a minimal collector for the filter's and the Worker's NDJSON cost records.
//!
//! Listens for `POST`s of NDJSON, appends every JSON-object line to `DIR/llm-cost-YYYY-MM-DD.ndjson`
//! (the UTC date of the record's `ts`, else of its arrival), and answers 200 only once the lines
//! are written and fsynced. SIGINT/SIGTERM: stop accepting, finish the requests under way, exit 0.
//! HTTP is hyper 1 on a tokio runtime: `server.rs` the connections and the shutdown, `routes.rs`
//! the answers. Details and the reasons behind each choice: `docs/COLLECT.md`.

pub(crate) mod day;
mod ingest;
mod lock;
mod recent;
mod routes;
mod server;
mod signals;
mod sink;
mod spend;
mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;

use routes::{Shared, Stats};
use sink::Sink;
use store::Store;

/// Arguments of `llm-cost collect`.
#[derive(Args)]
pub struct CollectArgs {
    /// Address to listen on, e.g. `127.0.0.1:9000` (`:0` picks a free port; the bound address is
    /// printed on the first line of standard output).
    #[arg(long, value_name = "ADDR")]
    listen: String,
    /// Directory of the daily files (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        required_unless_present = "postgres",
        conflicts_with = "postgres"
    )]
    out: Option<PathBuf>,
    /// Insert the records into PostgreSQL instead (`postgres://USER:PASS@HOST:PORT/DB?sslmode=require`;
    /// the schema is created or migrated at start). See docs/COLLECT.md, "The PostgreSQL ledger".
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
    /// Path that accepts records (the filter's `collector.path`).
    #[arg(long, default_value = "/ingest")]
    path: String,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, default_value_t = 8 << 20)]
    max_body_bytes: u64,
    /// Most connections served at once; more get 503.
    #[arg(long, default_value_t = 256)]
    max_connections: usize,
    /// Seconds that requests under way at SIGINT/SIGTERM get to finish; later ones are dropped
    /// unanswered (their senders retry).
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    shutdown_grace: u64,
    /// Bearer token `GET /v1/spend` requires (401 without it); default: the environment variable
    /// `LLM_COST_SPEND_TOKEN`; neither: spend queries are open (keep the collector on a private
    /// network then).
    #[arg(long, value_name = "TOKEN")]
    spend_token: Option<String>,
}

/// Runs the collector until SIGINT or SIGTERM; the error is a message for the user.
pub fn run(args: &CollectArgs) -> Result<(), String> {
    if !args.path.starts_with('/') {
        return Err(format!("--path must start with '/': {:?}", args.path));
    }
    // The files' directory lock, held until exit; the ledger needs none (the database arbitrates).
    let _lock = match &args.out {
        Some(out) => {
            std::fs::create_dir_all(out)
                .map_err(|e| format!("cannot create {}: {e}", out.display()))?;
            Some(lock::lock(out)?)
        }
        None => None,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("collect")
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let (outcome, store) = runtime.block_on(serve(args));
    // Tasks still open (requests past the grace) are dropped unanswered; their senders retry.
    runtime.shutdown_timeout(Duration::from_secs(1));
    let outcome = outcome?;
    if let Some(store) = store {
        store.finish();
    }
    if let Some(stats) = outcome {
        eprintln!("{stats}");
    }
    Ok(())
}

/// Binds, serves until the first signal, shuts down; the exit line (`None`: some requests were
/// still incomplete after the grace, already said) and the files' writer to finish.
async fn serve(args: &CollectArgs) -> (Result<Option<String>, String>, Option<Store>) {
    let mut store = None;
    let outcome = serve_with(args, &mut store).await;
    (outcome, store)
}

async fn serve_with(
    args: &CollectArgs,
    store: &mut Option<Store>,
) -> Result<Option<String>, String> {
    let termination = signals::Termination::take()?;
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot read the bound address: {e}"))?;

    let (sink, target) = match (&args.postgres, &args.out) {
        (Some(url), _) => {
            let ledger = crate::ledger::Ledger::start(url).await?;
            let target = format!("PostgreSQL {} (table llm_cost_records)", ledger.target);
            (Sink::Ledger(ledger), target)
        }
        (None, Some(out)) => {
            let started = Store::start(out)?;
            let handle = started.handle();
            *store = Some(started);
            let target = format!("{}/llm-cost-YYYY-MM-DD.ndjson", out.display());
            (Sink::Files(handle), target)
        }
        (None, None) => return Err("one of --out DIR or --postgres URL is needed".to_owned()),
    };
    // Spend totals from the files already stored, before any new record arrives (the daily
    // files only: with --postgres, `GET /v1/spend` answers 501).
    let spend = match &args.out {
        Some(out) if args.postgres.is_none() => {
            let spend = spend::Spend::default();
            let (files, bad) = spend.load(out)?;
            if bad > 0 {
                eprintln!("llm-cost collect: {bad} stored record(s) with a cost_usd that is not a USD amount left out of the spend totals");
            }
            eprintln!("llm-cost collect: spend totals from {files} stored file(s)");
            Some(spend)
        }
        _ => None,
    };
    let spend_token = args
        .spend_token
        .clone()
        .or_else(|| std::env::var("LLM_COST_SPEND_TOKEN").ok())
        .filter(|t| !t.is_empty());
    let shared = Arc::new(Shared {
        path: args.path.clone(),
        max_body_bytes: args.max_body_bytes,
        store: sink,
        recent: std::sync::Mutex::new(recent::Recent::new(recent::DEFAULT_CAPACITY)),
        stopping: AtomicBool::new(false),
        stats: Stats::default(),
        spend,
        spend_token,
    });
    println!("listening on http://{bound}{}", args.path);
    eprintln!(
        "llm-cost collect: writing to {target} (GET /v1/spend {})",
        if shared.spend_token.is_some() {
            "needs the bearer token"
        } else {
            "is open"
        }
    );
    let grace = Duration::from_secs(args.shutdown_grace);
    let stuck = server::serve(
        listener,
        Arc::clone(&shared),
        args.max_connections.max(1),
        grace,
        termination.first(),
    )
    .await;
    if stuck > 0 {
        // Their requests were not answered (the senders retry them); everything answered 200 is
        // already durable, so exiting now loses nothing that was accepted.
        eprintln!(
            "llm-cost collect: {stuck} request(s) still incomplete after {}s; exiting without them",
            args.shutdown_grace
        );
        std::process::exit(0);
    }
    let stats = &shared.stats;
    Ok(Some(format!(
        "llm-cost collect: stopped after {} request(s): {} line(s) stored, {} malformed skipped, {} retried copies dropped",
        stats.requests.load(Ordering::Relaxed),
        stats.stored.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.duplicates.load(Ordering::Relaxed),
    )))
}
