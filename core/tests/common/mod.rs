//! Shared setup for the core's integration tests.

use std::rc::Rc;

use llm_cost_core::{Call, MeterConfig, RequestHead, ResponseHead};

/// A call to OpenRouter's chat completions started at `start_ms`, its JSON response head in.
pub fn openrouter_json_call(config: &Rc<MeterConfig>, start_ms: u64) -> Call {
    let head = RequestHead {
        method: "POST",
        host: "openrouter.ai",
        path: "/api/v1/chat/completions",
        ..RequestHead::default()
    };
    let mut call = Call::new(config, head, start_ms);
    call.on_response_head(ResponseHead {
        status: 200,
        content_type: Some("application/json"),
        ..ResponseHead::default()
    });
    call
}
