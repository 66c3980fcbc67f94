//! The accounting identity of the records meant for the collector (pure, no host calls).
//!
//! Every record the filter hands to the collector queue ends in exactly one of three places, so
//! at any quiet moment (between two timer ticks) the Envoy stats of one process satisfy
//!
//! ```text
//! llmcost_records_metered_total
//!   == llmcost_records_delivered_total            (a collector answered 2xx)
//!    + sum by reason (llmcost_records_dropped_total)  (queue_full, shutdown)
//!    + llmcost_records_queued                     (gauge: waiting or in flight)
//! ```
//!
//! The counters and the gauge are shared by every worker VM of the process (Envoy sums them by
//! name), and the gauge moves by deltas so that several VMs add up. All of them are applied in
//! the same timer callback, so they never disagree for longer than that callback.
//! This module owns the names and the gauge bookkeeping; the root context owns the queue and the
//! host calls. docs/RELIABILITY.md documents the identity and the alert on drops.

/// Records handed to the collector queue.
pub const METERED: &str = "llmcost.records_metered_total";
/// Records a collector acknowledged (2xx).
pub const DELIVERED: &str = "llmcost.records_delivered_total";
/// Prefix of the dropped-records counter; the name ends in `.reason=<DropReason>`.
pub const DROPPED: &str = "llmcost.records_dropped_total";
/// Gauge: records waiting in the queue or in a batch not yet answered.
pub const QUEUED: &str = "llmcost.records_queued";

/// Why a record never reached the collector (the `reason` label of the dropped counter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The queue was at `collector.max_queue_records`: the oldest record made room.
    QueueFull,
    /// The VM was shut down (Envoy drain, exit, configuration change) before the collector
    /// acknowledged the record, and the drain timeout passed or the last send failed.
    Shutdown,
}

impl DropReason {
    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::Shutdown => "shutdown",
        }
    }

    /// The counter name for this reason.
    pub fn counter(self) -> String {
        format!("{DROPPED}.reason={}", self.as_str())
    }
}

/// Gauge: bytes of linear memory of the filter's VMs (Wasm memory only grows, so a leak shows as
/// a rising line; the soak fits its slope).
pub const VM_MEMORY: &str = "llmcost.vm_memory_bytes";

/// What this VM has added to a gauge shared by every VM of the process so far (`records_queued`,
/// `vm_memory_bytes`): each VM moves the gauge by deltas, so Envoy's one stat is their sum.
#[derive(Debug, Default)]
pub struct GaugeShare {
    reported: u64,
}

impl GaugeShare {
    /// The increment that makes this VM's share of the gauge `value` (negative to lower it).
    pub fn delta_to(&mut self, value: u64) -> i64 {
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let delta = clamp(value).saturating_sub(clamp(self.reported));
        self.reported = value;
        delta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_become_a_reason_label() {
        assert_eq!(
            DropReason::QueueFull.counter(),
            "llmcost.records_dropped_total.reason=queue_full"
        );
        assert_eq!(
            DropReason::Shutdown.counter(),
            "llmcost.records_dropped_total.reason=shutdown"
        );
    }

    #[test]
    fn the_gauge_moves_by_deltas_that_sum_to_the_current_value() {
        let mut g = GaugeShare::default();
        let mut shared = 0i64; // what Envoy holds after our increments
        for queued in [0u64, 5, 5, 12, 3, 0, 7] {
            shared += g.delta_to(queued);
            assert_eq!(shared, queued as i64);
        }
        assert_eq!(g.delta_to(7), 0);
    }
}
