//! Per-model price overrides (`models` in the configuration), applied to a price table.
//!
//! An override can never price a call below what it says, nor silently leave a component at 0:
//! - keyed by a model the table has (by any name a table lookup accepts: id, canonical slug,
//!   alias — `model_names`), it **merges** with that entry: the prices it names replace the
//!   entry's, every other price stays the table's. The entry's long-context tiers and time
//!   windows keep the prices they set themselves and follow the override for the ones they
//!   inherit from the base price;
//! - keyed by a model the table lacks, it must price the billed components `prompt` and
//!   `completion`, or the configuration is refused at load time;
//! - two keys naming the same table entry are refused (which one would win is not obvious);
//! - [`AppliedOverrides::changed`] lists only entries whose prices actually differ from the
//!   table's, so `pricing_version` gains `+cfg-…` only when a price changes.

use alloc::{borrow::ToOwned, collections::BTreeMap, format, string::String, vec::Vec};

use crate::config::ConfigError;
use crate::model_names;
use crate::money::Usd;
use crate::pricing::{ModelEntry, PriceTable, Priced, Prices, PRICE_KEYS};
use crate::provider::Provider;
use crate::sort::{sorted_get, sorted_insert};

/// The components a model the table lacks must price: every call bills them.
pub const BILLED_KEYS: [&str; 2] = ["prompt", "completion"];

/// One `models` entry as written: the prices it names, by OpenRouter pricing key.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelOverride {
    /// Price per key named (USD per token; per request for `request`), in key order, each key
    /// once (a list: a `BTreeMap` of this type cost 4 KB of `.wasm`).
    pub prices: Vec<(&'static str, Usd)>,
}

impl ModelOverride {
    /// Parses `{key: decimal}` for the entry `model`; errors name the field.
    pub fn parse(model: &str, prices: &BTreeMap<String, String>) -> Result<Self, ConfigError> {
        // `prices` is a map: its keys come sorted and once each, and so do the `PRICE_KEYS`
        // entries equal to them.
        let mut parsed = Vec::new();
        for (key, value) in prices {
            let Some(key) = PRICE_KEYS.iter().copied().find(|k| *k == key) else {
                return Err(ConfigError(format!(
                    "field `models.{model}.{key}`: unknown price key (expected one of {})",
                    PRICE_KEYS.join(", ")
                )));
            };
            let usd = Usd::parse(value).map_err(|e| {
                ConfigError(format!("field `models.{model}.{key}`: {value:?} is {e}"))
            })?;
            parsed.push((key, usd));
        }
        Ok(ModelOverride { prices: parsed })
    }

    /// `base` with the named prices replaced; a tier's or window's price that equals the base's
    /// (inherited) follows the override, one the tier sets itself stays.
    pub fn merged_into(&self, base: &Prices) -> Prices {
        let mut merged = base.clone();
        for (key, value) in &self.prices {
            let table_base = base.get(key);
            merged.set(key, *value);
            // The configuration's price is no longer the supplement's.
            if let Some(supplement) = &mut merged.supplement {
                supplement.keys.remove(key);
            }
            // A service-tier price is the base entry's only: conditional prices never inherit it.
            if crate::pricing::tier_of_key(key).is_some() {
                continue;
            }
            for (_, tier) in &mut merged.long_context {
                if tier.get(key) == table_base {
                    tier.set(key, *value);
                }
            }
            for window in &mut merged.time_of_day {
                if window.prices.get(key) == table_base {
                    window.prices.set(key, *value);
                }
            }
        }
        merged
    }

    /// The prices of a model the table lacks, or why they cannot be used.
    fn standalone(&self, model: &str) -> Result<Prices, ConfigError> {
        let missing: Vec<&str> = BILLED_KEYS
            .iter()
            .copied()
            .filter(|k| !self.prices.iter().any(|(set, _)| set == k))
            .collect();
        if !missing.is_empty() {
            return Err(ConfigError(format!(
                "field `models.{model}`: the price table has no model `{model}` (by id, slug or alias), \
                 so its entry must price {} (missing: {}); a model the table has takes the table's \
                 price for what its entry leaves out (`llm-cost pricing show MODEL` shows the name \
                 the table knows)",
                BILLED_KEYS.join(" and "),
                missing.join(", ")
            )));
        }
        Ok(self.merged_into(&Prices::default()))
    }
}

/// Where the prices of a call came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PriceSource {
    /// The table entry as it stands.
    Table,
    /// The table entry with the `models` entry `key` merged in.
    Merged {
        /// The `models` key as written.
        key: String,
        /// The price keys it names.
        keys: Vec<&'static str>,
    },
    /// The `models` entry `key` alone (a model the table lacks).
    Config {
        /// The `models` key as written.
        key: String,
    },
}

/// A model name resolved to its prices, with where they came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The id (`priced_as`) and the prices that apply.
    pub priced: Priced,
    /// Table, table + override, or override alone.
    pub source: PriceSource,
}

/// A table entry an override changed: (the `models` key, the names it sets, the merged prices,
/// changed?).
type MergedEntry = (String, Vec<&'static str>, Prices, bool);

/// The overrides of one configuration applied to one price table.
#[derive(Clone, Debug, Default)]
pub struct AppliedOverrides {
    /// Table entry id → (the `models` key, the names it sets, the merged prices, changed?).
    /// Sorted by id (`crate::sort`'s sorted list: a `BTreeMap` costs 4 KB of `.wasm`).
    merged: Vec<(String, MergedEntry)>,
    /// `models` key → prices, for models the table lacks.
    /// Sorted by key.
    standalone: Vec<(String, Prices)>,
}

/// Table lookups of an override key: as written (id, slug, undated, dotted, bare) and with each
/// provider's prefix (`gpt-4o` means `openai/gpt-4o`; `claude-…` `anthropic/…`).
const KEY_PROVIDERS: [Provider; 3] = [Provider::Unknown, Provider::Anthropic, Provider::Gemini];

impl AppliedOverrides {
    /// Applies `overrides` to `table`; refuses a model the table lacks without billed prices,
    /// and two keys for one table entry.
    pub fn new(
        table: &PriceTable,
        overrides: &BTreeMap<String, ModelOverride>,
    ) -> Result<Self, ConfigError> {
        let mut applied = AppliedOverrides::default();
        for (key, entry) in overrides {
            let target = KEY_PROVIDERS
                .iter()
                .find_map(|p| model_names::resolve(table, key, *p));
            match target {
                Some(found) => {
                    if let Some((other, ..)) = sorted_get(&applied.merged, &found.id) {
                        return Err(ConfigError(format!(
                            "field `models.{key}`: `{other}` and `{key}` both name the table's `{}`; keep one",
                            found.id
                        )));
                    }
                    let prices = entry.merged_into(&found.prices);
                    let changed = prices != found.prices;
                    let keys = entry.prices.iter().map(|(k, _)| *k).collect();
                    sorted_insert(
                        &mut applied.merged,
                        found.id,
                        (key.clone(), keys, prices, changed),
                    );
                }
                None => {
                    sorted_insert(&mut applied.standalone, key.clone(), entry.standalone(key)?);
                }
            }
        }
        Ok(applied)
    }

    /// The entries whose prices differ from `table`'s (effective prices, for the version hash).
    pub fn changed(&self) -> Vec<ModelEntry> {
        let merged = self
            .merged
            .iter()
            .filter(|(_, (.., changed))| *changed)
            .map(|(id, (_, _, prices, _))| (id, prices));
        merged
            .chain(self.standalone.iter().map(|(id, prices)| (id, prices)))
            .map(|(id, prices)| ModelEntry {
                id: id.clone(),
                canonical_slug: String::new(),
                prices: prices.clone(),
            })
            .collect()
    }

    /// The prices for `model` answered by `provider`, by the table's name rules
    /// (`model_names`), each candidate name tried against the overrides and then the table.
    pub fn resolve(&self, table: &PriceTable, model: &str, provider: Provider) -> Option<Resolved> {
        for name in model_names::candidates(model, provider) {
            if let Some(prices) = sorted_get(&self.standalone, &name) {
                return Some(Resolved {
                    priced: Priced {
                        id: name.clone(),
                        prices: prices.clone(),
                    },
                    source: PriceSource::Config { key: name },
                });
            }
            let Some(entry) = table.get(&name) else {
                continue;
            };
            return Some(match sorted_get(&self.merged, &entry.id) {
                Some((key, keys, prices, _)) => Resolved {
                    priced: Priced {
                        id: entry.id,
                        prices: prices.clone(),
                    },
                    source: PriceSource::Merged {
                        key: key.to_owned(),
                        keys: keys.clone(),
                    },
                },
                None => Resolved {
                    priced: entry,
                    source: PriceSource::Table,
                },
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MeterConfig;
    use alloc::string::ToString;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn config(json: &str) -> Result<MeterConfig, ConfigError> {
        MeterConfig::from_json(json.as_bytes())
    }

    fn table_prices(model: &str) -> Prices {
        PriceTable::bundled().get(model).expect("bundled").prices
    }

    #[test]
    fn a_partial_entry_keeps_the_table_price_of_what_it_leaves_out() {
        let c = config(r#"{"models":{"openai/gpt-5-mini":{"prompt":"0.000001"}}}"#).unwrap();
        let r = c
            .resolve_model("openai/gpt-5-mini", Provider::OpenRouter)
            .unwrap();
        let table = table_prices("openai/gpt-5-mini");
        assert_eq!(r.priced.prices.prompt, usd("0.000001"));
        assert_ne!(table.completion, Usd::ZERO);
        assert_eq!(r.priced.prices.completion, table.completion);
        assert_eq!(r.priced.prices.input_cache_read, table.input_cache_read);
        assert_eq!(
            r.source,
            PriceSource::Merged {
                key: "openai/gpt-5-mini".into(),
                keys: alloc::vec!["prompt"]
            }
        );
    }

    #[test]
    fn a_bare_or_aliased_key_overrides_the_entry_a_call_resolves_to() {
        // Keyed by the table id; OpenRouter answers with the dated slug.
        let c = config(r#"{"models":{"anthropic/claude-sonnet-4.6":{"prompt":"0.001"}}}"#).unwrap();
        let r = c
            .resolve_model("anthropic/claude-4.6-sonnet-20260217", Provider::OpenRouter)
            .unwrap();
        assert_eq!(r.priced.id, "anthropic/claude-sonnet-4.6");
        assert_eq!(r.priced.prices.prompt, usd("0.001"));
        // Keyed by the bare name; the call comes through OpenRouter (prefixed) or OpenAI (bare).
        let c = config(r#"{"models":{"gpt-4o":{"completion":"0.5"}}}"#).unwrap();
        for (model, provider) in [
            ("openai/gpt-4o", Provider::OpenRouter),
            ("gpt-4o", Provider::OpenAi),
        ] {
            let r = c.resolve_model(model, provider).unwrap();
            assert_eq!(r.priced.id, "openai/gpt-4o", "{model}");
            assert_eq!(r.priced.prices.completion, usd("0.5"), "{model}");
        }
    }

    #[test]
    fn a_model_the_table_lacks_must_price_prompt_and_completion() {
        let err = config(r#"{"models":{"acme/private-1":{"prompt":"0.000001"}}}"#).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("field `models.acme/private-1`"), "{text}");
        assert!(text.contains("missing: completion"), "{text}");
        let ok = config(
            r#"{"models":{"acme/private-1":{"prompt":"0.000001","completion":"0.000002"}}}"#,
        )
        .unwrap();
        let r = ok
            .resolve_model("acme/private-1", Provider::OpenAi)
            .unwrap();
        assert_eq!(
            r.source,
            PriceSource::Config {
                key: "acme/private-1".into()
            }
        );
    }

    #[test]
    fn two_keys_for_one_entry_are_refused() {
        let err = config(r#"{"models":{"gpt-4o":{"prompt":"1"},"openai/gpt-4o":{"prompt":"2"}}}"#)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("both name the table's `openai/gpt-4o`"),
            "{err}"
        );
    }

    #[test]
    fn the_version_changes_only_when_a_price_does() {
        let bundled = PriceTable::bundled().version().to_owned();
        let same = table_prices("openai/gpt-4o").prompt.to_decimal_string();
        let c = config(&format!(
            r#"{{"models":{{"gpt-4o":{{"prompt":"{same}"}}}}}}"#
        ))
        .unwrap();
        assert_eq!(c.pricing_version(), bundled);
        let c = config(r#"{"models":{"gpt-4o":{"prompt":"0.1"}}}"#).unwrap();
        assert!(c
            .pricing_version()
            .starts_with(&(bundled.clone() + "+cfg-")));
        // The same effective price written under another name hashes the same.
        let d = config(r#"{"models":{"openai/gpt-4o":{"prompt":"0.1"}}}"#).unwrap();
        assert_eq!(c.pricing_version(), d.pricing_version());
    }

    #[test]
    fn tiers_follow_the_override_for_inherited_prices_and_keep_their_own() {
        let mut base = Prices {
            prompt: usd("0.000001"),
            completion: usd("0.000002"),
            ..Prices::default()
        };
        let tier = Prices {
            prompt: usd("0.000003"),
            ..base.clone()
        };
        base.long_context.push((200_000, tier));
        let set = alloc::vec![
            ("completion", usd("0.000004")),
            ("prompt", usd("0.0000005")),
        ];
        let merged = ModelOverride { prices: set }.merged_into(&base);
        let (_, tier) = &merged.long_context[0];
        assert_eq!(tier.prompt, usd("0.000003")); // the tier's own price
        assert_eq!(tier.completion, usd("0.000004")); // inherited: follows the override
        assert_eq!(merged.prompt, usd("0.0000005"));
    }
}
