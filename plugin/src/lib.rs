//! `llm-cost-plugin`: the proxy-wasm HTTP filter (Envoy, Kong) around `llm-cost-core`.
//!
//! A thin shell. [`root`] parses the plugin configuration once per worker VM and owns what outlives
//! a request (the record [`queue`], the [`metrics`], the [`accounting`] of every record, the calls to the [`collector`], live prices in [`pricing_fetch`]); [`filter`] moves one
//! request's bytes and host facts into a core `Call` and applies its answers. [`host`] wraps the
//! few host calls we use so that a refused host call is ignored instead of aborting the VM.
//! No metering decision is made here: every "pause? forward what? which header?" is the core's.

pub mod accounting;
pub mod body_copy;
pub mod budget;
pub mod collector;
pub mod filter;
pub mod host;
pub mod labels;
pub mod metrics;
pub mod pricing_fetch;
pub mod queue;
pub mod root;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(root::MeterRoot::default())
    });
}}
