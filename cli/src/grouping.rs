//! What `llm-cost report` groups and filters by: built-in record fields (`model`, `day`, `key_id`,
//! ...) and the record's `attributes` (`team`, `feature`, ... from the `attribution`
//! configuration), for `--by DIM` and `--where DIM=VALUE`.
//!
//! Owns the record fields a report reads, the value of each dimension for one record and the
//! `--since` / `--until` window; the sums, projections and output formats stay in `report`.
//!
//! One model id everywhere: `model` is the price-table id that priced the call (`priced_as`), the
//! same id as the Prometheus `model` label, so a report and a dashboard agree model by model. A
//! call the table did not price keeps the name it had (the answering model, else the requested
//! one; Prometheus folds those into `other` to bound its label values). `answered_model` groups
//! by the record's `model`: the name the response gave, else the requested one (what
//! `X-LLM-Model` showed). A call the host refused (a
//! spent budget) has status `refused`.

use std::collections::BTreeMap;

use llm_cost_core::attribution::RESERVED_NAMES;
use llm_cost_core::time::parse_rfc3339_millis;
use llm_cost_core::ErrorCode;
use serde::Deserialize;

/// Dimensions read from the record's own fields.
pub const BUILT_IN: [&str; 9] = [
    "model",
    "answered_model",
    "day",
    "month",
    "key_id",
    "provider",
    "status",
    "host",
    "endpoint",
];

/// The `status` of a call the host refused instead of passing it on (a spent budget's `429`, an
/// unpriced model's `403` under `budgets.unpriced: "deny"`, an unknown spend's `503` under
/// `budgets.on_unknown_spend: "deny"`): not a `no_usage` call, which reached
/// the upstream.
pub const REFUSED: &str = "refused";

/// The `error` codes of refused calls.
pub(crate) const REFUSALS: [ErrorCode; 3] = [
    ErrorCode::BudgetExceeded,
    ErrorCode::UnpricedModelRefused,
    ErrorCode::BudgetSpendUnknown,
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
    pub model_requested: Option<String>,
    #[serde(default)]
    pub priced_as: Option<String>,
    #[serde(default)]
    pub key_id: Option<String>,
    #[serde(default)]
    pub cost_status: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
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

    /// `ts` in Unix milliseconds, if it is an RFC 3339 UTC time.
    pub fn unix_ms(&self) -> Option<u64> {
        self.ts.as_deref().and_then(parse_rfc3339_millis)
    }

    /// Did the host answer this call itself, refusing it (see [`REFUSED`])?
    pub fn refused(&self) -> bool {
        let error = self.error.as_deref();
        REFUSALS.iter().any(|code| error == Some(code.as_str()))
    }

    /// The record's value for `dimension` (built-in or attribute).
    pub fn value(&self, dimension: &str) -> String {
        let text = |v: &Option<String>, absent: &str| v.clone().unwrap_or_else(|| absent.into());
        match dimension {
            "model" => text(
                &self
                    .priced_as
                    .clone()
                    .or_else(|| self.model.clone())
                    .or_else(|| self.model_requested.clone()),
                "unknown",
            ),
            "answered_model" => text(&self.model, "unknown"),
            "day" => self.day().to_owned(),
            "month" => self.day().get(..7).unwrap_or("unknown").to_owned(),
            "key_id" => text(&self.key_id, NONE),
            "provider" => text(&self.provider, "unknown"),
            "status" if self.refused() => REFUSED.to_owned(),
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

/// `--since` / `--until`: the calls that started in `[since, until)`, in Unix milliseconds (UTC).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Window {
    /// First instant in the window (inclusive).
    pub since: Option<u64>,
    /// First instant after the window (exclusive).
    pub until: Option<u64>,
}

impl Window {
    /// Is there a bound at all?
    pub fn is_bounded(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// Does `record` fall in the window? Without a bound, every record does; with one, a record
    /// whose `ts` is missing or not an RFC 3339 UTC time cannot be placed and does not.
    pub fn contains(&self, record: &Record) -> bool {
        if !self.is_bounded() {
            return true;
        }
        let Some(t) = record.unix_ms() else {
            return false;
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }
}

/// Parses a `--since` / `--until` bound: an RFC 3339 UTC date (`2026-11-01`, its midnight) or
/// date-time (`2026-11-01T12:00:00Z`, `+00:00`, fractions allowed).
pub fn parse_bound(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let full = if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    };
    parse_rfc3339_millis(&full).ok_or_else(|| {
        format!(
            "{text:?} is not an RFC 3339 UTC date or time like 2026-11-01 or 2026-11-01T12:00:00Z"
        )
    })
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

    #[test]
    fn model_is_the_table_id_like_the_prometheus_label_and_answered_model_the_response_s() {
        let priced = record(
            r#"{"model":"anthropic/claude-4.6-sonnet-20260217","priced_as":"anthropic/claude-sonnet-4.6"}"#,
        );
        assert_eq!(priced.value("model"), "anthropic/claude-sonnet-4.6");
        assert_eq!(
            priced.value("answered_model"),
            "anthropic/claude-4.6-sonnet-20260217"
        );
        let unpriced = record(r#"{"model":"acme/private","priced_as":null}"#);
        assert_eq!(unpriced.value("model"), "acme/private");
        let unanswered = record(r#"{"model":null,"model_requested":"openai/gpt-4o"}"#);
        assert_eq!(unanswered.value("model"), "openai/gpt-4o");
        assert_eq!(unanswered.value("answered_model"), "unknown");
        assert_eq!(record("{}").value("model"), "unknown");
    }

    #[test]
    fn a_budget_refusal_has_status_refused_and_other_no_usage_calls_keep_theirs() {
        let refused = record(
            r#"{"cost_status":"no_usage","error":"budget_exceeded","model_requested":"openai/gpt-4o"}"#,
        );
        assert_eq!(refused.value("status"), REFUSED);
        assert_eq!(refused.value("model"), "openai/gpt-4o");
        let unpriced = record(r#"{"cost_status":"no_usage","error":"unpriced_model_refused"}"#);
        assert_eq!(unpriced.value("status"), REFUSED);
        let unreachable = record(r#"{"cost_status":"no_usage","error":"upstream_unreachable"}"#);
        assert_eq!(unreachable.value("status"), "no_usage");
        assert!(matches(
            &refused,
            &[parse_condition("status=refused").unwrap()]
        ));
    }

    #[test]
    fn since_is_inclusive_until_exclusive_dates_are_midnight_utc() {
        let at = |ts: &str| record(&format!(r#"{{"ts":"{ts}"}}"#));
        let november = Window {
            since: Some(parse_bound("2026-11-01").unwrap()),
            until: Some(parse_bound("2026-12-01").unwrap()),
        };
        assert!(november.contains(&at("2026-11-01T00:00:00.000Z")));
        assert!(november.contains(&at("2026-11-30T23:59:59.999Z")));
        assert!(!november.contains(&at("2026-12-01T00:00:00.000Z")));
        assert!(!november.contains(&at("2026-10-31T23:59:59.999Z")));
        assert!(!november.contains(&record("{}")), "no ts: cannot be placed");
        assert!(!november.contains(&at("yesterday")));
        assert!(Window::default().contains(&record("{}")));
        let noon = Window {
            since: Some(parse_bound("2026-11-01T12:00:00Z").unwrap()),
            until: None,
        };
        assert!(noon.contains(&at("2026-11-01T12:00:00.000Z")));
        assert!(!noon.contains(&at("2026-11-01T11:59:59.999Z")));
        assert_eq!(
            parse_bound("2026-11-01T12:00:00+00:00"),
            parse_bound("2026-11-01T12:00:00.000Z")
        );
        for bad in [
            "2026-11",
            "2026-02-30",
            "2026-11-01T12:00:00+01:00",
            "tomorrow",
            "",
        ] {
            assert!(parse_bound(bad).is_err(), "{bad}");
        }
    }
}
