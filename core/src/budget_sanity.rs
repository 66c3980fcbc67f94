//! Budget rules that load but cannot mean what they say: the warnings a host logs at configure.
//!
//! A configuration error stops the load (`budget::BudgetConfigError`); these do not, because the
//! rules still work as written — only not as their author most likely meant:
//!
//! - a limit smaller than `reserve_usd`: one call in flight holds more than the whole limit, so
//!   every concurrent call on that value is refused;
//! - a rule whose `period` is `"none"`: spend never starts again from zero (and, kept in host
//!   memory, it is lost on every restart);
//! - a rule on a dimension nothing fills where the check happens: with the check at the request
//!   headers (`hold_headers: false` or `inject_usage: false`) a dimension read only from `body:`
//!   sources never has a value, and `model` has one only for Gemini's native API (model in the path).
//!
//! Not here: logging (the host does it), the rules themselves (`budget`).

use alloc::{format, string::String, vec::Vec};
use core::fmt;

use crate::attribution::{Attribution, Source};
use crate::budget::{Budgets, Period, RuleDimension};
use crate::money::Usd;

/// One budget rule that loads but will not behave as its author probably expects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BudgetWarning {
    /// A limit (not zero) smaller than `reserve_usd`.
    ReserveOverLimit {
        /// The limit's field below `budgets` (`rules[0].limits_usd.search`).
        field: String,
        /// The limit.
        limit: Usd,
        /// `reserve_usd`.
        reserve: Usd,
    },
    /// A rule with limits and `period: "none"` (the default).
    NeverResets {
        /// The period's field below `budgets` (`rules[0].period`).
        field: String,
    },
    /// A rule on a dimension no source fills when the budget check runs.
    NeverFilled {
        /// The dimension's field below `budgets` (`rules[0].dimension`).
        field: String,
        /// The dimension.
        dimension: String,
        /// Why it stays empty.
        why: Unfilled,
    },
}

/// Why a rule's dimension has no value when the check runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unfilled {
    /// Every source is `body:`, and the check runs at the request headers.
    BodyOnlyAtHeaders,
    /// `model` at the request headers: known there only for Gemini (model in the path).
    ModelAtHeaders,
}

impl fmt::Display for BudgetWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BudgetWarning::ReserveOverLimit { field, limit, reserve } => write!(
                f,
                "field `budgets.{field}`: the limit {limit} USD is smaller than `budgets.reserve_usd` ({reserve} USD): one call in flight holds more than the whole limit, so concurrent calls on this value are refused; lower reserve_usd or raise the limit"
            ),
            BudgetWarning::NeverResets { field } => write!(
                f,
                "field `budgets.{field}`: \"none\" (the default) never starts spend again from zero; set \"day\" or \"month\""
            ),
            BudgetWarning::NeverFilled { field, dimension, why } => match why {
                Unfilled::BodyOnlyAtHeaders => write!(
                    f,
                    "field `budgets.{field}`: `{dimension}` is read only from the request body, but with `hold_headers: false` or `inject_usage: false` the budget check runs at the request headers: this rule never matches"
                ),
                Unfilled::ModelAtHeaders => write!(
                    f,
                    "field `budgets.{field}`: with `hold_headers: false` or `inject_usage: false` the budget check runs at the request headers, where `model` is known only for Gemini's native API: this rule matches no other call"
                ),
            },
        }
    }
}

/// The warnings for `budgets` under `attribution`; `check_at_headers`: the host decides before the
/// request body is read (for the Envoy filter: `!(inject_usage && hold_headers)`).
pub fn warnings(
    budgets: &Budgets,
    attribution: &Attribution,
    check_at_headers: bool,
) -> Vec<BudgetWarning> {
    let mut out = Vec::new();
    for rule in &budgets.rules {
        let at = &rule.at;
        let limits = rule
            .limits
            .iter()
            .map(|(value, limit)| (format!("{at}limits_usd.{value}"), *limit))
            .chain(
                rule.default_limit
                    .map(|limit| (format!("{at}default_limit_usd"), limit)),
            );
        for (field, limit) in limits {
            // A zero limit refuses every call on purpose: the reservation does not matter there.
            if limit != Usd::ZERO && limit < budgets.reserve {
                out.push(BudgetWarning::ReserveOverLimit {
                    field,
                    limit,
                    reserve: budgets.reserve,
                });
            }
        }
        if rule.period == Period::None {
            out.push(BudgetWarning::NeverResets {
                field: format!("{at}period"),
            });
        }
        if !check_at_headers {
            continue;
        }
        let why = match &rule.dimension {
            RuleDimension::Model => Some(Unfilled::ModelAtHeaders),
            RuleDimension::Attribute(name) => attribution
                .dimensions
                .iter()
                .find(|d| &d.name == name)
                .filter(|d| d.sources.iter().all(|s| matches!(s, Source::Body(_))))
                .map(|_| Unfilled::BodyOnlyAtHeaders),
            RuleDimension::KeyId | RuleDimension::Provider => None,
        };
        if let Some(why) = why {
            out.push(BudgetWarning::NeverFilled {
                field: format!("{at}dimension"),
                dimension: rule.dimension.as_str().into(),
                why,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MeterConfig;
    use alloc::string::ToString;

    fn warned(json: &str) -> Vec<String> {
        let config = MeterConfig::from_json(json.as_bytes()).expect("valid configuration");
        config
            .budget_warnings()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn sane_rules_give_no_warning() {
        let json = r#"{"attribution":{"dimensions":{"team":{"from":["header:x-team"]}}},
            "budgets":{"reserve_usd":"0.05","rules":[
              {"dimension":"team","limits_usd":{"search":"500","blocked":"0"},"period":"month"},
              {"dimension":"model","default_limit_usd":"10","period":"day"}]}}"#;
        assert_eq!(warned(json), Vec::<String>::new());
    }

    #[test]
    fn a_limit_below_the_reservation_is_named() {
        let json = r#"{"budgets":{"reserve_usd":"0.50","rules":[
              {"dimension":"key_id","limits_usd":{"3f2a9c1b7e44":"0.25"},"default_limit_usd":"1","period":"day"}]}}"#;
        assert_eq!(
            warned(json),
            ["field `budgets.rules[0].limits_usd.3f2a9c1b7e44`: the limit 0.25 USD is smaller than `budgets.reserve_usd` (0.5 USD): one call in flight holds more than the whole limit, so concurrent calls on this value are refused; lower reserve_usd or raise the limit"]
        );
    }

    #[test]
    fn the_default_reservation_counts_against_a_default_limit() {
        // reserve_usd left out: 0.01.
        let json = r#"{"budgets":{"period":"month","default_limit_usd":"0.005"}}"#;
        let w = warned(json);
        assert_eq!(w.len(), 1);
        assert!(w[0].starts_with("field `budgets.default_limit_usd`: the limit 0.005 USD is smaller than `budgets.reserve_usd` (0.01 USD)"), "{w:?}");
    }

    #[test]
    fn a_period_left_at_none_is_named() {
        let json = r#"{"budgets":{"rules":[
              {"dimension":"provider","limits_usd":{"openai":"5"},"period":"month"},
              {"dimension":"key_id","default_limit_usd":"5"}]}}"#;
        assert_eq!(
            warned(json),
            ["field `budgets.rules[1].period`: \"none\" (the default) never starts spend again from zero; set \"day\" or \"month\""]
        );
        // The top-level form names its own field.
        assert_eq!(
            warned(r#"{"budgets":{"default_limit_usd":"5"}}"#),
            ["field `budgets.period`: \"none\" (the default) never starts spend again from zero; set \"day\" or \"month\""]
        );
    }

    #[test]
    fn a_body_only_dimension_checked_at_the_headers_is_named() {
        let rules = r#""budgets":{"rules":[
              {"dimension":"feature","default_limit_usd":"5","period":"day"},
              {"dimension":"team","default_limit_usd":"5","period":"day"},
              {"dimension":"model","default_limit_usd":"5","period":"day"}]}"#;
        let attribution = r#""attribution":{"dimensions":{
              "feature":{"from":["body:metadata.feature"]},
              "team":{"from":["body:metadata.team","header:x-team"]}}}"#;
        // The body is held (the default): every rule can match.
        assert_eq!(
            warned(&format!("{{{attribution},{rules}}}")),
            Vec::<String>::new()
        );
        for switch in [r#""hold_headers":false"#, r#""inject_usage":false"#] {
            let w = warned(&format!("{{{switch},{attribution},{rules}}}"));
            assert_eq!(w.len(), 2, "{w:?}");
            assert!(w[0].starts_with("field `budgets.rules[0].dimension`: `feature` is read only from the request body"), "{w:?}");
            assert!(w[1].starts_with("field `budgets.rules[2].dimension`: with `hold_headers: false` or `inject_usage: false` the budget check runs at the request headers, where `model` is known only for Gemini"), "{w:?}");
        }
    }

    #[test]
    fn no_budgets_no_warnings() {
        assert_eq!(warned("{}"), Vec::<String>::new());
    }
}
