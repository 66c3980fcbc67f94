//! The normalised billing row: one line of `llm-cost billing fetch`'s NDJSON, whatever the
//! provider, and what `llm-cost reconcile` reads back.
//!
//! Owns the row's fields, the exact conversion of provider amounts into [`Usd`] (JSON numbers
//! by their literal text, decimal strings as they are, Anthropic's cents), and UTC day
//! arithmetic. It does no I/O; the provider modules fill rows, `billing` writes them.

use llm_cost_core::decimal;
use llm_cost_core::time::{parse_rfc3339_millis, rfc3339_millis};
use llm_cost_core::Usd;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// One provider-reported usage or cost line for one UTC day. Field names follow the cost
/// record's (`prompt_tokens`, `cached_tokens`, `cost_usd`, `key_id`, `day` as in `report --by`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BillingRow {
    /// `openrouter`, `openai` or `anthropic` (the record's `provider`).
    pub provider: String,
    /// UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// The model as the provider names it; `null` for a charge without one (a fee, a tool).
    pub model: Option<String>,
    /// The provider's own key identifier: OpenRouter's key hash (SHA-256 hex of the key),
    /// OpenAI's `key_…` id, Anthropic's `apikey_…` id; `null` when not reported.
    pub api_key: Option<String>,
    /// Our `key_id` of that key (first 12 hex digits of its SHA-256) when the provider's
    /// identifier is that hash (OpenRouter); else `null`: the key cannot be joined.
    pub key_id: Option<String>,
    /// OpenAI project or Anthropic workspace (`null`: default or not reported).
    pub project: Option<String>,
    /// Service tier (`standard`, `batch`, `priority`, ...) when reported.
    pub service_tier: Option<String>,
    /// What the charge is for when it is not plain tokens of `model` (OpenAI `line_item`,
    /// Anthropic `description`), else `null`.
    pub line_item: Option<String>,
    /// Requests counted by the provider (`null`: this source does not count them).
    pub requests: Option<u64>,
    /// All input tokens, cached and cache-written included (as the record's `prompt_tokens`).
    pub prompt_tokens: Option<u64>,
    /// Output tokens, reasoning included.
    pub completion_tokens: Option<u64>,
    /// Input tokens read from the cache.
    pub cached_tokens: Option<u64>,
    /// Input tokens written to the cache.
    pub cache_write_tokens: Option<u64>,
    /// Reasoning tokens (OpenRouter).
    pub reasoning_tokens: Option<u64>,
    /// What the provider charged, exact decimal USD; `null` for a usage-only row.
    pub cost_usd: Option<String>,
    /// OpenRouter BYOK inference billed by the upstream provider, not by OpenRouter.
    pub byok_cost_usd: Option<String>,
    /// The endpoint the row came from, e.g. `GET /v1/organization/costs`.
    pub source: String,
}

/// Why a provider amount or day could not be taken exactly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AmountError {
    /// Not a JSON number or decimal string.
    NotANumber(String),
    /// Below zero: credits and refunds are not metered spend.
    Negative(String),
    /// More decimal places than [`Usd`] holds, or too large.
    Unrepresentable(String),
}

impl std::fmt::Display for AmountError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AmountError::NotANumber(t) => write!(f, "amount {t} is not a number"),
            AmountError::Negative(t) => write!(
                f,
                "amount {t} is negative (a credit or refund): not supported in a billing export"
            ),
            AmountError::Unrepresentable(t) => {
                write!(
                    f,
                    "amount {t} cannot be held exactly (too precise or too large)"
                )
            }
        }
    }
}

/// An amount in USD from its JSON text: a number literal (`0.015`, `1.2e-05`: its text, never
/// an `f64`) or a string holding a decimal (`"0.06"`).
pub fn usd_of_json(raw: &RawValue) -> Result<Usd, AmountError> {
    let text = raw.get().trim();
    let literal = if text.starts_with('"') {
        serde_json::from_str::<String>(text)
            .map_err(|_| AmountError::NotANumber(text.to_owned()))?
    } else {
        text.to_owned()
    };
    usd_of_decimal(&literal)
}

/// An amount in USD from decimal text (`"0.015"`, `"1.2e-05"`).
pub fn usd_of_decimal(text: &str) -> Result<Usd, AmountError> {
    let plain = decimal::plain(text).ok_or_else(|| AmountError::NotANumber(text.to_owned()))?;
    if let Some(magnitude) = plain.strip_prefix('-') {
        if magnitude.bytes().all(|b| b == b'0' || b == b'.') {
            return Ok(Usd::ZERO);
        }
        return Err(AmountError::Negative(text.to_owned()));
    }
    Usd::parse(&plain).map_err(|_| AmountError::Unrepresentable(text.to_owned()))
}

/// An amount given in cents as decimal text (Anthropic's cost report: `"123.45"` is $1.2345),
/// in USD, exactly.
pub fn usd_of_cents(text: &str) -> Result<Usd, AmountError> {
    let cents = usd_of_decimal(text)?;
    let units = cents.units();
    if units % 100 != 0 {
        return Err(AmountError::Unrepresentable(text.to_owned()));
    }
    Ok(Usd::from_units(units / 100))
}

/// A token or request count from JSON: a non-negative integer (`12`, `12.0` is refused: counts
/// are whole).
pub fn count_of_json(value: Option<&serde_json::Value>) -> Option<u64> {
    value.and_then(serde_json::Value::as_u64)
}

/// `YYYY-MM-DD` → Unix seconds of its midnight UTC; `None` unless a real date.
pub fn day_start(day: &str) -> Option<u64> {
    if day.len() != 10 {
        return None;
    }
    parse_rfc3339_millis(&format!("{day}T00:00:00Z")).map(|ms| ms / 1000)
}

/// The UTC day of a Unix time in seconds.
pub fn day_of_unix(secs: u64) -> String {
    rfc3339_millis(secs.saturating_mul(1000))[..10].to_owned()
}

/// The UTC day of an RFC 3339 timestamp (`2025-08-01T00:00:00Z` → `2025-08-01`).
pub fn day_of_rfc3339(text: &str) -> Option<String> {
    parse_rfc3339_millis(text).map(|ms| day_of_unix(ms / 1000))
}

/// The day after `day`.
pub fn next_day(day: &str) -> Option<String> {
    day_start(day).map(|s| day_of_unix(s + 86_400))
}

/// Checks a `--since` / `--until` value.
pub fn parse_day(text: &str) -> Result<String, String> {
    let text = text.trim();
    day_start(text)
        .map(|_| text.to_owned())
        .ok_or_else(|| format!("{text:?} is not a date (YYYY-MM-DD, UTC)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> Box<RawValue> {
        RawValue::from_string(text.to_owned()).unwrap()
    }

    #[test]
    fn json_numbers_are_taken_by_their_text_never_as_floats() {
        // 0.1 + 0.2 in f64 is 0.30000000000000004; the text is exact.
        assert_eq!(usd_of_json(&raw("0.1")).unwrap().to_decimal_string(), "0.1");
        assert_eq!(
            usd_of_json(&raw("0.8958740000000000"))
                .unwrap()
                .to_decimal_string(),
            "0.895874"
        );
        assert_eq!(
            usd_of_json(&raw("1.2e-05")).unwrap().to_decimal_string(),
            "0.000012"
        );
        assert_eq!(
            usd_of_json(&raw("\"0.06\"")).unwrap().to_decimal_string(),
            "0.06"
        );
        assert_eq!(usd_of_json(&raw("0")).unwrap(), Usd::ZERO);
        assert_eq!(usd_of_json(&raw("-0.0")).unwrap(), Usd::ZERO);
        assert!(matches!(
            usd_of_json(&raw("-1.5")),
            Err(AmountError::Negative(_))
        ));
        assert!(matches!(
            usd_of_json(&raw("true")),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            usd_of_json(&raw("\"abc\"")),
            Err(AmountError::NotANumber(_))
        ));
        assert!(matches!(
            usd_of_json(&raw("1e-40")),
            Err(AmountError::Unrepresentable(_))
        ));
    }

    #[test]
    fn anthropic_cents_become_dollars_exactly() {
        assert_eq!(
            usd_of_cents("123.45").unwrap().to_decimal_string(),
            "1.2345"
        );
        assert_eq!(
            usd_of_cents("0.0015").unwrap().to_decimal_string(),
            "0.000015"
        );
        assert_eq!(usd_of_cents("0").unwrap(), Usd::ZERO);
        assert!(usd_of_cents("-3").is_err());
    }

    #[test]
    fn days_and_unix_times() {
        assert_eq!(day_start("1970-01-02"), Some(86_400));
        assert_eq!(day_of_unix(1_730_419_200), "2024-11-01");
        assert_eq!(
            day_of_rfc3339("2025-08-01T00:00:00Z").as_deref(),
            Some("2025-08-01")
        );
        assert_eq!(next_day("2024-02-28").as_deref(), Some("2024-02-29"));
        assert_eq!(next_day("2024-12-31").as_deref(), Some("2025-01-01"));
        assert!(parse_day("2024-02-30").is_err());
        assert!(parse_day("2024-2-3").is_err());
        assert_eq!(parse_day(" 2024-02-03 ").unwrap(), "2024-02-03");
    }
}
