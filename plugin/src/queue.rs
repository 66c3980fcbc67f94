//! The bounded queue of cost records waiting for the collector (pure, no host calls).
//!
//! Records are JSON lines; a batch is their NDJSON concatenation. When the queue is full the
//! oldest record is dropped and counted: a slow or dead collector costs memory up to the bound,
//! never the client's request. A failed batch is put back at the front (at-least-once delivery:
//! a collector that stored a batch but answered an error sees it again).
//!
//! The queue also counts what entered it (`take_pushed`) and what it dropped (`take_dropped`):
//! with the records the collector acknowledged and those still waiting or in flight, these make
//! the accounting identity of docs/RELIABILITY.md (`metered = delivered + dropped + queued`).

use std::collections::VecDeque;

/// Records waiting to be sent, oldest first.
#[derive(Debug)]
pub struct RecordQueue {
    records: VecDeque<String>,
    max_records: usize,
    dropped: u64,
    pushed: u64,
}

impl RecordQueue {
    /// An empty queue holding at most `max_records` (at least 1).
    pub fn new(max_records: usize) -> Self {
        RecordQueue {
            records: VecDeque::new(),
            max_records: max_records.max(1),
            dropped: 0,
            pushed: 0,
        }
    }

    /// Changes the bound (a new plugin configuration); drops the oldest past it.
    pub fn set_max_records(&mut self, max_records: usize) {
        self.max_records = max_records.max(1);
        self.trim();
    }

    /// Number of records waiting.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Adds a record at the back.
    pub fn push(&mut self, record_json: String) {
        self.pushed += 1;
        self.records.push_back(record_json);
        self.trim();
    }

    /// Takes up to `max` of the oldest records.
    pub fn take_batch(&mut self, max: usize) -> Vec<String> {
        let n = max.min(self.records.len());
        self.records.drain(..n).collect()
    }

    /// Puts a failed batch back at the front, in order.
    pub fn put_back(&mut self, batch: Vec<String>) {
        for record in batch.into_iter().rev() {
            self.records.push_front(record);
        }
        self.trim();
    }

    /// Records dropped since the last call (and resets the count).
    pub fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    /// Records pushed since the last call (and resets the count).
    pub fn take_pushed(&mut self) -> u64 {
        std::mem::take(&mut self.pushed)
    }

    /// Empties the queue (shutdown: nothing more can be sent); returns how many records it held.
    /// They are not counted as `dropped` here: the caller counts them under its own reason.
    pub fn clear(&mut self) -> u64 {
        let n = self.records.len() as u64;
        self.records.clear();
        n
    }

    fn trim(&mut self) {
        while self.records.len() > self.max_records {
            self.records.pop_front();
            self.dropped += 1;
        }
    }
}

/// The NDJSON body of a batch: one record per line, each ending in `\n`.
pub fn ndjson(batch: &[String]) -> Vec<u8> {
    let mut body = Vec::with_capacity(batch.iter().map(|r| r.len() + 1).sum());
    for record in batch {
        body.extend_from_slice(record.as_bytes());
        body.push(b'\n');
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(n: u32) -> String {
        format!("{{\"n\":{n}}}")
    }

    #[test]
    fn batches_take_the_oldest_records_first() {
        let mut q = RecordQueue::new(10);
        (0..5).for_each(|n| q.push(rec(n)));
        assert_eq!(q.take_batch(2), vec![rec(0), rec(1)]);
        assert_eq!(q.len(), 3);
        assert_eq!(q.take_batch(10).len(), 3);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts_them() {
        let mut q = RecordQueue::new(3);
        (0..5).for_each(|n| q.push(rec(n)));
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_dropped(), 0);
        assert_eq!(q.take_batch(10), vec![rec(2), rec(3), rec(4)]);
    }

    #[test]
    fn a_failed_batch_goes_back_in_front_within_the_bound() {
        let mut q = RecordQueue::new(3);
        (0..3).for_each(|n| q.push(rec(n)));
        let batch = q.take_batch(2);
        q.push(rec(3));
        q.push(rec(4));
        q.put_back(batch);
        // the put-back records are the oldest, so they are the ones dropped past the bound
        assert_eq!(q.take_dropped(), 2);
        assert_eq!(q.take_batch(10), vec![rec(2), rec(3), rec(4)]);
    }

    #[test]
    fn pushes_are_counted_once_and_put_backs_are_not_new_records() {
        let mut q = RecordQueue::new(3);
        (0..5).for_each(|n| q.push(rec(n)));
        let batch = q.take_batch(2);
        q.put_back(batch);
        assert_eq!(q.take_pushed(), 5);
        assert_eq!(q.take_pushed(), 0);
        // every record pushed is still here or was dropped: 3 + 2 == 5
        assert_eq!(q.len() as u64 + q.take_dropped(), 5);
        assert_eq!(q.clear(), 3);
        assert!(q.is_empty());
        assert_eq!(
            q.take_dropped(),
            0,
            "clear() leaves the reason to the caller"
        );
    }

    #[test]
    fn ndjson_ends_every_record_with_a_newline() {
        assert_eq!(ndjson(&[rec(1), rec(2)]), b"{\"n\":1}\n{\"n\":2}\n");
        assert!(ndjson(&[]).is_empty());
    }
}
