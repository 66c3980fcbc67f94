//! The host calls the filter uses, wrapped so that none of them can abort the VM.
//!
//! The SDK's trait methods `unwrap()` every host status, and a panic in a proxy-wasm module kills
//! the VM (every later request on the worker loses metering). A metering filter must never break
//! traffic, so each wrapper here turns a refused call into `None`/no-op, logged at debug level.
//! Header values that are not UTF-8 read as absent (the SDK's `String` getters would panic).

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType};

/// Milliseconds since the Unix epoch by the host's clock (0 if the host refuses).
pub fn now_unix_ms() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// One header (or pseudo-header such as `:path`) as UTF-8 text.
pub fn header(map: MapType, name: &str) -> Option<String> {
    let bytes = hostcalls::get_map_value_bytes(map, name).ok()??;
    String::from_utf8(bytes).ok()
}

/// Replaces (or adds) a header.
pub fn set_header(map: MapType, name: &str, value: &str) {
    if let Err(status) = hostcalls::set_map_value(map, name, Some(value)) {
        log::debug!("llm-cost: set header {name} refused: {status:?}");
    }
}

/// Removes every header whose name `is_ours` says is ours (so nobody can forge our numbers).
pub fn remove_headers(map: MapType, is_ours: impl Fn(&str) -> bool) {
    let Ok(pairs) = hostcalls::get_map_bytes(map) else {
        return;
    };
    for (name, _) in pairs {
        if is_ours(&name) {
            if let Err(status) = hostcalls::set_map_value(map, &name, None) {
                log::debug!("llm-cost: remove header {name} refused: {status:?}");
            }
        }
    }
}

/// Adds a header or trailer (creating the trailer map at end of stream, where Envoy allows it).
pub fn add_header(map: MapType, name: &str, value: &str) {
    if let Err(status) = hostcalls::add_map_value(map, name, value) {
        log::debug!("llm-cost: add {name} refused: {status:?}");
    }
}

/// The first `size` bytes of a body buffer (empty if the host has none).
pub fn body(buffer: BufferType, size: usize) -> Vec<u8> {
    body_range(buffer, 0, size)
}

/// `size` bytes from `start` of a body buffer (empty if the host has none).
pub fn body_range(buffer: BufferType, start: usize, size: usize) -> Vec<u8> {
    if size == 0 {
        return Vec::new();
    }
    hostcalls::get_buffer(buffer, start, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Replaces `size` bytes at `start` of a body buffer with `value` (`size == 0` inserts).
pub fn set_body(buffer: BufferType, start: usize, size: usize, value: &[u8]) -> bool {
    match hostcalls::set_buffer(buffer, start, size, value) {
        Ok(()) => true,
        Err(status) => {
            log::debug!("llm-cost: body change refused: {status:?}");
            false
        }
    }
}

/// The plugin configuration bytes (empty when none is given).
pub fn plugin_configuration() -> Vec<u8> {
    hostcalls::get_buffer(BufferType::PluginConfiguration, 0, usize::MAX)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Sets filter state `wasm.<name>` (Envoy access logs read it with `%FILTER_STATE(wasm.<name>:PLAIN)%`).
pub fn set_filter_state(name: &str, value: &[u8]) {
    if let Err(status) = hostcalls::set_property(vec![name], Some(value)) {
        log::debug!("llm-cost: filter state {name} refused: {status:?}");
    }
}

/// Starts the root context's timer.
pub fn set_tick_period(period: Duration) {
    if let Err(status) = hostcalls::set_tick_period(period) {
        log::warn!("llm-cost: timer refused ({status:?}): records will not be flushed");
    }
}

/// Answers the request from the filter (the upstream never sees it).
pub fn send_response(status: u32, headers: &[(&str, &str)], body: &[u8]) {
    if let Err(status) = hostcalls::send_http_response(status, headers.to_vec(), Some(body)) {
        log::warn!("llm-cost: local response refused: {status:?}");
    }
}
