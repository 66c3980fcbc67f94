//! Benchmark baseline: what a naive metering filter costs.
//!
//! Holds the request until its end, parses it into a `serde_json::Value`, re-serialises it and
//! puts it back (as a filter that injects a field would); holds the response until its end, parses
//! it into a `Value` and sets one header from it (`x-naive-total-tokens`). No pricing, no record,
//! no metrics. Used only by `tests/envoy/bench.py` as the "parse everything" yardstick; never
//! shipped. Needs `allow_on_headers_stop_iteration: true` in the plugin config (as the real
//! filter does), or Envoy never delivers the body after a paused header callback.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(NaiveRoot) });
}}

/// Creates one [`NaiveHttp`] per request.
struct NaiveRoot;

impl Context for NaiveRoot {}

impl RootContext for NaiveRoot {
    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(NaiveHttp))
    }
}

/// One request's context. Envoy buffers the bodies while we return `Pause`; nothing kept here.
struct NaiveHttp;

impl Context for NaiveHttp {}

impl HttpContext for NaiveHttp {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Hold the headers: content-length can still be set once the new body is known.
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = self.get_http_request_body(0, body_size) else {
            return Action::Continue;
        };
        // A body that is not JSON passes unchanged.
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) {
            if let Ok(out) = serde_json::to_vec(&value) {
                self.set_http_request_body(0, body_size, &out);
                // Envoy never fixes content-length after a body rewrite; the headers are still held.
                self.set_http_request_header("content-length", Some(&out.len().to_string()));
            }
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        // Hold the headers until the body is parsed: the header comes from it.
        if end_of_stream {
            Action::Continue
        } else {
            Action::Pause
        }
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !end_of_stream {
            return Action::Pause;
        }
        let Some(body) = self.get_http_response_body(0, body_size) else {
            return Action::Continue;
        };
        let tokens = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("usage")?.get("total_tokens")?.as_u64());
        let value = tokens.map_or_else(|| "unknown".to_string(), |t| t.to_string());
        self.set_http_response_header("x-naive-total-tokens", Some(&value));
        Action::Continue
    }
}
