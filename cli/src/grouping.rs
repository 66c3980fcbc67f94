//! What `llm-cost report` groups and filters by: built-in record fields (`model`, `day`, `key_id`,
//! ...) and the record's `attributes` (`team`, `feature`, ... from the `attribution`
//! configuration), for `--by DIM` and `--where DIM=VALUE`.
//!
//! Owns the record fields a report reads and the value of each dimension for one record; the
//! sums, projections and output formats stay in `report`.

use std::collections::BTreeMap;

use llm_cost_core::attribution::RESERVED_NAMES;
use serde::Deserialize;

/// Dimensions read from the record's own fields.
pub const BUILT_IN: [&str; 8] = [
    "model", "day", "month", "key_id", "provider", "status", "host", "endpoint",
];

/// The dimensions a report shows when no `--by` is given.
pub const DEFAULT: [&str; 5] = ["model", "day", "key_id", "provider", "status"];

/// The value of a record without one for the dimension (no attribute, no `key_id`).
pub const NONE: &str = "none";

/// The record fields a report reads (everything else is ignored).
#[derive(Deserialize)]
pub struct Record {
    #[serde(default)]
    pub ts: Option<String>,
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub cost_status: Option<String>,
    #[serde(default)]
    pub prompt_tokens: Option<u64>,
    #[serde(default)]
    pub completion_tokens: Option<u64>,
    #[serde(default)]
    pub cost_usd: Option<String>,
    #[serde(default)]
    pub upstream_cost_usd: Option<String>,
    /// Attribution values; a value that is not a string counts as absent.
    #[serde(default)]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

impl Record {
    /// `YYYY-MM-DD` of `ts`, or `unknown`.
    pub fn day(&self) -> &str {
        self.ts
            .as_deref()
            .and_then(|t| t.get(..10))
            .unwrap_or("unknown")
    }

    /// The record's value for `dimension` (built-in or attribute).
    pub fn value(&self, dimension: &str) -> String {
        let text = |v: &Option<String>, absent: &str| v.clone().unwrap_or_else(|| absent.into());
        match dimension {
            "model" => text(&self.model, "unknown"),
            "day" => self.day().to_owned(),
            "month" => self.day().get(..7).unwrap_or("unknown").to_owned(),
            "key_id" => text(&self.key_id, NONE),
            "provider" => text(&self.provider, "unknown"),
            "status" => text(&self.cost_status, "unknown"),
            "host" => text(&self.host, "unknown"),
            "endpoint" => text(&self.endpoint, "unknown"),
            attribute => self
                .attributes
                .get(attribute)
                .and_then(|v| v.as_str())
                .filter(|v| !v.is_empty())
                .unwrap_or(NONE)
                .to_owned(),
        }
    }
}

/// Checks a `--by` / `--where` dimension name: a built-in, or an attribute name (not another
/// record field, which would silently group everything under `none`).
pub fn parse_dimension(name: &str) -> Result<String, String> {
    let name = name.trim();
    if BUILT_IN.contains(&name) {
        return Ok(name.to_owned());
    }
    let attribute_like = name.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if RESERVED_NAMES.contains(&name) || !attribute_like {
        return Err(format!(
            "{name:?} is not a dimension: use one of {} or an attribute name (`team`, `feature`, ...)",
            BUILT_IN.join(", ")
        ));
    }
    Ok(name.to_owned())
}

/// `--where DIM=VALUE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Condition {
    /// The dimension.
    pub dimension: String,
    /// The value it must have.
    pub value: String,
}

/// Parses `DIM=VALUE`.
pub fn parse_condition(text: &str) -> Result<Condition, String> {
    let (dimension, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not DIM=VALUE (e.g. team=search)"))?;
    Ok(Condition {
        dimension: parse_dimension(dimension)?,
        value: value.trim().to_owned(),
    })
}

/// Does `record` pass the `--where` conditions? Conditions on one dimension are alternatives
/// (`--where team=a --where team=b`: either); conditions on different dimensions all apply.
pub fn matches(record: &Record, conditions: &[Condition]) -> bool {
    let mut by_dimension: BTreeMap<&str, bool> = BTreeMap::new();
    for c in conditions {
        let hit = record.value(&c.dimension) == c.value;
        *by_dimension.entry(&c.dimension).or_insert(false) |= hit;
    }
    by_dimension.values().all(|&hit| hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(json: &str) -> Record {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn built_in_and_attribute_values() {
        let r = record(
            r#"{"ts":"2026-11-25T02:00:00.000Z","model":"m","attributes":{"team":"search","n":7}}"#,
        );
        assert_eq!(r.value("day"), "2026-11-25");
        assert_eq!(r.value("month"), "2026-11");
        assert_eq!(r.value("team"), "search");
        assert_eq!(r.value("feature"), NONE);
        assert_eq!(r.value("n"), NONE);
        assert_eq!(r.value("key_id"), NONE);
    }

    #[test]
    fn record_fields_that_are_not_dimensions_are_refused() {
        assert_eq!(parse_dimension("team").unwrap(), "team");
        assert_eq!(parse_dimension("key_id").unwrap(), "key_id");
        for bad in ["cost_usd", "Team", "", "a-b"] {
            assert!(parse_dimension(bad).is_err(), "{bad}");
        }
        assert!(parse_condition("team").is_err());
    }

    #[test]
    fn conditions_or_within_a_dimension_and_across_dimensions() {
        let r = record(r#"{"model":"m","attributes":{"team":"a"}}"#);
        let c = |t: &str| parse_condition(t).unwrap();
        assert!(matches(&r, &[]));
        assert!(matches(&r, &[c("team=a")]));
        assert!(matches(&r, &[c("team=b"), c("team=a")]));
        assert!(!matches(&r, &[c("team=a"), c("model=x")]));
        assert!(matches(&r, &[c("team=a"), c("model=m")]));
    }
}
