//! Cloudflare Worker adapter for `llm-cost-core`.
//!
//! Proxies OpenRouter / OpenAI-compatible API calls to `UPSTREAM_BASE_URL` with the client's own
//! `Authorization`, and adds the cost headers, the stream-end cost comment and the cost record.
//! The runtime glue (`edge`, `budget_object`, `delivery`, `live_prices`: wasm32
//! only) is thin; [`settings`], [`ledger`], [`analytics`]
//! and [`accounting`] are pure and host-tested.

pub mod accounting;
pub mod analytics;
pub mod ledger;
pub mod prices;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod budget_object;
#[cfg(target_arch = "wasm32")]
mod delivery;
#[cfg(target_arch = "wasm32")]
mod edge;
#[cfg(target_arch = "wasm32")]
mod live_prices;
