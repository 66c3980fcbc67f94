//! The accounting identity of the Worker's record delivery (pure, host-tested): the log lines that
//! let anyone check that every record the Worker made ends up delivered, dropped (by reason) or
//! still queued.
//!
//! The Worker has no Prometheus and no counter shared by its isolates, so the counts are log
//! lines, one per event that moves records, each a single JSON object (Workers Logs indexes its
//! fields; `wrangler tail` and Logpush carry it as is):
//!
//! ```text
//! records made        one record line per call (the record itself, `console.log`)
//!   == delivered      the sink answered 2xx: {"llm_cost":"records_delivered","records":N}
//!                     per acknowledged queue batch (direct POSTs: the sink's own count)
//!    + dropped        {"llm_cost":"records_dropped","reason":R,"records":N,"request_ids":[..]}
//!    + queued         the Queue's backlog (dashboard, GraphQL) and POSTs still in `waitUntil`
//! ```
//!
//! Drop lines carry the dropped records' `request_id`s (never content or keys), so the records
//! themselves can be found in the logs, where each one was written when it was made. This module
//! owns the line formats and the reasons; `delivery.rs` decides when to write them.
//! docs/WORKER.md ("The accounting identity") says what to query.

use serde_json::{json, Value};

/// Why a record never reached `LOG_SINK_URL` (the `reason` of a drop line).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// The Queue gave up on it after the consumer's `max_retries` and moved it to the dead-letter
    /// queue, whose consumer (this Worker) counts and acknowledges it.
    DeadLetter,
    /// The direct POST (no Queue, or the Queue refused the record) failed every attempt.
    SinkFailed,
    /// The Queue refused the record and there is no `LOG_SINK_URL` to POST it to instead.
    QueueRefused,
    /// The queue consumer has no `LOG_SINK_URL` to deliver to: it acknowledges the batch.
    NoSink,
}

impl DropReason {
    /// The `reason` value.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::DeadLetter => "dead_letter",
            DropReason::SinkFailed => "sink_failed",
            DropReason::QueueRefused => "queue_refused",
            DropReason::NoSink => "no_sink",
        }
    }
}

/// The `llm_cost` value of the line for records the sink acknowledged.
pub const DELIVERED: &str = "records_delivered";
/// The `llm_cost` value of the line for records that will never reach the sink.
pub const DROPPED: &str = "records_dropped";

/// The `request_id` of a record line, if it has one (every record the Worker makes does).
pub fn request_id_of(record: &str) -> Option<String> {
    match serde_json::from_str::<Value>(record)
        .ok()?
        .get("request_id")?
    {
        Value::String(id) => Some(id.clone()),
        _ => None,
    }
}

/// The log line for `records` (record lines) dropped for `reason`: their count and their
/// `request_id`s (a record without one is counted, not named).
pub fn dropped_line<'a>(reason: DropReason, records: impl IntoIterator<Item = &'a str>) -> String {
    let mut count = 0u64;
    let mut ids = Vec::new();
    for record in records {
        count += 1;
        if let Some(id) = request_id_of(record) {
            ids.push(Value::String(id));
        }
    }
    json!({"llm_cost": DROPPED, "reason": reason.as_str(), "records": count, "request_ids": ids})
        .to_string()
}

/// The log line for `records` records a sink acknowledged in one POST.
pub fn delivered_line(records: usize) -> String {
    json!({"llm_cost": DELIVERED, "records": records}).to_string()
}

/// Whether a queue batch comes from the dead-letter queue: by convention its name ends in `-dlq`
/// (`llm-cost-records-dlq` in wrangler.toml). Any other queue is the records queue.
pub fn is_dead_letter_queue(name: &str) -> bool {
    name.ends_with("-dlq")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(line: &str) -> Value {
        serde_json::from_str(line).expect("one JSON object")
    }

    #[test]
    fn dropped_line_counts_and_names_records_by_request_id_only() {
        let records = [
            r#"{"request_id":"r-1","model":"m","cost_usd":"0.1","key_id":"abc"}"#,
            r#"{"request_id":"r-2","model":"m"}"#,
            "not a record",
        ];
        let line = dropped_line(DropReason::DeadLetter, records);
        assert_eq!(
            parsed(&line),
            json!({"llm_cost": "records_dropped", "reason": "dead_letter", "records": 3,
                   "request_ids": ["r-1", "r-2"]})
        );
        assert!(
            !line.contains("abc") && !line.contains("cost_usd"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn every_reason_has_its_label() {
        let labels: Vec<&str> = [
            DropReason::DeadLetter,
            DropReason::SinkFailed,
            DropReason::QueueRefused,
            DropReason::NoSink,
        ]
        .map(DropReason::as_str)
        .to_vec();
        assert_eq!(
            labels,
            ["dead_letter", "sink_failed", "queue_refused", "no_sink"]
        );
    }

    #[test]
    fn delivered_line_is_one_json_object() {
        assert_eq!(
            parsed(&delivered_line(5)),
            json!({"llm_cost": "records_delivered", "records": 5})
        );
    }

    #[test]
    fn dead_letter_queue_is_named_by_its_suffix() {
        assert!(is_dead_letter_queue("llm-cost-records-dlq"));
        assert!(!is_dead_letter_queue("llm-cost-records"));
    }
}
