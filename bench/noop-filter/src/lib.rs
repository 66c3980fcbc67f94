//! Benchmark baseline: the cheapest proxy-wasm HTTP filter there is.
//!
//! A root context and an HTTP context per request, no callback overridden: every hook takes the
//! SDK's default (`Continue`). What it costs over no filter at all is the floor of running *any*
//! wasm filter in Envoy's V8 (context creation, the host's callback dispatch). Used only by
//! `tests/envoy/bench.py`; never shipped.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NoopRoot) });
}}

/// Creates one [`NoopHttp`] per request.
struct NoopRoot;

impl Context for NoopRoot {}

impl RootContext for NoopRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NoopHttp))
    }
}

/// One request's context: holds nothing, overrides nothing.
struct NoopHttp;

impl Context for NoopHttp {}

impl HttpContext for NoopHttp {}
