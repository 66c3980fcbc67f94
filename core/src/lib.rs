//! `llm-cost-core`: the pure metering core shared by every host.
//!
//! Turns "request + response bytes" into a priced, self-describing cost record: request rewrite
//! (`rewrite`), incremental SSE scan (`sse`, `stream`), usage extraction (`usage`), exact money
//! (`money`, `cost`), price tables and model names (`pricing`, `model_names`), the record and its
//! headers (`record`). `Call` strings them together for hosts; see `docs/CORE_API.md`.
//!
//! No I/O, no clock, no host calls, no `std` (the `std` feature adds only `Error` impls).
#![no_std]
#![deny(missing_docs)]

extern crate alloc;

pub mod attribution;
pub mod budget;
pub mod budget_check;
pub mod budget_sanity;
pub mod call;
pub mod config;
pub mod cost;
pub mod decimal;
pub mod error_code;
#[cfg(feature = "estimate")]
pub mod estimate;
pub mod form;
pub mod identity;
pub mod json_path;
pub mod model_names;
pub mod money;
pub mod overrides;
pub mod price_doc;
pub mod pricing;
pub mod provider;
pub mod record;
pub mod replay;
pub mod retry;
pub mod rewrite;
pub mod service_tier;
pub mod sort;
pub mod sse;
pub mod stream;
pub mod time;
pub mod usage;

/// docs/CORE_API.md, compiled and run as a doctest so the host contract cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../docs/CORE_API.md")]
pub struct CoreApiDoc;

pub use budget::{BudgetFacts, BudgetMark, Budgets, Charge, Decision, Ledger, Period, Rejection};
pub use budget_check::BudgetError;
pub use call::{Call, Outcome, RequestBodyPlan, RequestHead, ResponseHead, ResponsePlan};
pub use config::{ConfigError, ConfigWarning, HostSupport, MeterConfig};
pub use error_code::ErrorCode;
pub use money::Usd;
pub use pricing::PriceTable;
pub use provider::{Endpoint, Provider};
pub use record::{CostRecord, CostStatus};
pub use retry::Backoff;
pub use stream::Forward;
