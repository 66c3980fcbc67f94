//! Per-key spend limits at the edge: the decisions, not the storage.
//!
//! A host keeps one [`Ledger`] per `key_id` in storage shared by its workers (Envoy shared data)
//! and changes it only through [`Ledger::admit`] and [`Ledger::settle`], with a compare-and-swap
//! retry. Reserve-then-settle: a call is admitted while `spent + reserved < limit` and reserves
//! `reserve_usd` until it ends; then the reservation is swapped for the call's real cost. So
//! concurrent calls cannot overshoot a limit by more than one call's cost, as long as a call costs
//! at most `reserve_usd`.

use alloc::{borrow::ToOwned, collections::BTreeMap, format, string::String};

use serde::Deserialize;

use crate::config::ConfigError;
use crate::money::Usd;
use crate::time::{civil_from_days, days_from_civil};

const DAY_MS: u64 = 86_400_000;

/// When spend counts start again from zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// Never (until the host restarts: the ledger lives in host memory).
    #[default]
    None,
    /// Every UTC day.
    Day,
    /// Every UTC calendar month.
    Month,
}

impl Period {
    /// The period's name in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::None => "none",
            Period::Day => "day",
            Period::Month => "month",
        }
    }

    /// A number that changes when a new period starts.
    fn index(self, now_unix_ms: u64) -> u32 {
        let days = now_unix_ms / DAY_MS;
        match self {
            Period::None => 0,
            Period::Day => u32::try_from(days).unwrap_or(u32::MAX),
            Period::Month => {
                let (y, m, _) = civil_from_days(days as i64);
                u32::try_from(y * 12 + i64::from(m) - 1).unwrap_or(u32::MAX)
            }
        }
    }

    /// Seconds until the next period starts (`None` when it never does).
    fn seconds_left(self, now_unix_ms: u64) -> Option<u64> {
        let days = now_unix_ms / DAY_MS;
        let next_start_ms = match self {
            Period::None => return None,
            Period::Day => (days + 1) * DAY_MS,
            Period::Month => {
                let (y, m, _) = civil_from_days(days as i64);
                let (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
                u64::try_from(days_from_civil(y, m, 1)).unwrap_or(0) * DAY_MS
            }
        };
        Some(next_start_ms.saturating_sub(now_unix_ms).div_ceil(1000))
    }
}

/// `budgets` as written in the configuration.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BudgetsFile {
    period: Period,
    default_limit_usd: Option<String>,
    limits_usd: BTreeMap<String, String>,
    reserve_usd: Option<String>,
}

/// Validated spend limits by `key_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budgets {
    /// When spend resets.
    pub period: Period,
    /// Limit for keys not listed in `limits`; `None` leaves them unlimited.
    pub default_limit: Option<Usd>,
    /// Limits by `key_id` (12 hex digits, see `identity::key_id`).
    pub limits: BTreeMap<String, Usd>,
    /// Held per call in flight until its cost is known.
    pub reserve: Usd,
}

/// Reservation per call when the configuration names none.
pub const DEFAULT_RESERVE_USD: &str = "0.01";

impl Budgets {
    pub(crate) fn from_file(file: BudgetsFile) -> Result<Budgets, ConfigError> {
        let amount = |field: String, text: &str| {
            Usd::parse(text).map_err(|e| {
                ConfigError(format!(
                    "field `budgets.{field}`: {text:?} is {e} (a USD amount such as \"5.00\")"
                ))
            })
        };
        let default_limit = match &file.default_limit_usd {
            Some(text) => Some(amount("default_limit_usd".into(), text)?),
            None => None,
        };
        let mut limits = BTreeMap::new();
        for (key_id, text) in &file.limits_usd {
            let well_formed = key_id.len() == 12
                && key_id
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !well_formed {
                return Err(ConfigError(format!(
                    "field `budgets.limits_usd.{key_id}`: not a key_id (12 lower-case hex digits, as `llm-cost key-id` prints)"
                )));
            }
            limits.insert(
                key_id.clone(),
                amount(format!("limits_usd.{key_id}"), text)?,
            );
        }
        let reserve_text = file.reserve_usd.as_deref().unwrap_or(DEFAULT_RESERVE_USD);
        let reserve = amount("reserve_usd".into(), reserve_text)?;
        Ok(Budgets {
            period: file.period,
            default_limit,
            limits,
            reserve,
        })
    }

    /// True when no key has a limit.
    pub fn is_empty(&self) -> bool {
        self.default_limit.is_none() && self.limits.is_empty()
    }

    /// The limit of `key_id`, if it has one.
    pub fn limit_for(&self, key_id: &str) -> Option<Usd> {
        self.limits.get(key_id).copied().or(self.default_limit)
    }

    /// The shared-storage key of `key_id`'s ledger.
    pub fn storage_key(key_id: &str) -> String {
        format!("llm_cost.budget.{key_id}")
    }
}

/// One key's running totals in the current period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    period: u32,
    /// Settled cost in this period.
    pub spent: Usd,
    /// Reservations of calls still in flight.
    pub reserved: Usd,
}

/// Bytes of an encoded [`Ledger`].
pub const LEDGER_BYTES: usize = 36;

/// Why a call was refused, with what the client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// Cost settled in the period so far.
    pub spent: Usd,
    /// The key's limit.
    pub limit: Usd,
    /// Seconds until the period resets, for `Retry-After`.
    pub retry_after_s: Option<u64>,
    period: Period,
}

impl Ledger {
    /// Reads stored bytes; missing or unreadable bytes are a fresh ledger.
    pub fn decode(bytes: &[u8]) -> Ledger {
        if bytes.len() != LEDGER_BYTES {
            return Ledger::default();
        }
        let mut period = [0u8; 4];
        let (mut spent, mut reserved) = ([0u8; 16], [0u8; 16]);
        period.copy_from_slice(&bytes[..4]);
        spent.copy_from_slice(&bytes[4..20]);
        reserved.copy_from_slice(&bytes[20..]);
        Ledger {
            period: u32::from_le_bytes(period),
            spent: Usd::from_units(u128::from_le_bytes(spent)),
            reserved: Usd::from_units(u128::from_le_bytes(reserved)),
        }
    }

    /// The bytes to store.
    pub fn encode(&self) -> [u8; LEDGER_BYTES] {
        let mut out = [0u8; LEDGER_BYTES];
        out[..4].copy_from_slice(&self.period.to_le_bytes());
        out[4..20].copy_from_slice(&self.spent.units().to_le_bytes());
        out[20..].copy_from_slice(&self.reserved.units().to_le_bytes());
        out
    }

    /// This ledger as of `now`: spend starts from zero in a new period; reservations of calls
    /// still in flight carry over (their cost lands in the period they end in).
    fn current(self, period: Period, now_unix_ms: u64) -> Ledger {
        let index = period.index(now_unix_ms);
        if index == self.period {
            self
        } else {
            Ledger {
                period: index,
                spent: Usd::ZERO,
                reserved: self.reserved,
            }
        }
    }

    /// Admits a call (returning the ledger with its reservation added) while
    /// `spent + reserved < limit`; refuses it otherwise.
    pub fn admit(
        self,
        budgets: &Budgets,
        limit: Usd,
        now_unix_ms: u64,
    ) -> Result<Ledger, Rejection> {
        let ledger = self.current(budgets.period, now_unix_ms);
        if ledger.spent.saturating_add(ledger.reserved) >= limit {
            return Err(Rejection {
                spent: ledger.spent,
                limit,
                retry_after_s: budgets.period.seconds_left(now_unix_ms),
                period: budgets.period,
            });
        }
        Ok(Ledger {
            reserved: ledger.reserved.saturating_add(budgets.reserve),
            ..ledger
        })
    }

    /// Ends an admitted call: drops its reservation, adds its cost (zero if it has none).
    pub fn settle(self, budgets: &Budgets, cost: Usd, now_unix_ms: u64) -> Ledger {
        let ledger = self.current(budgets.period, now_unix_ms);
        Ledger {
            spent: ledger.spent.saturating_add(cost),
            reserved: ledger.reserved.saturating_sub(budgets.reserve),
            ..ledger
        }
    }
}

impl Rejection {
    /// The `429` body, shaped like OpenAI's errors so SDKs show the message.
    pub fn body_json(&self, key_id: &str) -> String {
        // Every piece is plain ASCII without quotes or backslashes (decimals, a hex `key_id`, fixed
        // words), so no escaping is needed; the unit test parses the result.
        let key_id = if key_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            key_id
        } else {
            "?"
        };
        let message = format!(
            "llm-cost: spend limit reached for this API key (key_id {key_id}): {} USD spent of {} USD{}",
            self.spent.to_decimal_string(),
            self.limit.to_decimal_string(),
            match self.period {
                Period::None => "",
                Period::Day => " today (UTC)",
                Period::Month => " this month (UTC)",
            }
        );
        format!(
            r#"{{"error":{{"message":"{message}","type":"insufficient_quota","code":"budget_exceeded","key_id":"{key_id}","spent_usd":"{}","limit_usd":"{}","period":"{}"}}}}"#,
            self.spent.to_decimal_string(),
            self.limit.to_decimal_string(),
            self.period.as_str(),
        )
    }

    /// Response headers for the `429` (content type, and `retry-after` when the period resets).
    pub fn headers(&self) -> alloc::vec::Vec<(&'static str, String)> {
        let mut headers = alloc::vec![("content-type", "application/json".to_owned())];
        if let Some(seconds) = self.retry_after_s {
            headers.push(("retry-after", format!("{seconds}")));
        }
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const NOV_25_2026_NOON_MS: u64 = 1_795_608_000_000;

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    fn budgets(period: Period, reserve: &str) -> Budgets {
        Budgets {
            period,
            default_limit: Some(usd("1")),
            limits: BTreeMap::new(),
            reserve: usd(reserve),
        }
    }

    #[test]
    fn the_clock_constant_is_what_it_says() {
        assert_eq!(
            crate::time::rfc3339_millis(NOV_25_2026_NOON_MS),
            "2026-11-25T12:00:00.000Z"
        );
    }

    #[test]
    fn admits_until_spent_plus_reserved_reaches_the_limit() {
        let b = budgets(Period::None, "0.25");
        let now = NOV_25_2026_NOON_MS;
        let mut ledger = Ledger::default();
        for _ in 0..4 {
            ledger = ledger.admit(&b, usd("1"), now).unwrap();
        }
        assert_eq!(ledger.reserved, usd("1"));
        let refused = ledger.admit(&b, usd("1"), now).unwrap_err();
        assert_eq!(refused.spent, Usd::ZERO);
        assert_eq!(refused.retry_after_s, None);
        // One call ends cheaper than reserved: room for one more.
        ledger = ledger.settle(&b, usd("0.1"), now);
        assert_eq!((ledger.spent, ledger.reserved), (usd("0.1"), usd("0.75")));
        assert!(ledger.admit(&b, usd("1"), now).is_ok());
    }

    #[test]
    fn concurrent_calls_overshoot_by_at_most_one_reservation() {
        // 100 calls race; each costs exactly the reservation. Admit as long as allowed, then
        // settle all: spent never exceeds limit + reserve.
        let b = budgets(Period::None, "0.03");
        let now = NOV_25_2026_NOON_MS;
        let mut ledger = Ledger {
            spent: usd("0.95"),
            ..Ledger::default()
        };
        let admitted: Vec<_> = (0..100)
            .filter_map(|_| {
                let next = ledger.admit(&b, usd("1"), now).ok()?;
                ledger = next;
                Some(())
            })
            .collect();
        assert_eq!(admitted.len(), 2); // 0.95 → 0.98 → 1.01 (refused from here)
        for _ in &admitted {
            ledger = ledger.settle(&b, usd("0.03"), now);
        }
        assert_eq!(ledger.spent, usd("1.01"));
        assert!(ledger.spent <= usd("1").checked_add(b.reserve).unwrap());
        assert_eq!(ledger.reserved, Usd::ZERO);
    }

    #[test]
    fn a_new_day_starts_from_zero_but_keeps_reservations() {
        let b = budgets(Period::Day, "0.5");
        let today = NOV_25_2026_NOON_MS;
        let ledger = Ledger::default().admit(&b, usd("1"), today).unwrap();
        let ledger = ledger.settle(&b, usd("1.2"), today);
        let ledger = ledger.admit(&b, usd("1"), today);
        let refused = ledger.unwrap_err();
        assert_eq!(refused.retry_after_s, Some(12 * 3600));
        let in_flight = Ledger::default()
            .settle(&b, usd("1.2"), today)
            .admit(&b, usd("2"), today)
            .unwrap();
        let tomorrow = today + DAY_MS;
        let next = in_flight.settle(&b, usd("0.2"), tomorrow);
        assert_eq!((next.spent, next.reserved), (usd("0.2"), Usd::ZERO));
    }

    #[test]
    fn months_roll_over_at_the_first_utc_day() {
        let now = NOV_25_2026_NOON_MS;
        // 5 days and 12 hours to 2026-12-01T00:00Z.
        assert_eq!(
            Period::Month.seconds_left(now),
            Some(5 * 86_400 + 12 * 3600)
        );
        let dec_1 = now + 5 * DAY_MS + 12 * 3_600_000;
        assert_ne!(Period::Month.index(dec_1 - 1), Period::Month.index(dec_1));
        assert_eq!(Period::Month.index(now), Period::Month.index(dec_1 - 1));
    }

    #[test]
    fn ledgers_round_trip_and_bad_bytes_are_fresh() {
        let ledger = Ledger {
            period: 7,
            spent: usd("12.000000000000000000000000000001"),
            reserved: usd("0.01"),
        };
        assert_eq!(Ledger::decode(&ledger.encode()), ledger);
        assert_eq!(Ledger::decode(b"garbage"), Ledger::default());
        assert_eq!(Ledger::decode(&[]), Ledger::default());
    }

    #[test]
    fn configuration_is_validated_with_the_field_named() {
        let parse = |json: &str| {
            let file: BudgetsFile = serde_json::from_str(json).unwrap();
            Budgets::from_file(file)
        };
        let ok =
            parse(r#"{"period":"month","limits_usd":{"0123456789ab":"5"},"reserve_usd":"0.05"}"#)
                .unwrap();
        assert_eq!(ok.limit_for("0123456789ab"), Some(usd("5")));
        assert_eq!(ok.limit_for("ffffffffffff"), None);
        assert_eq!(ok.reserve, usd("0.05"));
        assert_eq!(parse("{}").unwrap().reserve, usd(DEFAULT_RESERVE_USD));
        assert!(parse("{}").unwrap().is_empty());
        let err = parse(r#"{"limits_usd":{"sk-live-123":"5"}}"#).unwrap_err();
        assert!(err.0.contains("budgets.limits_usd.sk-live-123"), "{err}");
        let err = parse(r#"{"default_limit_usd":"-1"}"#).unwrap_err();
        assert!(err.0.contains("budgets.default_limit_usd"), "{err}");
    }

    #[test]
    fn the_rejection_names_the_numbers_and_never_the_key() {
        let b = budgets(Period::Month, "0.01");
        let ledger = Ledger::default().settle(&b, usd("1.5"), NOV_25_2026_NOON_MS);
        let refused = ledger.admit(&b, usd("1"), NOV_25_2026_NOON_MS).unwrap_err();
        let body: serde_json::Value =
            serde_json::from_str(&refused.body_json("0123456789ab")).unwrap();
        assert_eq!(body["error"]["code"], "budget_exceeded");
        assert_eq!(body["error"]["spent_usd"], "1.5");
        assert_eq!(body["error"]["limit_usd"], "1");
        assert_eq!(body["error"]["period"], "month");
        assert!(refused
            .headers()
            .contains(&("retry-after", format!("{}", 5 * 86_400 + 12 * 3600))));
    }
}
