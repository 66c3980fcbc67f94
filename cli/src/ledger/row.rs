//! One cost record (a JSON object) → the typed columns of `llm_cost_records`.
//!
//! Every column is taken only when the record's value has the documented type and fits the column
//! (a decimal string for `NUMERIC`, an RFC 3339 UTC timestamp for `TIMESTAMPTZ`, an integer within
//! `BIGINT`); anything else becomes NULL there, and the whole object is always kept in `record`,
//! so a line the collector accepted is never refused by the database (a refused batch would be
//! retried by the filter forever). NUL characters, which PostgreSQL text and JSONB cannot hold,
//! are replaced with U+FFFD.

use serde_json::{Map, Value};

/// The typed columns of one record, in the order of [`COLUMNS`].
#[derive(Debug, Default, PartialEq)]
pub struct Row {
    pub ts: Option<String>,
    pub request_id: Option<String>,
    pub host: Option<String>,
    pub provider: Option<String>,
    pub endpoint: Option<String>,
    pub model_requested: Option<String>,
    pub model: Option<String>,
    pub stream: Option<bool>,
    pub status_code: Option<i32>,
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cost_usd: Option<String>,
    pub cost_micros: Option<i64>,
    pub upstream_cost_usd: Option<String>,
    pub cost_status: Option<String>,
    pub error: Option<String>,
    pub pricing_version: Option<String>,
    pub breakdown: Option<Value>,
    pub key_id: Option<String>,
    pub priced_as: Option<String>,
    pub upstream_inference_cost_usd: Option<String>,
    pub is_byok: Option<bool>,
    pub duration_ms: Option<i64>,
    pub oversize_events: Option<i64>,
    pub adjustment_percent: Option<String>,
    pub attributes: Option<Value>,
    /// The whole record.
    pub record: Value,
}

/// The columns an insert names, in order; `$n::text::numeric` / `::timestamptz` where the value
/// travels as checked text.
pub const INSERT: &str = "INSERT INTO llm_cost_records (ts, request_id, host, provider, endpoint, \
model_requested, model, stream, status_code, prompt_tokens, completion_tokens, cached_tokens, \
cache_write_tokens, reasoning_tokens, cost_usd, cost_micros, upstream_cost_usd, cost_status, error, \
pricing_version, breakdown, key_id, priced_as, upstream_inference_cost_usd, is_byok, duration_ms, \
oversize_events, adjustment_percent, attributes, record) VALUES ($1::text::timestamptz, $2, $3, $4, \
$5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15::text::numeric, $16, $17::text::numeric, $18, $19, \
$20, $21, $22, $23, $24::text::numeric, $25, $26, $27, $28::text::numeric, $29, $30) \
ON CONFLICT (request_id, ts) DO NOTHING";

/// Longest decimal string taken into a `NUMERIC` column (digits and sign and point).
const MAX_DECIMAL: usize = 64;

impl Row {
    /// The columns of `record`.
    pub fn from_record(record: &Map<String, Value>) -> Row {
        let text = |k: &str| record.get(k).and_then(Value::as_str).map(clean);
        let int = |k: &str| record.get(k).and_then(Value::as_i64);
        let boolean = |k: &str| record.get(k).and_then(Value::as_bool);
        let decimal = |k: &str| {
            record
                .get(k)
                .and_then(Value::as_str)
                .filter(|s| is_decimal(s))
                .map(str::to_owned)
        };
        let object = |k: &str| {
            record
                .get(k)
                .filter(|v| v.is_object())
                .map(|v| sanitize(v.clone()))
        };
        Row {
            ts: record
                .get("ts")
                .and_then(Value::as_str)
                .filter(|s| is_utc_timestamp(s))
                .map(str::to_owned),
            request_id: text("request_id"),
            host: text("host"),
            provider: text("provider"),
            endpoint: text("endpoint"),
            model_requested: text("model_requested"),
            model: text("model"),
            stream: boolean("stream"),
            status_code: int("status_code").and_then(|n| i32::try_from(n).ok()),
            prompt_tokens: int("prompt_tokens"),
            completion_tokens: int("completion_tokens"),
            cached_tokens: int("cached_tokens"),
            cache_write_tokens: int("cache_write_tokens"),
            reasoning_tokens: int("reasoning_tokens"),
            cost_usd: decimal("cost_usd"),
            cost_micros: int("cost_micros"),
            upstream_cost_usd: decimal("upstream_cost_usd"),
            cost_status: text("cost_status"),
            error: text("error"),
            pricing_version: text("pricing_version"),
            breakdown: object("breakdown"),
            key_id: text("key_id"),
            priced_as: text("priced_as"),
            upstream_inference_cost_usd: decimal("upstream_inference_cost_usd"),
            is_byok: boolean("is_byok"),
            duration_ms: int("duration_ms"),
            oversize_events: int("oversize_events"),
            adjustment_percent: decimal("adjustment_percent"),
            attributes: object("attributes"),
            record: sanitize(Value::Object(record.clone())),
        }
    }
}

/// Text without NUL (which PostgreSQL cannot store).
fn clean(s: &str) -> String {
    s.replace('\0', "\u{fffd}")
}

/// `value` with NUL replaced in every string and key.
fn sanitize(value: Value) -> Value {
    match value {
        Value::String(s) if s.contains('\0') => Value::String(clean(&s)),
        Value::Array(items) => Value::Array(items.into_iter().map(sanitize).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (if k.contains('\0') { clean(&k) } else { k }, sanitize(v)))
                .collect(),
        ),
        other => other,
    }
}

/// `[+-]digits[.digits]`, bounded in length: what `NUMERIC` takes exactly.
fn is_decimal(s: &str) -> bool {
    let body = s.strip_prefix(['-', '+']).unwrap_or(s);
    let (int, frac) = match body.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (body, None),
    };
    s.len() <= MAX_DECIMAL
        && !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.is_none_or(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()))
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]Z` with a real date and time (the records' `ts`).
fn is_utc_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20
        || crate::collect::day::Day::from_timestamp(s).is_none()
        || !matches!(b[10], b'T' | b't')
    {
        return false;
    }
    let two = |i: usize, max: u8| {
        let (h, l) = (b[i], b[i + 1]);
        h.is_ascii_digit() && l.is_ascii_digit() && (h - b'0') * 10 + (l - b'0') <= max
    };
    let Some(rest) = s.get(19..) else {
        return false;
    };
    let frac_ok = match rest.strip_suffix(['Z', 'z']) {
        Some("") => true,
        Some(f) => f
            .strip_prefix('.')
            .is_some_and(|d| (1..=9).contains(&d.len()) && d.bytes().all(|c| c.is_ascii_digit())),
        None => false,
    };
    two(11, 23) && b[13] == b':' && two(14, 59) && b[16] == b':' && two(17, 59) && frac_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        Row::from_record(v.as_object().unwrap())
    }

    #[test]
    fn a_record_fills_its_typed_columns() {
        let r = row(json!({
            "ts": "2026-08-19T10:00:00.123Z", "request_id": "r1", "model": "openai/gpt-4o",
            "stream": true, "status_code": 200, "prompt_tokens": 12, "cost_usd": "0.000123",
            "cost_micros": 123, "breakdown": {"prompt": "0.0001"}, "attributes": {"team": "a"},
            "is_byok": null, "adjustment_percent": "-12.5"
        }));
        assert_eq!(r.ts.as_deref(), Some("2026-08-19T10:00:00.123Z"));
        assert_eq!(r.request_id.as_deref(), Some("r1"));
        assert_eq!(
            (r.stream, r.status_code, r.prompt_tokens),
            (Some(true), Some(200), Some(12))
        );
        assert_eq!(r.cost_usd.as_deref(), Some("0.000123"));
        assert_eq!(r.adjustment_percent.as_deref(), Some("-12.5"));
        assert_eq!(r.attributes, Some(json!({"team": "a"})));
        assert_eq!(r.is_byok, None);
        assert_eq!(r.record["model"], "openai/gpt-4o");
    }

    #[test]
    fn values_of_the_wrong_type_or_range_become_null_but_stay_in_record() {
        let r = row(json!({
            "ts": "2026-02-30T00:00:00Z", "cost_usd": "1e5", "prompt_tokens": "12",
            "completion_tokens": 18446744073709551615u64, "status_code": 99999999999i64,
            "attributes": [1], "upstream_cost_usd": "0.", "model": 5
        }));
        assert_eq!(r.ts, None);
        assert_eq!(r.cost_usd, None);
        assert_eq!(r.upstream_cost_usd, None);
        assert_eq!(
            (r.prompt_tokens, r.completion_tokens, r.status_code),
            (None, None, None)
        );
        assert_eq!((r.attributes, r.model), (None, None));
        assert_eq!(r.record["cost_usd"], "1e5");
    }

    #[test]
    fn nul_characters_are_replaced() {
        let r = row(json!({"model": "a\u{0}b", "attributes": {"k\u{0}": "v\u{0}"}}));
        assert_eq!(r.model.as_deref(), Some("a\u{fffd}b"));
        assert_eq!(r.attributes, Some(json!({"k\u{fffd}": "v\u{fffd}"})));
        assert_eq!(r.record["model"], "a\u{fffd}b");
    }

    #[test]
    fn timestamps_are_checked() {
        for ok in [
            "2026-08-19T23:59:59Z",
            "2026-08-19T00:00:00.000Z",
            "2024-02-29T12:30:45.123456789Z",
        ] {
            assert!(is_utc_timestamp(ok), "{ok}");
        }
        for bad in [
            "2026-08-19",
            "2026-08-19T24:00:00Z",
            "2026-08-19T10:60:00Z",
            "2026-08-19T10:00:00",
            "2026-08-19T10:00:00+02:00",
            "2026-08-19T10:00:00.Z",
            "2026-08-19 10:00:00Z",
        ] {
            assert!(!is_utc_timestamp(bad), "{bad}");
        }
    }

    #[test]
    fn decimals_are_checked() {
        for ok in ["0", "0.000123", "-1.5", "+10", "123"] {
            assert!(is_decimal(ok), "{ok}");
        }
        for bad in ["", ".5", "1.", "1e5", "NaN", "Infinity", "1,5", " 1", "--1"] {
            assert!(!is_decimal(bad), "{bad}");
        }
        assert!(!is_decimal(&"9".repeat(65)));
    }
}
