//! A bounded copy of a body that is not held: the chunks go on at once (`hold_headers: false`, or
//! a request that is only observed), and the filter keeps what it needs to meter them at the end.

use proxy_wasm::types::BufferType;

use crate::host;

/// The body's bytes so far, up to `max_bytes`.
#[derive(Debug)]
pub struct BodyCopy {
    bytes: Vec<u8>,
    max_bytes: usize,
}

impl BodyCopy {
    /// An empty copy that refuses to grow past `max_bytes`.
    pub fn new(max_bytes: usize) -> BodyCopy {
        BodyCopy {
            bytes: Vec::new(),
            max_bytes,
        }
    }

    /// Appends this callback's chunk (not paused, so `buffer` holds just that chunk); false when
    /// the body outgrew `max_bytes` (the copy is then useless and should be dropped).
    pub fn append(&mut self, buffer: BufferType, size: usize) -> bool {
        if self.bytes.len() + size > self.max_bytes {
            return false;
        }
        self.bytes.extend_from_slice(&host::body(buffer, size));
        true
    }

    /// The whole copy.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}
