//! Spend so far, per (dimension, value) and UTC day: the running totals behind `GET /v1/spend`.
//!
//! Totals are kept as records are stored (the ingest hands over each stored batch) and rebuilt
//! once at start from the daily files already in the directory, so a query never reads a file.
//! Every record adds its exact `cost_usd` (decimal, summed in 10⁻³⁰ USD units, never a float) to
//! each dimension it carries: `key_id`, `model` (the price-table id that priced it, else the model
//! asked for: what the filter's budget rules match), `provider`, and every `attributes` entry.
//! A record counts on the UTC day of its `ts` (else the day it arrived), as it is filed.
//!
//! A period is answered from the days it covers: `day` is today (UTC), `month` the days of this
//! month, `none` every day stored. Not here: HTTP (the server), what the limits are (`budgets status`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use llm_cost_core::Usd;
use serde_json::{json, Map, Value};

use super::day::Day;

/// Which days a query sums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Today (UTC).
    Day,
    /// This UTC calendar month.
    Month,
    /// Every day stored (a rule with `period: "none"`).
    None,
}

impl Period {
    /// Parses `day`, `month` or `none`.
    pub fn parse(text: &str) -> Option<Period> {
        match text {
            "day" => Some(Period::Day),
            "month" => Some(Period::Month),
            "none" => Some(Period::None),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Month => "month",
            Period::None => "none",
        }
    }

    /// Whether `day` is in the period that contains `today`.
    fn covers(self, day: &Day, today: &Day) -> bool {
        match self {
            Period::Day => day == today,
            // `YYYY-MM`: the first 7 bytes of `YYYY-MM-DD`.
            Period::Month => day.as_str().get(..7) == today.as_str().get(..7),
            Period::None => true,
        }
    }
}

/// (dimension, value) → spend.
type Sums = BTreeMap<(String, String), Usd>;

/// The totals of one day, and how many records made them.
#[derive(Default)]
struct DayTotals {
    sums: Sums,
    records: u64,
}

/// Running totals, shared by every connection.
#[derive(Default)]
pub struct Spend {
    days: Mutex<BTreeMap<Day, DayTotals>>,
}

/// What a record adds: its (dimension, value) pairs and its cost.
fn charges(record: &Map<String, Value>) -> Option<(Vec<(String, String)>, Usd)> {
    // A refused call (429) or an unpriced one counts zero: it has no cost to add, but still
    // counts as a record.
    let cost = match record.get("cost_usd").and_then(Value::as_str) {
        Some(text) => Usd::parse(text).ok()?,
        None => Usd::ZERO,
    };
    let text = |name: &str| record.get(name).and_then(Value::as_str);
    let mut pairs = Vec::new();
    if let Some(key_id) = text("key_id") {
        pairs.push(("key_id".to_owned(), key_id.to_owned()));
    }
    if let Some(model) = text("priced_as")
        .or_else(|| text("model_requested"))
        .or_else(|| text("model"))
    {
        pairs.push(("model".to_owned(), model.to_owned()));
    }
    if let Some(provider) = text("provider") {
        pairs.push(("provider".to_owned(), provider.to_owned()));
    }
    if let Some(attributes) = record.get("attributes").and_then(Value::as_object) {
        for (name, value) in attributes {
            if let Some(value) = value.as_str() {
                pairs.push((name.clone(), value.to_owned()));
            }
        }
    }
    Some((pairs, cost))
}

impl Spend {
    /// Adds every JSON-object line of `lines` (NDJSON filed under `day`); returns how many
    /// lines had a `cost_usd` that is not a USD amount (skipped; they are stored all the same).
    pub fn add_lines(&self, day: Day, lines: &[u8]) -> u64 {
        let mut parsed = Vec::new();
        let mut bad = 0;
        for line in lines.split(|&b| b == b'\n') {
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            let Ok(record) = serde_json::from_slice::<Map<String, Value>>(line) else {
                continue;
            };
            match charges(&record) {
                Some(c) => parsed.push(c),
                None => bad += 1,
            }
        }
        let mut days = self
            .days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let totals = days.entry(day).or_default();
        for (pairs, cost) in parsed {
            totals.records += 1;
            for pair in pairs {
                let sum = totals.sums.entry(pair).or_insert(Usd::ZERO);
                // Overflow needs ~3×10⁸ USD in 10⁻³⁰ units: saturate rather than wrap.
                *sum = sum.saturating_add(cost);
            }
        }
        bad
    }

    /// Rebuilds the totals from `DIR/llm-cost-YYYY-MM-DD.ndjson` (before the server starts).
    pub fn load(&self, dir: &Path) -> Result<(u64, u64), String> {
        let entries =
            std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let (mut files, mut bad) = (0, 0);
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(day) = name
                .to_str()
                .and_then(|n| n.strip_prefix("llm-cost-"))
                .and_then(|n| n.strip_suffix(".ndjson"))
                .and_then(Day::from_timestamp)
            else {
                continue;
            };
            let bytes = std::fs::read(entry.path())
                .map_err(|e| format!("cannot read {}: {e}", entry.path().display()))?;
            bad += self.add_lines(day, &bytes);
            files += 1;
        }
        Ok((files, bad))
    }

    /// The answer to `GET /v1/spend?period=…`: spend per (dimension, value) in the period that
    /// contains `today`, exact decimals, sorted by dimension then value.
    pub fn query(&self, period: Period, today: Day) -> Value {
        let days = self
            .days
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sums: Sums = BTreeMap::new();
        let mut records = 0;
        let covered = days.iter().filter(|(d, _)| period.covers(d, &today));
        for totals in covered.map(|(_, t)| t) {
            records += totals.records;
            for (pair, cost) in &totals.sums {
                let sum = sums.entry(pair.clone()).or_insert(Usd::ZERO);
                *sum = sum.saturating_add(*cost);
            }
        }
        drop(days);
        let spend: Vec<Value> = sums
            .into_iter()
            .map(|((dimension, value), cost)| {
                json!({"dimension": dimension, "value": value, "spent_usd": cost.to_decimal_string()})
            })
            .collect();
        json!({"period": period.as_str(), "today": today.as_str(), "records": records, "spend": spend})
    }
}

/// Whether `authorization` carries `Bearer TOKEN` (compared in constant time).
pub fn authorized(authorization: Option<&str>, token: &str) -> bool {
    let Some(given) = authorization.and_then(|a| a.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> Day {
        Day::from_timestamp(s).unwrap()
    }

    fn spent(answer: &Value, dimension: &str, value: &str) -> Option<String> {
        answer["spend"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["dimension"] == dimension && s["value"] == value)
            .map(|s| s["spent_usd"].as_str().unwrap().to_owned())
    }

    const A: &str = r#"{"ts":"2026-12-01T10:00:00Z","provider":"openai","model_requested":"gpt-4o-mini","priced_as":"openai/gpt-4o-mini","key_id":"3f2a9c1b7e44","cost_usd":"0.000000000000000000000000000001","attributes":{"team":"search"}}"#;
    const B: &str = r#"{"ts":"2026-12-02T10:00:00Z","provider":"openai","model_requested":"gpt-4o-mini","priced_as":"openai/gpt-4o-mini","key_id":"3f2a9c1b7e44","cost_usd":"0.1","attributes":{"team":"search"}}"#;

    #[test]
    fn sums_are_exact_per_dimension_and_period() {
        let spend = Spend::default();
        spend.add_lines(day("2026-12-01"), format!("{A}\n").as_bytes());
        spend.add_lines(day("2026-12-02"), format!("{B}\n{B}\n").as_bytes());
        // Another month, and a refused call without a cost: counted as records, add nothing.
        spend.add_lines(day("2026-11-30"), format!("{B}\n").as_bytes());
        spend.add_lines(
            day("2026-12-02"),
            br#"{"ts":"2026-12-02T11:00:00Z","provider":"openai","key_id":"3f2a9c1b7e44","status_code":429}"#,
        );
        let month = spend.query(Period::Month, day("2026-12-02"));
        assert_eq!(month["records"], 4);
        let exact = Some("0.200000000000000000000000000001".to_owned());
        assert_eq!(spent(&month, "key_id", "3f2a9c1b7e44"), exact);
        assert_eq!(spent(&month, "team", "search"), exact);
        assert_eq!(spent(&month, "model", "openai/gpt-4o-mini"), exact);
        assert_eq!(spent(&month, "provider", "openai"), exact);
        let today = spend.query(Period::Day, day("2026-12-02"));
        assert_eq!(spent(&today, "team", "search"), Some("0.2".to_owned()));
        let all = spend.query(Period::None, day("2026-12-02"));
        assert_eq!(
            spent(&all, "team", "search"),
            Some("0.300000000000000000000000000001".to_owned())
        );
        // A new month starts from zero.
        let next = spend.query(Period::Month, day("2027-01-01"));
        assert_eq!(next["spend"], json!([]));
    }

    #[test]
    fn a_record_whose_cost_is_not_an_amount_is_skipped_and_counted() {
        let spend = Spend::default();
        let bad = spend.add_lines(
            day("2026-12-02"),
            b"{\"key_id\":\"3f2a9c1b7e44\",\"cost_usd\":\"-1\"}\n{\"key_id\":\"3f2a9c1b7e44\",\"cost_usd\":\"1e3\"}\nnot json\n",
        );
        assert_eq!(bad, 2);
        assert_eq!(spend.query(Period::Day, day("2026-12-02"))["records"], 0);
    }

    #[test]
    fn totals_are_rebuilt_from_the_daily_files() {
        let dir = std::env::temp_dir().join(format!("llm-cost-spend-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("llm-cost-2026-12-01.ndjson"), format!("{A}\n")).unwrap();
        std::fs::write(dir.join("llm-cost-2026-12-02.ndjson"), format!("{B}\n")).unwrap();
        std::fs::write(dir.join("notes.txt"), "not a day file").unwrap();
        let spend = Spend::default();
        assert_eq!(spend.load(&dir), Ok((2, 0)));
        let month = spend.query(Period::Month, day("2026-12-02"));
        assert_eq!(
            spent(&month, "key_id", "3f2a9c1b7e44"),
            Some("0.100000000000000000000000000001".to_owned())
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_token_must_match_exactly() {
        assert!(authorized(Some("Bearer s3cret"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cre"), "s3cret"));
        assert!(!authorized(Some("Bearer s3cretX"), "s3cret"));
        assert!(!authorized(Some("s3cret"), "s3cret"));
        assert!(!authorized(None, "s3cret"));
    }
}
