//! Where accepted lines go: the daily files (`store.rs`) or the PostgreSQL ledger (`ledger/`).
//!
//! Either way the request is answered 200 only once its lines are durable (fsynced, or committed),
//! and an error means none of the request's lines stayed, so its sender may retry it whole.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::day::Day;
use super::store::StoreHandle;
use crate::ledger::Ledger;

/// The collector's destination.
pub enum Sink {
    Files(StoreHandle),
    Ledger(Ledger),
}

impl Sink {
    /// Stores one request's lines (grouped by day, each ending with `\n`); returns how many the
    /// destination itself dropped as copies it already had (the ledger's unique call key).
    pub async fn append(&self, by_day: BTreeMap<Day, Vec<u8>>) -> Result<u64, String> {
        match self {
            Sink::Files(store) => {
                // The writer thread fsyncs; waiting for it blocks, so not on a runtime thread.
                let store = store.clone();
                tokio::task::spawn_blocking(move || store.append(by_day.into_iter().collect()))
                    .await
                    .unwrap_or_else(|_| Err("writer stopped".to_owned()))
                    .map(|()| 0)
            }
            Sink::Ledger(ledger) => {
                let records: Vec<Map<String, Value>> = by_day
                    .values()
                    .flat_map(|lines| lines.split(|&b| b == b'\n'))
                    .filter(|line| !line.is_empty())
                    // Every line here was parsed as an object by `Batch::parse`.
                    .filter_map(|line| serde_json::from_slice(line).ok())
                    .collect();
                ledger
                    .insert(&records)
                    .await
                    .map(|done| done.duplicates)
                    .inspect_err(|e| eprintln!("llm-cost collect: {e}"))
            }
        }
    }
}
