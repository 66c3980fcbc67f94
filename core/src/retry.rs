//! When to try the collector again after it failed: exponential backoff.
//!
//! A batch whose answer timed out may have been stored anyway, so every resend can make a copy
//! (sinks drop them: `llm-cost collect` does). Backing off keeps the copies and the load on a
//! struggling collector small: the first retry waits `base_ms`, each failed round doubles the
//! wait up to [`MAX_BACKOFF_MS`], and a success resets it. Several batches failing in the same
//! round count once.

/// The longest wait between rounds.
pub const MAX_BACKOFF_MS: u64 = 30_000;

/// Backoff state of one sender (the host supplies the clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    failed_rounds: u32,
    resume_at_ms: u64,
}

impl Backoff {
    /// May a batch be sent at `now_unix_ms`?
    pub fn ready(&self, now_unix_ms: u64) -> bool {
        now_unix_ms >= self.resume_at_ms
    }

    /// A send failed at `now_unix_ms`; `base_ms` is the first wait (e.g. the request timeout).
    pub fn failed(&mut self, now_unix_ms: u64, base_ms: u64) {
        if self.ready(now_unix_ms) {
            self.failed_rounds = self.failed_rounds.saturating_add(1);
        }
        let doublings = self.failed_rounds.saturating_sub(1).min(16);
        let wait = base_ms
            .max(1)
            .saturating_mul(1 << doublings)
            .min(MAX_BACKOFF_MS);
        self.resume_at_ms = now_unix_ms.saturating_add(wait);
    }

    /// A send succeeded: no more waiting.
    pub fn succeeded(&mut self) {
        *self = Backoff::default();
    }
}

/// The wait before redelivering a message that has been pending `age_ms` since it was first sent
/// (a queue that tells its consumer when a message was sent, not how often it was tried:
/// Cloudflare Queues). Waiting as long again as the message has already waited doubles the wait
/// each round, from `base_s` up to `max_s` (whole seconds, as queues take them).
pub fn redelivery_delay_s(age_ms: u64, base_s: u32, max_s: u32) -> u32 {
    let age_s = u32::try_from(age_ms / 1000).unwrap_or(u32::MAX);
    age_s.max(base_s).min(max_s.max(base_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redelivery_waits_double_with_the_age_of_the_message() {
        let mut age_ms = 0;
        let mut waits = alloc::vec::Vec::new();
        for _ in 0..8 {
            let wait = redelivery_delay_s(age_ms, 2, 60);
            waits.push(wait);
            age_ms += u64::from(wait) * 1000 + 150; // the consumer's own time
        }
        assert_eq!(waits, [2, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(redelivery_delay_s(u64::MAX, 1, 30), 30);
        assert_eq!(
            redelivery_delay_s(0, 5, 1),
            5,
            "a cap below the base is the base"
        );
    }

    #[test]
    fn waits_double_per_failed_round_up_to_the_cap_and_reset_on_success() {
        let mut b = Backoff::default();
        assert!(b.ready(0));
        let mut now = 1_000;
        let mut waits = alloc::vec::Vec::new();
        for _ in 0..10 {
            b.failed(now, 300);
            let resume = b.resume_at_ms;
            assert!(!b.ready(resume - 1) && b.ready(resume));
            waits.push(resume - now);
            now = resume;
        }
        assert_eq!(
            waits,
            [300, 600, 1200, 2400, 4800, 9600, 19_200, 30_000, 30_000, 30_000]
        );
        b.succeeded();
        assert!(b.ready(now));
        b.failed(now, 300);
        assert_eq!(b.resume_at_ms, now + 300);
    }

    #[test]
    fn failures_within_one_round_count_once() {
        let mut b = Backoff::default();
        b.failed(0, 300); // four batches in flight fail together
        b.failed(10, 300);
        b.failed(20, 300);
        assert_eq!(b.resume_at_ms, 320);
        b.failed(320, 300); // the next round fails too
        assert_eq!(b.resume_at_ms, 920);
    }
}
