//! Lines stored recently, to drop retried copies.
//!
//! The filter resends a batch whose answer did not arrive in time (`collector.timeout_ms`), even if
//! the collector had stored it: at-least-once delivery. A cost record line carries its timestamp
//! (ms), request id, duration and counts, so two different calls never give the same bytes, and a
//! line identical to one stored recently is a retry: it is dropped, not stored twice. The window is
//! the last `capacity` stored lines of this process (8 bytes each); a retry arriving after a
//! collector restart is not recognised.

use std::collections::{HashSet, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

/// Lines remembered by default (800 KB of hashes).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Hashes of the last stored lines, oldest first out.
#[derive(Debug)]
pub struct Recent {
    seen: HashSet<u64>,
    order: VecDeque<u64>,
    capacity: usize,
}

/// The identity of a line (64-bit SipHash with fixed keys: same line, same value).
pub fn line_hash(line: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    line.hash(&mut hasher);
    hasher.finish()
}

impl Recent {
    /// Remembers up to `capacity` lines.
    pub fn new(capacity: usize) -> Recent {
        Recent {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Remembers `hash`; false when it is already remembered (a retried copy).
    pub fn insert(&mut self, hash: u64) -> bool {
        if !self.seen.insert(hash) {
            return false;
        }
        self.order.push_back(hash);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }

    /// Forgets hashes whose lines were not stored after all (the append failed; the sender will
    /// retry them, and they must be stored then).
    pub fn forget(&mut self, hashes: &[u64]) {
        for hash in hashes {
            if self.seen.remove(hash) {
                if let Some(at) = self.order.iter().rposition(|h| h == hash) {
                    self.order.remove(at);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_line_is_refused_until_it_leaves_the_window() {
        let mut recent = Recent::new(2);
        let (a, b, c) = (line_hash(b"a"), line_hash(b"b"), line_hash(b"c"));
        assert!(recent.insert(a));
        assert!(!recent.insert(a));
        assert!(recent.insert(b));
        assert!(recent.insert(c)); // `a` leaves the window
        assert!(recent.insert(a));
        assert!(!recent.insert(c));
    }

    #[test]
    fn forgotten_lines_are_stored_when_they_come_again() {
        let mut recent = Recent::new(10);
        let a = line_hash(b"{\"n\":1}");
        assert!(recent.insert(a));
        recent.forget(&[a]);
        assert!(recent.insert(a));
        assert_eq!(line_hash(b"x"), line_hash(b"x"));
        assert_ne!(line_hash(b"x"), line_hash(b"y"));
    }
}
