// The one definition of the price keys, shared by `build.rs` (which writes the table) and
// `lib.rs` (which reads it) through `include!`, and re-exported by `llm_cost_core::pricing`.
// Plain comments only: this file is `include!`d, where inner doc comments are not allowed.

/// The price keys, in canonical order (sorted), as named by OpenRouter.
pub const PRICE_KEYS: [&str; 8] = [
    "completion",
    "image",
    "input_cache_read",
    "input_cache_write",
    "internal_reasoning",
    "prompt",
    "request",
    "web_search",
];

/// The letter that marks each price key in the generated table, in [`PRICE_KEYS`] order.
pub const KEY_LETTERS: [u8; 8] = [b'c', b'i', b'r', b'w', b'x', b'p', b'q', b's'];
