//! Spend limits at the edge: the rules, and the decisions, not the storage.
//!
//! `budgets.rules` holds any number of rules, each on one dimension — `key_id`, `model`,
//! `provider` or any attribution dimension (`team`, `feature`, ...) — with a limit per value, a
//! default limit, a period and a mode (`enforce`, or `shadow`: never refuses, only marks the
//! record). A call must fit every enforced rule that matches it ([`Budgets::charges`]).
//!
//! A host keeps one [`Ledger`] per rule and value in storage shared by its workers (Envoy shared
//! data) and changes it only through [`Ledger::admit`], [`Ledger::release`] and
//! [`Ledger::settle`], with a compare-and-swap retry. Reserve-then-settle: a call is admitted
//! while `spent + reserved < limit` and reserves `reserve_usd` until it ends; then the
//! reservation is swapped for the call's real cost. So concurrent calls cannot overshoot a limit
//! by more than one call's cost, as long as a call costs at most `reserve_usd`. Settling also
//! says which of the 50 / 80 / 100 % thresholds the spend crossed for the first time in the
//! period ([`newly_crossed`]): the ledger remembers the ones already announced.
//!
//! Not here: reading headers or bodies (the `Call` hands over [`BudgetFacts`]), storage, clocks.

use alloc::{borrow::ToOwned, collections::BTreeMap, format, string::String, vec::Vec};
use core::fmt;

use serde::{Deserialize, Serialize};

use crate::attribution::{value_byte, Attribution, MAX_VALUE_BYTES};
use crate::config::ConfigError;
use crate::money::{MoneyError, Usd};
use crate::time::{civil_from_days, days_from_civil};

const DAY_MS: u64 = 86_400_000;

/// Most rules in one configuration (each matching rule costs a shared-data update per call).
pub const MAX_RULES: usize = 16;

/// Percentages of a limit that raise one event each, the first time a period's spend reaches them.
pub const THRESHOLDS_PERCENT: [u8; 3] = [50, 80, 100];

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

    fn phrase(self) -> &'static str {
        match self {
            Period::None => "",
            Period::Day => " today (UTC)",
            Period::Month => " this month (UTC)",
        }
    }
}

/// Whether a rule refuses calls over its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Over the limit: the call is refused (`429`).
    #[default]
    Enforce,
    /// Never refuses: the call passes and its record says `budget_would_exceed`.
    Shadow,
}

/// What `budgets.unpriced` says about calls to a model the price table cannot price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unpriced {
    /// They pass (their cost counts as zero).
    #[default]
    Allow,
    /// They are refused (`403`) while an enforced rule applies to them: a $0 guess would make
    /// the budget useless.
    Deny,
}

/// What `budgets.on_unknown_spend` says about calls while the collector's spend is not known
/// (`sync_interval_s` set, before the first successful sync and after a failed one).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownSpend {
    /// They are admitted against this host's own ledgers (counted, logged).
    #[default]
    Allow,
    /// They are refused (`503`, [`SpendUnknownRefusal`]) while an enforced rule applies to them.
    Deny,
}

/// `budgets.spend_token`: the bearer token `GET /v1/spend` of `llm-cost collect` requires. Its
/// `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SpendToken(pub String);

impl fmt::Debug for SpendToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SpendToken(..)")
    }
}

/// What a rule's limits are keyed by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RuleDimension {
    /// The short hash of the caller's API key (`identity::key_id`).
    KeyId,
    /// The model: the price-table id that prices it, else the name the client asked for.
    Model,
    /// The provider (`openrouter`, `openai`, `anthropic`, `gemini`, `unknown`).
    Provider,
    /// A configured attribution dimension (its value in the record's `attributes`).
    Attribute(String),
}

impl RuleDimension {
    /// The dimension's name, as configured and as the `429` body names it.
    pub fn as_str(&self) -> &str {
        match self {
            RuleDimension::KeyId => "key_id",
            RuleDimension::Model => "model",
            RuleDimension::Provider => "provider",
            RuleDimension::Attribute(name) => name,
        }
    }
}

/// One validated budget rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Where the rule's fields are below `budgets`: `"rules[2]."`, or `""` for the top-level form
    /// (messages about the rule name its fields with it).
    pub at: String,
    /// What the limits are keyed by.
    pub dimension: RuleDimension,
    /// Limits by value of the dimension.
    pub limits: BTreeMap<String, Usd>,
    /// Limit for values not in `limits`; `None` leaves them unlimited.
    pub default_limit: Option<Usd>,
    /// When spend resets.
    pub period: Period,
    /// Enforce or only mark.
    pub mode: Mode,
}

impl Rule {
    /// The limit of `value`, if it has one.
    pub fn limit_for(&self, value: &str) -> Option<Usd> {
        self.limits.get(value).copied().or(self.default_limit)
    }

    /// The charge of `value` to this rule (number `rule_index`), if `value` has a limit.
    fn charge(&self, rule_index: usize, value: &str) -> Option<Charge> {
        Some(Charge {
            rule: rule_index,
            value: value.to_owned(),
            limit: self.limit_for(value)?,
        })
    }
}

/// Validated spend limits.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Budgets {
    /// The rules, in configuration order (the top-level `limits_usd` form last, as a `key_id`
    /// rule).
    pub rules: Vec<Rule>,
    /// Held per call in flight, per matching rule, until its cost is known.
    pub reserve: Usd,
    /// Calls to models the table cannot price.
    pub unpriced: Unpriced,
    /// Seconds between syncs of the ledgers from the collector's spend totals
    /// (`GET /v1/spend`); 0: no sync (ledgers start from zero in each host process).
    pub sync_interval_s: u64,
    /// Calls while the collector's spend is not known (only with `sync_interval_s`).
    pub on_unknown_spend: UnknownSpend,
    /// Sent as `Authorization: Bearer` with each spend query, if set.
    pub spend_token: Option<SpendToken>,
}

/// Reservation per call when the configuration names none.
pub const DEFAULT_RESERVE_USD: &str = "0.01";

/// `budgets` as written in the configuration.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BudgetsFile {
    rules: Vec<RuleFile>,
    unpriced: Unpriced,
    reserve_usd: Option<String>,
    sync_interval_s: u64,
    on_unknown_spend: UnknownSpend,
    spend_token: Option<SpendToken>,
    // The form before rules: a `key_id` rule.
    period: Period,
    default_limit_usd: Option<String>,
    limits_usd: BTreeMap<String, String>,
}

/// One entry of `budgets.rules` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    dimension: String,
    #[serde(default)]
    limits_usd: BTreeMap<String, String>,
    #[serde(default)]
    default_limit_usd: Option<String>,
    #[serde(default)]
    period: Period,
    #[serde(default)]
    mode: Mode,
}

/// Why the `budgets` section is refused; `field` is the path below `budgets`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetConfigError {
    /// A limit or `reserve_usd` is not a USD amount.
    BadAmount {
        /// Where.
        field: String,
        /// As written.
        text: String,
        /// Why.
        why: MoneyError,
    },
    /// A rule's dimension is neither built in nor a configured attribution dimension.
    UnknownDimension {
        /// Where.
        field: String,
        /// As written.
        name: String,
        /// The dimensions a rule may use here.
        known: Vec<String>,
    },
    /// A `key_id` limit (or one on a hashed dimension) is not keyed by 12 lower-case hex digits.
    NotAHash {
        /// Where.
        field: String,
    },
    /// A limit keyed by a value the dimension can never take (charset, length).
    ImpossibleValue {
        /// Where.
        field: String,
    },
    /// A rule with neither `limits_usd` nor `default_limit_usd` limits nothing.
    NoLimit {
        /// Where.
        field: String,
    },
    /// More than [`MAX_RULES`] rules.
    TooManyRules,
}

impl fmt::Display for BudgetConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetConfigError::BadAmount { field, text, why } => write!(
                f,
                "field `budgets.{field}`: {text:?} is {why} (a USD amount such as \"5.00\")"
            ),
            BudgetConfigError::UnknownDimension { field, name, known } => write!(
                f,
                "field `budgets.{field}`: {name:?} is no dimension a call has: use key_id, model, provider or an attribution dimension ({})",
                if known.is_empty() { "none configured".to_owned() } else { known.join(", ") }
            ),
            BudgetConfigError::NotAHash { field } => write!(
                f,
                "field `budgets.{field}`: not a key_id or hashed value (12 lower-case hex digits, as `llm-cost key-id` prints)"
            ),
            BudgetConfigError::ImpossibleValue { field } => write!(
                f,
                "field `budgets.{field}`: no call can have this value (at most {MAX_VALUE_BYTES} letters, digits or `-_.:@/+`)"
            ),
            BudgetConfigError::NoLimit { field } => write!(
                f,
                "field `budgets.{field}`: a rule needs `limits_usd` or `default_limit_usd`"
            ),
            BudgetConfigError::TooManyRules => {
                write!(f, "field `budgets.rules`: at most {MAX_RULES} rules")
            }
        }
    }
}

impl From<BudgetConfigError> for ConfigError {
    fn from(e: BudgetConfigError) -> ConfigError {
        ConfigError(format!("{e}"))
    }
}

fn is_hash(text: &str) -> bool {
    text.len() == 12
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn amount(field: String, text: &str) -> Result<Usd, BudgetConfigError> {
    Usd::parse(text).map_err(|why| BudgetConfigError::BadAmount {
        field,
        text: text.to_owned(),
        why,
    })
}

impl Budgets {
    /// Validates `budgets`; rule dimensions must be built in or among `attribution`'s.
    pub(crate) fn from_file(
        file: BudgetsFile,
        attribution: &Attribution,
    ) -> Result<Budgets, BudgetConfigError> {
        let mut rules_file = file.rules;
        let legacy = !file.limits_usd.is_empty() || file.default_limit_usd.is_some();
        if rules_file.len() + usize::from(legacy) > MAX_RULES {
            return Err(BudgetConfigError::TooManyRules);
        }
        let legacy_index = rules_file.len();
        if legacy {
            rules_file.push(RuleFile {
                dimension: "key_id".into(),
                limits_usd: file.limits_usd,
                default_limit_usd: file.default_limit_usd,
                period: file.period,
                mode: Mode::Enforce,
            });
        }
        let mut rules = Vec::new();
        for (i, rule) in rules_file.into_iter().enumerate() {
            // The top-level form keeps its old field names in errors.
            let at = if legacy && i == legacy_index {
                String::new()
            } else {
                format!("rules[{i}].")
            };
            rules.push(Rule::from_file(rule, &at, attribution)?);
        }
        let reserve_text = file.reserve_usd.as_deref().unwrap_or(DEFAULT_RESERVE_USD);
        Ok(Budgets {
            rules,
            reserve: amount("reserve_usd".into(), reserve_text)?,
            unpriced: file.unpriced,
            sync_interval_s: file.sync_interval_s,
            on_unknown_spend: file.on_unknown_spend,
            spend_token: file.spend_token,
        })
    }

    /// True when no rule limits anything.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// True when a call's model can change what these budgets decide: a rule on `model`, or
    /// `unpriced: "deny"` (which refuses by the model's price) with any rule. A host that learns
    /// the model late (a form's `model` field) holds the call for it only then.
    pub fn depends_on_model(&self) -> bool {
        self.rules
            .iter()
            .any(|r| r.dimension == RuleDimension::Model)
            || (self.unpriced == Unpriced::Deny && !self.rules.is_empty())
    }

    /// The rules that apply to a call with these facts, each with the call's value and limit.
    pub fn charges(&self, facts: &BudgetFacts) -> Vec<Charge> {
        let mut out = Vec::new();
        for (rule_index, rule) in self.rules.iter().enumerate() {
            let value = match &rule.dimension {
                RuleDimension::KeyId => facts.key_id.as_deref(),
                RuleDimension::Model => facts.model.as_deref(),
                RuleDimension::Provider => Some(facts.provider),
                RuleDimension::Attribute(name) => facts.attributes.get(name).map(String::as_str),
            };
            let Some(value) = value else { continue };
            out.extend(rule.charge(rule_index, value));
        }
        out
    }

    /// `unpriced: "deny"`: the refusal of a call whose model the table cannot price while an
    /// enforced rule applies to it. A call whose model is not known (no body read) passes.
    pub fn unpriced_refusal(
        &self,
        facts: &BudgetFacts,
        charges: &[Charge],
    ) -> Option<UnpricedRefusal> {
        if self.unpriced != Unpriced::Deny || facts.priced {
            return None;
        }
        let model = facts.model.as_ref()?;
        let charge = charges
            .iter()
            .find(|c| self.rules[c.rule].mode == Mode::Enforce)?;
        Some(UnpricedRefusal {
            model: model.clone(),
            dimension: self.rules[charge.rule].dimension.as_str().to_owned(),
            value: charge.value.clone(),
        })
    }

    /// While the collector's spend is not known (`known` false, `sync_interval_s` set) and an
    /// enforced rule applies to the call: `Some(None)` under `on_unknown_spend: "allow"` (admit
    /// against this host's ledgers, count it), `Some(Some(refusal))` under `"deny"`. `None`: the
    /// spend is known, or nothing depends on it.
    pub fn unknown_spend(
        &self,
        known: bool,
        charges: &[Charge],
    ) -> Option<Option<SpendUnknownRefusal>> {
        if known || self.sync_interval_s == 0 {
            return None;
        }
        let charge = charges
            .iter()
            .find(|c| self.rules.get(c.rule).map(|r| r.mode) == Some(Mode::Enforce))?;
        Some(
            (self.on_unknown_spend == UnknownSpend::Deny).then(|| SpendUnknownRefusal {
                dimension: self.rules[charge.rule].dimension.as_str().to_owned(),
                value: charge.value.clone(),
            }),
        )
    }

    /// The periods the rules use, each once (one spend query per period when syncing).
    pub fn periods(&self) -> Vec<Period> {
        let mut out: Vec<Period> = Vec::new();
        for rule in &self.rules {
            if !out.contains(&rule.period) {
                out.push(rule.period);
            }
        }
        out
    }

    /// The ledgers a collector's spend of `value` on `dimension` in `period` updates: one per
    /// rule on that dimension and period that limits the value.
    pub fn synced_charges(&self, dimension: &str, value: &str, period: Period) -> Vec<Charge> {
        let mut out = Vec::new();
        for (rule_index, rule) in self.rules.iter().enumerate() {
            if rule.period != period || rule.dimension.as_str() != dimension {
                continue;
            }
            out.extend(rule.charge(rule_index, value));
        }
        out
    }

    /// The shared-storage key of one rule's ledger for one value.
    pub fn storage_key(&self, charge: &Charge) -> String {
        let dimension = self
            .rules
            .get(charge.rule)
            .map_or("?", |r| r.dimension.as_str());
        format!(
            "llm_cost.budget.{}.{dimension}.{}",
            charge.rule, charge.value
        )
    }
}

impl Rule {
    fn from_file(
        file: RuleFile,
        at: &str,
        attribution: &Attribution,
    ) -> Result<Rule, BudgetConfigError> {
        let hashed_attribute = |name: &str| {
            attribution
                .dimensions
                .iter()
                .find(|d| d.name == name)
                .map(|d| d.hash)
        };
        let (dimension, hashed) = match file.dimension.as_str() {
            "key_id" => (RuleDimension::KeyId, true),
            "model" => (RuleDimension::Model, false),
            "provider" => (RuleDimension::Provider, false),
            name => match hashed_attribute(name) {
                Some(hash) => (RuleDimension::Attribute(name.to_owned()), hash),
                None => {
                    return Err(BudgetConfigError::UnknownDimension {
                        field: format!("{at}dimension"),
                        name: name.to_owned(),
                        known: attribution
                            .dimensions
                            .iter()
                            .map(|d| d.name.clone())
                            .collect(),
                    })
                }
            },
        };
        let default_limit = match &file.default_limit_usd {
            Some(text) => Some(amount(format!("{at}default_limit_usd"), text)?),
            None => None,
        };
        let mut limits = BTreeMap::new();
        for (value, text) in &file.limits_usd {
            let field = format!("{at}limits_usd.{value}");
            if hashed && !is_hash(value) {
                return Err(BudgetConfigError::NotAHash { field });
            }
            // Model ids are the table's (any text); other values are bounded like attributes.
            let possible = dimension == RuleDimension::Model
                || (!value.is_empty()
                    && value.len() <= MAX_VALUE_BYTES
                    && value.bytes().all(value_byte));
            if !possible {
                return Err(BudgetConfigError::ImpossibleValue { field });
            }
            limits.insert(value.clone(), amount(field, text)?);
        }
        if limits.is_empty() && default_limit.is_none() {
            return Err(BudgetConfigError::NoLimit {
                field: format!("{at}limits_usd"),
            });
        }
        Ok(Rule {
            at: at.to_owned(),
            dimension,
            limits,
            default_limit,
            period: file.period,
            mode: file.mode,
        })
    }
}

/// The (dimension, value, spend) entries of a collector's spend answer (`GET /v1/spend` of
/// `llm-cost collect`: `{"spend":[{"dimension","value","spent_usd"}, ...]}`); `None` when it is
/// not one (then nothing is synced: the ledgers keep what they have). Read through
/// `serde_json::Value`, which the price-document loaders already link: a derived `Deserialize`
/// would add its own deserializer to the `.wasm`.
pub fn parse_spend_answer(bytes: &[u8]) -> Option<Vec<(String, String, Usd)>> {
    let answer: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    let text = |entry: &serde_json::Value, name: &str| entry.get(name)?.as_str().map(String::from);
    answer
        .get("spend")?
        .as_array()?
        .iter()
        .map(|e| {
            let spent = Usd::parse(&text(e, "spent_usd")?).ok()?;
            Some((text(e, "dimension")?, text(e, "value")?, spent))
        })
        .collect()
}

/// What budget rules match a call on, as the call knows it (see `Call::budget_facts`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BudgetFacts {
    /// The caller's `key_id`.
    pub key_id: Option<String>,
    /// The price-table id that prices the model, else the model as requested; `None` until known.
    pub model: Option<String>,
    /// Whether the table (with `models` overrides) prices the model.
    pub priced: bool,
    /// The provider's name.
    pub provider: &'static str,
    /// The call's attributes.
    pub attributes: BTreeMap<String, String>,
}

/// One rule that applies to a call: which rule, the call's value and its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Charge {
    /// Index into [`Budgets::rules`].
    pub rule: usize,
    /// The call's value of the rule's dimension.
    pub value: String,
    /// That value's limit.
    pub limit: Usd,
}

/// A budget event on a record: a shadow rule the call would exceed (`budget_would_exceed`) or a
/// threshold the call's cost crossed (`budget_thresholds`, with `percent`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BudgetMark {
    /// The rule's dimension.
    pub dimension: String,
    /// The call's value of it (a `key_id` or hash for hashed dimensions, never a key).
    pub value: String,
    /// The rule's period.
    pub period: &'static str,
    /// The limit, decimal USD.
    pub limit_usd: String,
    /// Spend in the period: settled before the call (`budget_would_exceed`), or with the call's
    /// cost (`budget_thresholds`).
    pub spent_usd: String,
    /// The threshold crossed, in percent of the limit (`budget_thresholds` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u8>,
}

/// The smallest spend that reaches `percent` % of `limit` (rounded up: exact, no overflow).
fn threshold_amount(limit: Usd, percent: u8) -> Usd {
    let (q, r) = (limit.units() / 100, limit.units() % 100);
    let p = u128::from(percent);
    Usd::from_units(q * p + (r * p).div_ceil(100))
}

/// The thresholds (bit `i` = [`THRESHOLDS_PERCENT`]`[i]`) that `spent` reaches of `limit`; none
/// for a zero limit (every call is refused there).
pub fn thresholds_reached(spent: Usd, limit: Usd) -> u8 {
    if limit == Usd::ZERO {
        return 0;
    }
    THRESHOLDS_PERCENT
        .iter()
        .enumerate()
        .filter(|(_, p)| spent >= threshold_amount(limit, **p))
        .fold(0, |bits, (i, _)| bits | (1 << i))
}

/// The thresholds `spent` reaches that were not announced yet (`announced`: bits already fired
/// in this period): exactly one event per threshold per period.
pub fn newly_crossed(announced: u8, spent: Usd, limit: Usd) -> u8 {
    thresholds_reached(spent, limit) & !announced
}

/// The percentages in a threshold bit set, lowest first.
pub fn threshold_percents(bits: u8) -> impl Iterator<Item = u8> {
    THRESHOLDS_PERCENT
        .into_iter()
        .enumerate()
        .filter(move |(i, _)| bits & (1 << i) != 0)
        .map(|(_, p)| p)
}

/// One rule's running totals for one value in the current period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    period: u32,
    /// Settled cost in this period.
    pub spent: Usd,
    /// Reservations of calls still in flight.
    pub reserved: Usd,
    /// Thresholds already announced in this period (bits as in [`thresholds_reached`]).
    pub announced: u8,
}

/// Bytes of an encoded [`Ledger`].
pub const LEDGER_BYTES: usize = 37;

/// A ledger's answer to a call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Within the limit: store this ledger (the reservation added).
    Admitted(Ledger),
    /// A shadow rule over its limit: store this ledger (the reservation added); the call passes
    /// and its record names the rejection it would have had.
    WouldExceed(Ledger, Rejection),
    /// An enforced rule over its limit: store nothing, answer the rejection.
    Refused(Rejection),
}

/// Why a call was refused (or would be, under a shadow rule), with what the client is told.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rejection {
    /// The rule's dimension.
    pub dimension: String,
    /// The call's value of it.
    pub value: String,
    /// Cost settled in the period so far.
    pub spent: Usd,
    /// The value's limit.
    pub limit: Usd,
    /// Seconds until the period resets, for `Retry-After`.
    pub retry_after_s: Option<u64>,
    /// The rule's period.
    pub period: Period,
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
        reserved.copy_from_slice(&bytes[20..36]);
        Ledger {
            period: u32::from_le_bytes(period),
            spent: Usd::from_units(u128::from_le_bytes(spent)),
            reserved: Usd::from_units(u128::from_le_bytes(reserved)),
            announced: bytes[36],
        }
    }

    /// The bytes to store.
    pub fn encode(&self) -> [u8; LEDGER_BYTES] {
        let mut out = [0u8; LEDGER_BYTES];
        out[..4].copy_from_slice(&self.period.to_le_bytes());
        out[4..20].copy_from_slice(&self.spent.units().to_le_bytes());
        out[20..36].copy_from_slice(&self.reserved.units().to_le_bytes());
        out[36] = self.announced;
        out
    }

    /// This ledger as of `now`: spend and announced thresholds start from zero in a new period;
    /// reservations of calls still in flight carry over (their cost lands in the period they end
    /// in).
    fn current(self, period: Period, now_unix_ms: u64) -> Ledger {
        let index = period.index(now_unix_ms);
        if index == self.period {
            self
        } else {
            Ledger {
                period: index,
                spent: Usd::ZERO,
                reserved: self.reserved,
                announced: 0,
            }
        }
    }

    /// Admits a call under `rule` (adding `reserve`) while `spent + reserved < limit`; over it,
    /// an enforced rule refuses and a shadow rule admits and says so.
    pub fn admit(self, budgets: &Budgets, charge: &Charge, now_unix_ms: u64) -> Decision {
        let Some(rule) = budgets.rules.get(charge.rule) else {
            return Decision::Admitted(self);
        };
        let ledger = self.current(rule.period, now_unix_ms);
        let reserved = Ledger {
            reserved: ledger.reserved.saturating_add(budgets.reserve),
            ..ledger
        };
        if ledger.spent.saturating_add(ledger.reserved) < charge.limit {
            return Decision::Admitted(reserved);
        }
        let rejection = Rejection {
            dimension: rule.dimension.as_str().to_owned(),
            value: charge.value.clone(),
            spent: ledger.spent,
            limit: charge.limit,
            retry_after_s: rule.period.seconds_left(now_unix_ms),
            period: rule.period,
        };
        match rule.mode {
            Mode::Enforce => Decision::Refused(rejection),
            Mode::Shadow => Decision::WouldExceed(reserved, rejection),
        }
    }

    /// Takes in the collector's spend of this ledger's value in the current period: the ledger
    /// keeps the larger of it and its own settled spend. After a host restart (own spend zero)
    /// that is the collector's; while this host's latest calls are still on their way to the
    /// collector it is its own. Reservations and announced thresholds stay.
    pub fn synced(self, period: Period, collector_spent: Usd, now_unix_ms: u64) -> Ledger {
        let ledger = self.current(period, now_unix_ms);
        Ledger {
            spent: ledger.spent.max(collector_spent),
            ..ledger
        }
    }

    /// Drops an admitted call's reservation without a cost (another rule refused the call).
    pub fn release(self, budgets: &Budgets, charge: &Charge, now_unix_ms: u64) -> Ledger {
        let period = budgets
            .rules
            .get(charge.rule)
            .map_or(Period::None, |r| r.period);
        let ledger = self.current(period, now_unix_ms);
        Ledger {
            reserved: ledger.reserved.saturating_sub(budgets.reserve),
            ..ledger
        }
    }

    /// Ends an admitted call: drops its reservation, adds its cost (zero if it has none), and
    /// returns the thresholds this spend crossed for the first time in the period (each is then
    /// marked announced, so it is returned once per period whatever the concurrency).
    pub fn settle(
        self,
        budgets: &Budgets,
        charge: &Charge,
        cost: Usd,
        now_unix_ms: u64,
    ) -> (Ledger, u8) {
        let ledger = self.release(budgets, charge, now_unix_ms);
        let spent = ledger.spent.saturating_add(cost);
        let crossed = newly_crossed(ledger.announced, spent, charge.limit);
        (
            Ledger {
                spent,
                announced: ledger.announced | crossed,
                ..ledger
            },
            crossed,
        )
    }
}

/// The `error` object of a refusal, shaped like OpenAI's errors so SDKs show the message.
#[derive(Serialize)]
struct ErrorBody<'a> {
    message: String,
    r#type: &'static str,
    code: &'static str,
    dimension: &'a str,
    value: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    spent_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    limit_usd: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<&'static str>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: ErrorBody<'a>,
}

fn envelope(error: ErrorBody<'_>) -> String {
    serde_json::to_string(&Envelope { error }).unwrap_or_default()
}

/// The subject of a message: "this API key (key_id …)" or "team search".
fn subject(dimension: &str, value: &str) -> String {
    if dimension == "key_id" {
        format!("this API key (key_id {value})")
    } else {
        format!("{dimension} {value}")
    }
}

impl Rejection {
    /// The HTTP status of a refusal.
    pub const STATUS: u16 = 429;

    /// The `429` body: names the rule's dimension, the call's value (a `key_id` is a hash, never
    /// the key), the spend, the limit and the period.
    pub fn body_json(&self) -> String {
        let (spent, limit) = (
            self.spent.to_decimal_string(),
            self.limit.to_decimal_string(),
        );
        envelope(ErrorBody {
            message: format!(
                "llm-cost: spend limit reached for {}: {spent} USD spent of {limit} USD{}",
                subject(&self.dimension, &self.value),
                self.period.phrase()
            ),
            r#type: "insufficient_quota",
            code: "budget_exceeded",
            dimension: &self.dimension,
            value: &self.value,
            key_id: (self.dimension == "key_id").then_some(self.value.as_str()),
            model: None,
            spent_usd: Some(spent),
            limit_usd: Some(limit),
            period: Some(self.period.as_str()),
        })
    }

    /// Response headers for the `429` (content type, and `retry-after` when the period resets).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = alloc::vec![("content-type", "application/json".to_owned())];
        if let Some(seconds) = self.retry_after_s {
            headers.push(("retry-after", format!("{seconds}")));
        }
        headers
    }

    /// The record's `budget_would_exceed` entry for this (shadow) rejection.
    pub fn mark(&self) -> BudgetMark {
        BudgetMark {
            dimension: self.dimension.clone(),
            value: self.value.clone(),
            period: self.period.as_str(),
            limit_usd: self.limit.to_decimal_string(),
            spent_usd: self.spent.to_decimal_string(),
            percent: None,
        }
    }
}

/// The record's `budget_thresholds` entries for the threshold bits `crossed` of one charge.
pub fn threshold_marks(
    budgets: &Budgets,
    charge: &Charge,
    spent: Usd,
    crossed: u8,
) -> Vec<BudgetMark> {
    let Some(rule) = budgets.rules.get(charge.rule) else {
        return Vec::new();
    };
    threshold_percents(crossed)
        .map(|percent| BudgetMark {
            dimension: rule.dimension.as_str().to_owned(),
            value: charge.value.clone(),
            period: rule.period.as_str(),
            limit_usd: charge.limit.to_decimal_string(),
            spent_usd: spent.to_decimal_string(),
            percent: Some(percent),
        })
        .collect()
}

/// `on_unknown_spend: "deny"` refusing a call: the rule that applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpendUnknownRefusal {
    /// The applying rule's dimension.
    pub dimension: String,
    /// The call's value of it.
    pub value: String,
}

impl SpendUnknownRefusal {
    /// `503`: the collector may answer soon (SDKs retry a `503`).
    pub const STATUS: u16 = 503;

    /// The `503` body, OpenAI-shaped.
    pub fn body_json(&self) -> String {
        envelope(ErrorBody {
            message: format!(
                "llm-cost: the spend of {} is not known (the collector's spend totals have not been read; budgets.on_unknown_spend is \"deny\")",
                subject(&self.dimension, &self.value)
            ),
            r#type: "server_error",
            code: "budget_spend_unknown",
            dimension: &self.dimension,
            value: &self.value,
            key_id: (self.dimension == "key_id").then_some(self.value.as_str()),
            model: None,
            spent_usd: None,
            limit_usd: None,
            period: None,
        })
    }
}

/// `unpriced: "deny"` refusing a call: the model, and the rule that applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnpricedRefusal {
    /// The model as requested.
    pub model: String,
    /// The applying rule's dimension.
    pub dimension: String,
    /// The call's value of it.
    pub value: String,
}

impl UnpricedRefusal {
    /// `403`: retrying cannot help (SDKs retry a `429`), the model needs a price first.
    pub const STATUS: u16 = 403;

    /// The `403` body, OpenAI-shaped.
    pub fn body_json(&self) -> String {
        envelope(ErrorBody {
            message: format!(
                "llm-cost: model {} has no price, and a spend limit applies to {} (budgets.unpriced is \"deny\")",
                self.model,
                subject(&self.dimension, &self.value)
            ),
            r#type: "invalid_request_error",
            code: "unpriced_model_refused",
            dimension: &self.dimension,
            value: &self.value,
            key_id: (self.dimension == "key_id").then_some(self.value.as_str()),
            model: Some(&self.model),
            spent_usd: None,
            limit_usd: None,
            period: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::AttributionFile;
    use alloc::string::ToString;
    use alloc::vec;

    const NOV_25_2026_NOON_MS: u64 = 1_795_608_000_000;

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    fn attribution() -> Attribution {
        let file: AttributionFile = serde_json::from_str(
            r#"{"dimensions":{"team":{"from":["header:x-team"]},"user":{"from":["header:x-user"],"hash":true}}}"#,
        )
        .unwrap();
        Attribution::from_file(file).unwrap()
    }

    fn parse(json: &str) -> Result<Budgets, BudgetConfigError> {
        let file: BudgetsFile = serde_json::from_str(json).unwrap();
        Budgets::from_file(file, &attribution())
    }

    /// One key_id rule with a default limit of 1 USD.
    fn budgets(period: &str, reserve: &str) -> Budgets {
        parse(&format!(
            r#"{{"period":"{period}","default_limit_usd":"1","reserve_usd":"{reserve}"}}"#
        ))
        .unwrap()
    }

    #[test]
    fn only_model_rules_and_unpriced_deny_depend_on_the_model() {
        let on = |json: &str| parse(json).unwrap().depends_on_model();
        assert!(!on(
            r#"{"rules":[{"dimension":"key_id","default_limit_usd":"1"}]}"#
        ));
        assert!(on(
            r#"{"rules":[{"dimension":"model","default_limit_usd":"1"}]}"#
        ));
        assert!(on(
            r#"{"unpriced":"deny","rules":[{"dimension":"key_id","default_limit_usd":"1"}]}"#
        ));
        assert!(!on(r#"{"unpriced":"deny"}"#));
    }

    fn charge(limit: &str) -> Charge {
        Charge {
            rule: 0,
            value: "0123456789ab".into(),
            limit: usd(limit),
        }
    }

    fn admitted(decision: Decision) -> Ledger {
        match decision {
            Decision::Admitted(ledger) => ledger,
            other => panic!("{other:?}"),
        }
    }

    fn refused(decision: Decision) -> Rejection {
        match decision {
            Decision::Refused(rejection) => rejection,
            other => panic!("{other:?}"),
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
        let b = budgets("none", "0.25");
        let (c, now) = (charge("1"), NOV_25_2026_NOON_MS);
        let mut ledger = Ledger::default();
        for _ in 0..4 {
            ledger = admitted(ledger.admit(&b, &c, now));
        }
        assert_eq!(ledger.reserved, usd("1"));
        let rejection = refused(ledger.admit(&b, &c, now));
        assert_eq!(rejection.spent, Usd::ZERO);
        assert_eq!(rejection.retry_after_s, None);
        // One call ends cheaper than reserved: room for one more.
        ledger = ledger.settle(&b, &c, usd("0.1"), now).0;
        assert_eq!((ledger.spent, ledger.reserved), (usd("0.1"), usd("0.75")));
        assert!(matches!(ledger.admit(&b, &c, now), Decision::Admitted(_)));
        // A release (another rule refused the call) drops the reservation, adds nothing.
        let released = ledger.release(&b, &c, now);
        assert_eq!(
            (released.spent, released.reserved),
            (usd("0.1"), usd("0.5"))
        );
    }

    #[test]
    fn concurrent_calls_overshoot_by_at_most_one_reservation() {
        // 100 calls race; each costs exactly the reservation. Admit as long as allowed, then
        // settle all: spent never exceeds limit + reserve.
        let b = budgets("none", "0.03");
        let (c, now) = (charge("1"), NOV_25_2026_NOON_MS);
        let mut ledger = Ledger {
            spent: usd("0.95"),
            ..Ledger::default()
        };
        let mut admitted_calls = 0;
        for _ in 0..100 {
            if let Decision::Admitted(next) = ledger.admit(&b, &c, now) {
                ledger = next;
                admitted_calls += 1;
            }
        }
        assert_eq!(admitted_calls, 2); // 0.95 → 0.98 → 1.01 (refused from here)
        for _ in 0..admitted_calls {
            ledger = ledger.settle(&b, &c, usd("0.03"), now).0;
        }
        assert_eq!(ledger.spent, usd("1.01"));
        assert!(ledger.spent <= usd("1").checked_add(b.reserve).unwrap());
        assert_eq!(ledger.reserved, Usd::ZERO);
    }

    #[test]
    fn a_new_day_starts_from_zero_but_keeps_reservations() {
        let b = budgets("day", "0.5");
        let (c, today) = (charge("1"), NOV_25_2026_NOON_MS);
        let ledger = admitted(Ledger::default().admit(&b, &c, today));
        let ledger = ledger.settle(&b, &c, usd("1.2"), today).0;
        let rejection = refused(ledger.admit(&b, &c, today));
        assert_eq!(rejection.retry_after_s, Some(12 * 3600));
        let in_flight = admitted(Ledger::default().settle(&b, &c, usd("1.2"), today).0.admit(
            &b,
            &charge("2"),
            today,
        ));
        let tomorrow = today + DAY_MS;
        let next = in_flight.settle(&b, &c, usd("0.2"), tomorrow).0;
        assert_eq!((next.spent, next.reserved), (usd("0.2"), Usd::ZERO));
    }

    #[test]
    fn a_sync_keeps_the_larger_spend_so_a_restarted_host_refuses_at_once() {
        let b = budgets("day", "0.1");
        let (c, now) = (charge("1"), NOV_25_2026_NOON_MS);
        // A fresh ledger (the host restarted) takes the collector's 1.2 USD: refused.
        let restarted = Ledger::default().synced(Period::Day, usd("1.2"), now);
        assert_eq!(refused(restarted.admit(&b, &c, now)).spent, usd("1.2"));
        // A host ahead of the collector (records still queued) keeps its own spend and its
        // reservations.
        let busy = admitted(Ledger::default().admit(&b, &c, now));
        let busy = busy.settle(&b, &c, usd("0.5"), now).0;
        let busy = admitted(busy.admit(&b, &c, now));
        let synced = busy.synced(Period::Day, usd("0.3"), now);
        assert_eq!((synced.spent, synced.reserved), (usd("0.5"), usd("0.1")));
        // Yesterday's ledger syncs into today's period.
        let next = restarted.synced(Period::Day, usd("0.25"), now + DAY_MS);
        assert_eq!(next.spent, usd("0.25"));
    }

    #[test]
    fn a_collector_value_updates_the_rules_on_its_dimension_and_period() {
        let b = parse(
            r#"{"sync_interval_s":5,"rules":[
              {"dimension":"key_id","limits_usd":{"0123456789ab":"1"},"period":"day"},
              {"dimension":"key_id","default_limit_usd":"9","period":"month"},
              {"dimension":"provider","limits_usd":{"openai":"3"},"period":"day"}]}"#,
        )
        .unwrap();
        assert_eq!(b.sync_interval_s, 5);
        assert_eq!(b.periods(), [Period::Day, Period::Month]);
        let day = b.synced_charges("key_id", "0123456789ab", Period::Day);
        assert_eq!(day, [charge("1")]);
        let month = b.synced_charges("key_id", "0123456789ab", Period::Month);
        assert_eq!((month[0].rule, month[0].limit), (1, usd("9")));
        assert_eq!(b.synced_charges("key_id", "fedcba987654", Period::Day), []);
        assert_eq!(
            b.synced_charges("provider", "openai", Period::Day)[0].rule,
            2
        );
    }

    #[test]
    fn unknown_spend_is_allowed_or_refused_only_while_a_sync_is_configured() {
        let rules =
            r#""rules":[{"dimension":"key_id","limits_usd":{"0123456789ab":"1"},"period":"day"}]"#;
        let allow = parse(&format!(r#"{{"sync_interval_s":5,{rules}}}"#)).unwrap();
        let charges = [charge("1")];
        assert_eq!(allow.unknown_spend(false, &charges), Some(None));
        assert_eq!(allow.unknown_spend(true, &charges), None);
        assert_eq!(allow.unknown_spend(false, &[]), None);
        let off = parse(&format!(r#"{{"on_unknown_spend":"deny",{rules}}}"#)).unwrap();
        assert_eq!(off.unknown_spend(false, &charges), None);
        let deny = parse(&format!(
            r#"{{"sync_interval_s":5,"on_unknown_spend":"deny","spend_token":"s3cret",{rules}}}"#
        ))
        .unwrap();
        let refusal = deny.unknown_spend(false, &charges).unwrap().unwrap();
        let body: serde_json::Value = serde_json::from_str(&refusal.body_json()).unwrap();
        assert_eq!(body["error"]["code"], "budget_spend_unknown");
        assert_eq!(body["error"]["key_id"], "0123456789ab");
        assert_eq!(deny.spend_token, Some(SpendToken("s3cret".into())));
        assert!(!format!("{deny:?}").contains("s3cret"));
        assert!(serde_json::from_str::<BudgetsFile>(r#"{"on_unknown_spend":"maybe"}"#).is_err());
    }

    #[test]
    fn a_spend_answer_is_read_exactly_or_not_at_all() {
        let answer = br#"{"period":"day","records":2,"spend":[{"dimension":"key_id","value":"0123456789ab","spent_usd":"0.000000000000000000000000000001"}]}"#;
        assert_eq!(
            parse_spend_answer(answer),
            Some(vec![(
                "key_id".into(),
                "0123456789ab".into(),
                Usd::from_units(1)
            )])
        );
        assert_eq!(
            parse_spend_answer(br#"{"spend":[{"dimension":"a","value":"b","spent_usd":"1e3"}]}"#),
            None
        );
        assert_eq!(parse_spend_answer(b"<html>"), None);
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
            announced: 0b101,
        };
        assert_eq!(Ledger::decode(&ledger.encode()), ledger);
        assert_eq!(Ledger::decode(b"garbage"), Ledger::default());
        assert_eq!(Ledger::decode(&[]), Ledger::default());
        // A ledger in the layout before thresholds (36 bytes) is read as fresh, not misread.
        assert_eq!(Ledger::decode(&[1u8; 36]), Ledger::default());
    }

    #[test]
    fn thresholds_are_reached_exactly_at_their_percentage() {
        let limit = usd("10");
        assert_eq!(thresholds_reached(usd("4.999999"), limit), 0);
        assert_eq!(thresholds_reached(usd("5"), limit), 0b001);
        assert_eq!(thresholds_reached(usd("7.99"), limit), 0b001);
        assert_eq!(thresholds_reached(usd("8"), limit), 0b011);
        assert_eq!(thresholds_reached(usd("10"), limit), 0b111);
        assert_eq!(thresholds_reached(usd("99"), limit), 0b111);
        assert_eq!(thresholds_reached(usd("99"), Usd::ZERO), 0);
        // Rounded up, never down: 50 % of 3 units is 1.5 units, reached at 2.
        let tiny = Usd::from_units(3);
        assert_eq!(thresholds_reached(Usd::from_units(1), tiny), 0);
        assert_eq!(thresholds_reached(Usd::from_units(2), tiny), 0b001);
        // The largest amounts do not overflow.
        let max = Usd::from_units(u128::MAX);
        assert_eq!(thresholds_reached(max, max), 0b111);
        assert_eq!(threshold_percents(0b110).collect::<Vec<_>>(), vec![80, 100]);
    }

    #[test]
    fn each_threshold_is_announced_once_per_period() {
        let b = budgets("day", "0");
        let (c, today) = (charge("10"), NOV_25_2026_NOON_MS);
        let mut ledger = Ledger::default();
        let mut events = Vec::new();
        // Eleven calls of $1: 50 % at the 5th, 80 % at the 8th, 100 % at the 10th, then nothing.
        for _ in 0..11 {
            let (next, crossed) = ledger.settle(&b, &c, usd("1"), today);
            events.push(crossed);
            ledger = next;
        }
        assert_eq!(events, vec![0, 0, 0, 0, 0b001, 0, 0, 0b010, 0, 0b100, 0]);
        // One big call crosses several at once.
        let (_, crossed) = Ledger::default().settle(&b, &c, usd("9"), today);
        assert_eq!(crossed, 0b011);
        // A new day announces again.
        let (_, crossed) = ledger.settle(&b, &c, usd("6"), today + DAY_MS);
        assert_eq!(crossed, 0b001);
        let marks = threshold_marks(&b, &c, usd("9"), 0b011);
        assert_eq!(
            marks.iter().map(|m| m.percent).collect::<Vec<_>>(),
            vec![Some(50), Some(80)]
        );
        assert_eq!(
            (
                marks[0].dimension.as_str(),
                marks[0].period,
                marks[0].limit_usd.as_str()
            ),
            ("key_id", "day", "10")
        );
    }

    const ISSUE_RULES: &str = r#"{"rules": [
        {"dimension": "team", "limits_usd": {"search": "500"}, "default_limit_usd": "100", "period": "month"},
        {"dimension": "key_id", "limits_usd": {"3f2a9c1b7e44": "25"}, "period": "day", "mode": "shadow"},
        {"dimension": "model", "limits_usd": {"openai/gpt-4o": "7"}},
        {"dimension": "provider", "limits_usd": {"gemini": "3"}}
    ], "unpriced": "deny"}"#;

    fn facts(key_id: Option<&str>, team: Option<&str>, model: &str) -> BudgetFacts {
        let mut attributes = BTreeMap::new();
        if let Some(team) = team {
            attributes.insert("team".to_owned(), team.to_owned());
        }
        BudgetFacts {
            key_id: key_id.map(str::to_owned),
            model: Some(model.to_owned()),
            priced: true,
            provider: "openrouter",
            attributes,
        }
    }

    #[test]
    fn a_call_is_charged_on_every_rule_that_matches_it() {
        let b = parse(ISSUE_RULES).unwrap();
        assert_eq!(b.rules.len(), 4);
        assert_eq!(b.rules[1].mode, Mode::Shadow);
        assert_eq!(b.unpriced, Unpriced::Deny);
        let got = b.charges(&facts(
            Some("3f2a9c1b7e44"),
            Some("search"),
            "openai/gpt-4o",
        ));
        let got: Vec<(usize, &str, Usd)> = got
            .iter()
            .map(|c| (c.rule, c.value.as_str(), c.limit))
            .collect();
        assert_eq!(
            got,
            vec![
                (0, "search", usd("500")),
                (1, "3f2a9c1b7e44", usd("25")),
                (2, "openai/gpt-4o", usd("7")),
            ]
        );
        // Another team gets the default; an unlisted key and model have no limit; no team, no rule.
        let got = b.charges(&facts(Some("ffffffffffff"), Some("ads"), "m"));
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].value.as_str(), got[0].limit), ("ads", usd("100")));
        assert!(b.charges(&facts(None, None, "m")).is_empty());
        let key = b.storage_key(&b.charges(&facts(None, Some("ads"), "m"))[0]);
        assert_eq!(key, "llm_cost.budget.0.team.ads");
    }

    #[test]
    fn the_old_top_level_form_is_a_key_id_rule() {
        let b =
            parse(r#"{"period":"month","limits_usd":{"0123456789ab":"5"},"reserve_usd":"0.05"}"#)
                .unwrap();
        assert_eq!(b.rules.len(), 1);
        assert_eq!(b.rules[0].dimension, RuleDimension::KeyId);
        assert_eq!(b.rules[0].period, Period::Month);
        assert_eq!(b.rules[0].limit_for("0123456789ab"), Some(usd("5")));
        assert_eq!(b.rules[0].limit_for("ffffffffffff"), None);
        assert_eq!(b.reserve, usd("0.05"));
        assert_eq!(parse("{}").unwrap().reserve, usd(DEFAULT_RESERVE_USD));
        assert!(parse("{}").unwrap().is_empty());
        assert_eq!(parse("{}").unwrap().unpriced, Unpriced::Allow);
    }

    #[test]
    fn configuration_is_validated_with_the_field_named() {
        for (json, needle) in [
            (r#"{"limits_usd":{"sk-live-123":"5"}}"#, "field `budgets.limits_usd.sk-live-123`: not a key_id"),
            (r#"{"default_limit_usd":"-1"}"#, "field `budgets.default_limit_usd`"),
            (r#"{"rules":[{"dimension":"team","default_limit_usd":"1.5x"}]}"#, "field `budgets.rules[0].default_limit_usd`: \"1.5x\" is not a non-negative decimal"),
            (r#"{"rules":[{"dimension":"team","limits_usd":{"search":"0.0000000000000000000000000000001"}}]}"#, "rules[0].limits_usd.search`: \"0.0000000000000000000000000000001\" is more than 30 decimal places"),
            (r#"{"rules":[{"dimension":"tenant","default_limit_usd":"1"}]}"#, "field `budgets.rules[0].dimension`: \"tenant\" is no dimension a call has: use key_id, model, provider or an attribution dimension (team, user)"),
            (r#"{"rules":[{"dimension":"user","limits_usd":{"jane":"1"}}]}"#, "rules[0].limits_usd.jane`: not a key_id or hashed value"),
            (r#"{"rules":[{"dimension":"team","limits_usd":{"has space":"1"}}]}"#, "rules[0].limits_usd.has space`: no call can have this value"),
            (r#"{"rules":[{"dimension":"team"}]}"#, "field `budgets.rules[0].limits_usd`: a rule needs"),
            (r#"{"reserve_usd":"lots"}"#, "field `budgets.reserve_usd`"),
        ] {
            let err = ConfigError::from(parse(json).unwrap_err()).to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
        let many: Vec<String> = (0..=MAX_RULES)
            .map(|_| r#"{"dimension":"team","default_limit_usd":"1"}"#.to_owned())
            .collect();
        let err = parse(&format!(r#"{{"rules":[{}]}}"#, many.join(","))).unwrap_err();
        assert_eq!(err, BudgetConfigError::TooManyRules);
        // A hashed dimension takes hashes.
        assert!(
            parse(r#"{"rules":[{"dimension":"user","limits_usd":{"0123456789ab":"1"}}]}"#).is_ok()
        );
    }

    #[test]
    fn a_shadow_rule_admits_over_its_limit_and_names_what_it_would_refuse() {
        let b = parse(
            r#"{"rules":[{"dimension":"team","default_limit_usd":"1","mode":"shadow","period":"month"}],"reserve_usd":"0"}"#,
        )
        .unwrap();
        let c = b.charges(&facts(None, Some("search"), "m")).remove(0);
        let now = NOV_25_2026_NOON_MS;
        let ledger = Ledger::default().settle(&b, &c, usd("1.5"), now).0;
        let Decision::WouldExceed(next, rejection) = ledger.admit(&b, &c, now) else {
            panic!("a shadow rule never refuses");
        };
        assert_eq!(next.spent, usd("1.5"));
        let mark = rejection.mark();
        assert_eq!(
            (
                mark.dimension.as_str(),
                mark.value.as_str(),
                mark.period,
                mark.limit_usd.as_str(),
                mark.spent_usd.as_str()
            ),
            ("team", "search", "month", "1", "1.5")
        );
        let json = serde_json::to_string(&mark).unwrap();
        assert!(!json.contains("percent"), "{json}");
    }

    #[test]
    fn unpriced_deny_refuses_only_while_an_enforced_rule_applies() {
        let b = parse(ISSUE_RULES).unwrap();
        let mut f = facts(Some("3f2a9c1b7e44"), Some("search"), "acme/secret-model");
        f.priced = false;
        let refusal = b.unpriced_refusal(&f, &b.charges(&f)).unwrap();
        assert_eq!(refusal.dimension, "team");
        let body: serde_json::Value = serde_json::from_str(&refusal.body_json()).unwrap();
        assert_eq!(body["error"]["code"], "unpriced_model_refused");
        assert_eq!(body["error"]["model"], "acme/secret-model");
        assert_eq!(body["error"]["value"], "search");
        // Only the shadow key rule applies: it never refuses, so neither does `unpriced`.
        let mut shadow_only = facts(Some("3f2a9c1b7e44"), None, "acme/secret-model");
        shadow_only.priced = false;
        assert_eq!(
            b.unpriced_refusal(&shadow_only, &b.charges(&shadow_only)),
            None
        );
        // Priced, or no rule, or the model unknown, or `allow`: no refusal.
        assert_eq!(
            b.unpriced_refusal(
                &facts(None, Some("a"), "m"),
                &b.charges(&facts(None, Some("a"), "m"))
            ),
            None
        );
        let mut no_model = f.clone();
        no_model.model = None;
        assert_eq!(b.unpriced_refusal(&no_model, &b.charges(&f)), None);
        let allow = parse(r#"{"rules":[{"dimension":"team","default_limit_usd":"1"}]}"#).unwrap();
        assert_eq!(allow.unpriced_refusal(&f, &allow.charges(&f)), None);
    }

    #[test]
    fn the_rejection_names_the_dimension_value_and_period_never_a_key() {
        let b =
            parse(r#"{"rules":[{"dimension":"team","default_limit_usd":"1","period":"month"}]}"#)
                .unwrap();
        let c = b.charges(&facts(None, Some("search"), "m")).remove(0);
        let now = NOV_25_2026_NOON_MS;
        let ledger = Ledger::default().settle(&b, &c, usd("1.5"), now).0;
        let rejection = refused(ledger.admit(&b, &c, now));
        let body: serde_json::Value = serde_json::from_str(&rejection.body_json()).unwrap();
        let error = &body["error"];
        assert_eq!(error["code"], "budget_exceeded");
        assert_eq!(error["type"], "insufficient_quota");
        assert_eq!(
            (&error["dimension"], &error["value"]),
            (&"team".into(), &"search".into())
        );
        assert_eq!(error["spent_usd"], "1.5");
        assert_eq!(error["limit_usd"], "1");
        assert_eq!(error["period"], "month");
        assert!(error.get("key_id").is_none());
        assert_eq!(
            error["message"],
            "llm-cost: spend limit reached for team search: 1.5 USD spent of 1 USD this month (UTC)"
        );
        assert!(rejection
            .headers()
            .contains(&("retry-after", format!("{}", 5 * 86_400 + 12 * 3600))));
        // A key_id rule keeps the `key_id` field (the hash).
        let b = budgets("none", "0");
        let rejection = refused(
            Ledger::default()
                .settle(&b, &charge("1"), usd("1"), now)
                .0
                .admit(&b, &charge("1"), now),
        );
        let body: serde_json::Value = serde_json::from_str(&rejection.body_json()).unwrap();
        assert_eq!(body["error"]["key_id"], "0123456789ab");
        assert_eq!(body["error"]["dimension"], "key_id");
    }
}
