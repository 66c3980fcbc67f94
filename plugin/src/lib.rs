//! proxy-wasm HTTP filter (placeholder until the Envoy adapter lands).
