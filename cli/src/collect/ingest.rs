//! One request body → the lines to store, grouped by day, and the lines refused.
//!
//! A line is stored when it is a JSON object (the cost record of the filter or the Worker, or any
//! other object); it is filed under the date of its `ts` string, else under the day it arrived.
//! Blank lines are ignored. Any other line (not UTF-8, not JSON, not an object) is refused and
//! counted; the rest of the body is still stored.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::day::Day;
use super::recent::{line_hash, Recent};

/// How many refused line numbers a batch remembers (for the answer and the log).
const LISTED: usize = 10;

/// A parsed request body.
#[derive(Debug, Default)]
pub struct Batch {
    /// Lines to append per day, each ending with `\n`.
    pub by_day: BTreeMap<Day, Vec<u8>>,
    /// Lines stored.
    pub stored: u64,
    /// Lines refused.
    pub rejected: u64,
    /// Lines dropped as retried copies of lines stored recently.
    pub duplicates: u64,
    /// Hashes of the stored lines (to forget them if the append fails).
    pub hashes: Vec<u64>,
    /// The first refused line numbers (1-based).
    pub rejected_at: Vec<u64>,
}

impl Batch {
    /// Splits `body` at `\n` (a trailing `\r` is dropped), keeps JSON objects not in `recent`
    /// (remembering them there), counts the rest.
    pub fn parse(body: &[u8], arrival: Day, recent: &mut Recent) -> Batch {
        let mut batch = Batch::default();
        for (i, raw) in body.split(|&b| b == b'\n').enumerate() {
            let line = raw.trim_ascii();
            if line.is_empty() {
                continue;
            }
            match serde_json::from_slice::<Map<String, Value>>(line) {
                Ok(record) => {
                    let hash = line_hash(line);
                    if !recent.insert(hash) {
                        batch.duplicates += 1;
                        continue;
                    }
                    batch.hashes.push(hash);
                    let day = record
                        .get("ts")
                        .and_then(Value::as_str)
                        .and_then(Day::from_timestamp)
                        .unwrap_or(arrival);
                    let out = batch.by_day.entry(day).or_default();
                    out.extend_from_slice(line);
                    out.push(b'\n');
                    batch.stored += 1;
                }
                Err(_) => {
                    batch.rejected += 1;
                    if batch.rejected_at.len() < LISTED {
                        batch.rejected_at.push(i as u64 + 1);
                    }
                }
            }
        }
        batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        Day::from_timestamp(s).unwrap()
    }

    #[test]
    fn groups_objects_by_the_date_of_ts() {
        let body = b"{\"ts\":\"2026-01-01T23:59:59.999Z\",\"n\":1}\r\n\n{\"ts\":\"2026-01-02T00:00:00.000Z\",\"n\":2}\n{\"n\":3}";
        let b = Batch::parse(body, day("2030-05-05"), &mut Recent::new(100));
        assert_eq!((b.stored, b.rejected), (3, 0));
        let files: Vec<(&str, &[u8])> = b
            .by_day
            .iter()
            .map(|(d, v)| (d.as_str(), v.as_slice()))
            .collect();
        assert_eq!(
            files,
            [
                (
                    "2026-01-01",
                    &b"{\"ts\":\"2026-01-01T23:59:59.999Z\",\"n\":1}\n"[..]
                ),
                (
                    "2026-01-02",
                    &b"{\"ts\":\"2026-01-02T00:00:00.000Z\",\"n\":2}\n"[..]
                ),
                ("2030-05-05", &b"{\"n\":3}\n"[..]),
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_a_json_object() {
        let body = b"{\"n\":1}\nnot json\n[1,2]\n\"text\"\n{\"n\":\n\xff\xfe\n{\"ts\":5}\n";
        let b = Batch::parse(body, day("2030-05-05"), &mut Recent::new(100));
        assert_eq!((b.stored, b.rejected), (2, 5));
        assert_eq!(b.rejected_at, [2, 3, 4, 5, 6]);
        assert_eq!(b.by_day[&day("2030-05-05")], b"{\"n\":1}\n{\"ts\":5}\n");
    }

    #[test]
    fn a_retried_line_is_stored_once() {
        let mut recent = Recent::new(100);
        let body = b"{\"ts\":\"2026-01-01T00:00:00.000Z\",\"n\":1}\n{\"n\":2}\n";
        let first = Batch::parse(body, day("2030-05-05"), &mut recent);
        assert_eq!((first.stored, first.duplicates), (2, 0));
        let again = Batch::parse(b"{\"n\":3}\n{\"n\":2}\n", day("2030-05-05"), &mut recent);
        assert_eq!((again.stored, again.duplicates), (1, 1));
        assert_eq!(again.by_day[&day("2030-05-05")], b"{\"n\":3}\n");
    }

    #[test]
    fn an_empty_body_stores_nothing() {
        let b = Batch::parse(b"\n \n", day("2030-05-05"), &mut Recent::new(100));
        assert_eq!((b.stored, b.rejected, b.by_day.len()), (0, 0, 0));
    }
}
