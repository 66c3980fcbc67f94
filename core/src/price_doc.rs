//! Live price documents: a price table built at run time from a fetched document.
//!
//! A host (the Envoy filter's root context, the CLI's `pricing fetch`) fetches a document in one
//! of three [`DocFormat`]s and hands the bytes here. [`accept`] parses it with the same loaders as
//! `--pricing FILE` ([`PriceTable::from_json`]), checks it ([`Rejection`] says why not), compares
//! it with the table in use ([`DiffSummary`]) and names it `live-<fetch date>+<content hash>`.
//! Configured `models` overrides and `adjustments` still win: the host installs the table with
//! [`crate::MeterConfig::with_pricing`], which keeps them. The `pricing` configuration section
//! (where to fetch, how often) is [`LivePricing`].

use alloc::{format, string::String, vec::Vec};
use core::fmt;

use serde::Deserialize;

use crate::money::Usd;
use crate::pricing::{
    KeySet, ModelEntry, PriceTable, Prices, PricingError, Supplement, PRICE_KEYS,
};
use crate::sort::stable_sort_by;

/// The shape of a price document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocFormat {
    /// OpenRouter's `/api/v1/models` JSON (`{"data": [...]}`).
    OpenRouter,
    /// LiteLLM's `model_prices_and_context_window.json` (an object keyed by model).
    LiteLlm,
    /// The project's snapshot (`llm-cost pricing import`): OpenRouter's shape, with a date.
    Snapshot,
}

impl DocFormat {
    /// The format named `name` (`openrouter`, `litellm`, `snapshot`), as in the configuration.
    pub fn from_name(name: &str) -> Option<DocFormat> {
        match name {
            "openrouter" => Some(DocFormat::OpenRouter),
            "litellm" => Some(DocFormat::LiteLlm),
            "snapshot" => Some(DocFormat::Snapshot),
            _ => None,
        }
    }

    /// Its configuration name.
    pub fn name(self) -> &'static str {
        match self {
            DocFormat::OpenRouter => "openrouter",
            DocFormat::LiteLlm => "litellm",
            DocFormat::Snapshot => "snapshot",
        }
    }

    /// True if its model ids are OpenRouter's (those of the bundled table), so that the bundled
    /// table is a fair baseline for the removed-models check.
    pub fn shares_bundled_ids(self) -> bool {
        !matches!(self, DocFormat::LiteLlm)
    }
}

/// A per-token price above this (USD 1 a token, a million per million tokens) is absurd: e.g. a
/// per-million price written in a per-token field. (Speech models price `prompt` per second or
/// minute: up to USD 0.36 in the bundled snapshot.)
pub const MAX_TOKEN_PRICE: Usd = Usd::from_units(10_u128.pow(crate::money::SCALE));
/// A per-request, per-image or per-search price above this (USD 1,000) is absurd.
pub const MAX_UNIT_PRICE: Usd = Usd::from_units(1_000 * 10_u128.pow(crate::money::SCALE));

/// Why a fetched document was not accepted (the last good table stays).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Not JSON, or not the configured format's shape, or a price is not a decimal.
    Malformed(String),
    /// No model with a non-zero price.
    NoPricedModel,
    /// A price above [`MAX_TOKEN_PRICE`] / [`MAX_UNIT_PRICE`].
    AbsurdPrice {
        /// The model.
        model: String,
        /// The pricing key.
        key: &'static str,
    },
    /// More of the models in use would disappear than `max_removed_percent` allows.
    TooManyRemoved {
        /// Models of the table in use missing from the document.
        removed: usize,
        /// Models of the table in use.
        of: usize,
        /// The configured ceiling.
        max_percent: u8,
    },
}

impl Rejection {
    /// A short stable code for logs and metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Rejection::Malformed(_) => "malformed",
            Rejection::NoPricedModel => "no_priced_model",
            Rejection::AbsurdPrice { .. } => "absurd_price",
            Rejection::TooManyRemoved { .. } => "too_many_removed",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(why) => write!(f, "malformed price document: {why}"),
            Rejection::NoPricedModel => f.write_str("price document has no priced model"),
            Rejection::AbsurdPrice { model, key } => {
                write!(f, "price `{key}` of model `{model}` is absurd")
            }
            Rejection::TooManyRemoved {
                removed,
                of,
                max_percent,
            } => write!(
                f,
                "price document removes {removed} of {of} models (more than {max_percent}%)"
            ),
        }
    }
}

impl From<PricingError> for Rejection {
    fn from(e: PricingError) -> Self {
        Rejection::Malformed(format!("{e}"))
    }
}

/// Models added, removed and re-priced from one table to the next (by id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiffSummary {
    /// In the new table only.
    pub added: usize,
    /// In the old table only.
    pub removed: usize,
    /// In both, with different prices.
    pub repriced: usize,
}

impl DiffSummary {
    /// Compares two tables' entries.
    pub fn between(old: &[ModelEntry], new: &[ModelEntry]) -> DiffSummary {
        // The old ids sorted (the crate's one sort, `crate::sort`), a repeated id counted once
        // with its last prices.
        let mut old: Vec<(&str, &Prices)> =
            old.iter().map(|m| (m.id.as_str(), &m.prices)).collect();
        stable_sort_by(&mut old, |a, b| a.0.cmp(b.0));
        old.dedup_by(|later, earlier| {
            let same = later.0 == earlier.0;
            if same {
                *earlier = *later;
            }
            same
        });
        let mut summary = DiffSummary::default();
        let mut kept = 0;
        for model in new {
            match old.binary_search_by(|(id, _)| (*id).cmp(model.id.as_str())) {
                Err(_) => summary.added += 1,
                Ok(at) => {
                    let prices = old[at].1;
                    kept += 1;
                    if !prices.same_prices(&model.prices) {
                        summary.repriced += 1;
                    }
                }
            }
        }
        summary.removed = old.len().saturating_sub(kept);
        summary
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        *self == DiffSummary::default()
    }
}

impl fmt::Display for DiffSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} added, {} removed, {} re-priced",
            self.added, self.removed, self.repriced
        )
    }
}

/// An accepted document: its table and how it differs from the table in use.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The new table, `live-<date>+<hash>`.
    pub table: PriceTable,
    /// Against the table in use (or against nothing, on a first fetch without a baseline).
    pub diff: DiffSummary,
}

/// Parses `bytes` as a `format` document, without the checks of [`accept`]; `snapshot_id` names
/// the table (`live-<date>` for a fetch).
pub fn parse(format: DocFormat, bytes: &[u8], snapshot_id: &str) -> Result<PriceTable, Rejection> {
    let table = PriceTable::from_json(bytes)?;
    // `from_json` detects the shape; the configured format must be the one found.
    let openrouter_shape = !table.version().starts_with("litellm+");
    if openrouter_shape != format.shares_bundled_ids() {
        return Err(Rejection::Malformed(format!(
            "expected the `{}` format",
            format.name()
        )));
    }
    Ok(PriceTable::from_entries(snapshot_id, table.entries()))
}

/// Checks every price of `entries`: at least one non-zero, none absurd.
pub fn check_prices(entries: &[ModelEntry]) -> Result<(), Rejection> {
    let mut priced = false;
    for model in entries {
        let mut all = Vec::with_capacity(1 + model.prices.long_context.len());
        all.push(&model.prices);
        all.extend(model.prices.long_context.iter().map(|(_, p)| p));
        all.extend(model.prices.time_of_day.iter().map(|w| &w.prices));
        for prices in all {
            for key in PRICE_KEYS {
                let value = prices.get(key);
                priced |= value != Usd::ZERO;
                let ceiling = match key {
                    "request" | "image" | "web_search" => MAX_UNIT_PRICE,
                    _ => MAX_TOKEN_PRICE,
                };
                if value > ceiling {
                    return Err(Rejection::AbsurdPrice {
                        model: model.id.clone(),
                        key,
                    });
                }
            }
        }
    }
    if priced {
        Ok(())
    } else {
        Err(Rejection::NoPricedModel)
    }
}

/// Parses and checks a fetched document: it must parse as `format`, price at least one model,
/// hold no absurd price and, against `baseline` (the table in use, when its ids are comparable),
/// remove at most `max_removed_percent` of its models. `fetched_unix_ms` dates the version.
pub fn accept(
    format: DocFormat,
    bytes: &[u8],
    fetched_unix_ms: u64,
    baseline: Option<&PriceTable>,
    max_removed_percent: u8,
) -> Result<Accepted, Rejection> {
    let date = crate::time::rfc3339_millis(fetched_unix_ms);
    let date = date.get(..10).unwrap_or("unknown");
    let table = with_bundled_supplement(&parse(format, bytes, &format!("live-{date}"))?);
    let entries = table.entries();
    check_prices(&entries)?;
    let diff = match baseline {
        Some(old) => {
            let diff = DiffSummary::between(&old.entries(), &entries);
            let of = old.len();
            // removed / of > max / 100, in integers.
            if diff.removed.saturating_mul(100)
                > of.saturating_mul(usize::from(max_removed_percent))
            {
                return Err(Rejection::TooManyRemoved {
                    removed: diff.removed,
                    of,
                    max_percent: max_removed_percent,
                });
            }
            diff
        }
        None => DiffSummary {
            added: entries.len(),
            ..DiffSummary::default()
        },
    };
    Ok(Accepted { table, diff })
}

/// `table` with the bundled supplement's facts (`pricing-data/supplement.json`: LiteLLM's
/// service-tier, 1-hour cache write, audio, per-second and per-character prices that OpenRouter's
/// data lacks) filled in for the ids it shares with the bundled table, as the bundled table has
/// them, and the supplement's own entries (models OpenRouter does not list) added. The document's own
/// prices win: a key it names is kept. A call priced with an added key says so in `priced_as`
/// (`openai/gpt-5+litellm:gpt-5`). A LiteLLM table (its ids are LiteLLM's, and it is the
/// supplement's own source) is returned as it is. `llm-cost price --pricing` applies the same, so
/// the CLI prices a document as the hosts do.
pub fn with_bundled_supplement(table: &PriceTable) -> PriceTable {
    if table.version().starts_with("litellm+") {
        return table.clone();
    }
    let bundled = PriceTable::bundled();
    let mut entries = table.entries();
    let mut shares_supplemented = false;
    for entry in &mut entries {
        let Some(from) = bundled.get(&entry.id).filter(|b| b.id == entry.id) else {
            continue;
        };
        let Some(supplement) = &from.prices.supplement else {
            continue;
        };
        shares_supplemented = true;
        let mut added = KeySet::default();
        for key in supplement.keys.iter() {
            if !entry.prices.has(key) {
                entry.prices.set(key, from.prices.get(key));
                added.insert(key);
            }
        }
        if added != KeySet::default() {
            let added = Supplement {
                source: supplement.source.clone(),
                keys: added,
            };
            for (_, tier) in &mut entry.prices.long_context {
                tier.supplement = Some(added.clone());
            }
            entry.prices.supplement = Some(added);
        }
    }
    // Entries only the supplement has (tts-1 and tts-1-hd: OpenRouter does not list them), whole,
    // for a document that lists the models the supplement completes (OpenRouter's catalog, not
    // a private list): their supplement marks `prompt` too, which an OpenRouter entry names itself.
    let listed = entries.len();
    for entry in bundled.entries() {
        let whole = entry
            .prices
            .supplement
            .as_ref()
            .is_some_and(|s| s.keys.contains("prompt"));
        if shares_supplemented && whole && !entries[..listed].iter().any(|e| e.id == entry.id) {
            entries.push(entry);
        }
    }
    let version = table.version();
    let id = version.rsplit_once('+').map_or(version, |(id, _)| id);
    PriceTable::from_entries(id, entries)
}

/// The content-hash part of a table version (after the last `+`): equal hashes, equal prices.
pub fn content_hash_of(version: &str) -> &str {
    version.rsplit('+').next().unwrap_or(version)
}

/// The `pricing` configuration section: where live prices come from.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LivePricing {
    /// Where to fetch from; absent: the bundled table only.
    #[serde(default)]
    pub source: Option<PriceSource>,
    /// A document removing more than this percentage of the models in use is rejected.
    #[serde(default = "default_max_removed_percent")]
    pub max_removed_percent: u8,
}

/// `pricing.source`: an Envoy cluster and the request to send it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceSource {
    /// Envoy cluster to call.
    pub cluster: String,
    /// `:authority` of the request.
    pub authority: String,
    /// `:path` of the request.
    pub path: String,
    /// Shape of the document.
    pub format: DocFormat,
    /// Seconds between fetches (a random jitter of up to a tenth is added).
    #[serde(default = "default_refresh_interval_s")]
    pub refresh_interval_s: u64,
    /// Give up on a fetch after this many milliseconds.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn default_max_removed_percent() -> u8 {
    20
}
fn default_refresh_interval_s() -> u64 {
    600
}
fn default_timeout_ms() -> u64 {
    5000
}

/// Bounds of `refresh_interval_s` (1 s to 7 days).
pub const REFRESH_INTERVAL_S: core::ops::RangeInclusive<u64> = 1..=7 * 24 * 3600;
/// Bounds of `timeout_ms` (1 ms to 60 s).
pub const TIMEOUT_MS: core::ops::RangeInclusive<u64> = 1..=60_000;

impl LivePricing {
    /// Parses and validates the `pricing` section (JSON text); errors name the field.
    pub fn from_json(text: &str) -> Result<LivePricing, String> {
        let parsed: LivePricing =
            serde_json::from_str(text).map_err(|e| format!("field `pricing`: {e}"))?;
        if parsed.max_removed_percent > 100 {
            return Err("field `pricing.max_removed_percent`: must be 0 to 100".into());
        }
        if let Some(s) = &parsed.source {
            for (name, value) in [
                ("cluster", &s.cluster),
                ("authority", &s.authority),
                ("path", &s.path),
            ] {
                if value.is_empty() {
                    return Err(format!("field `pricing.source.{name}`: must not be empty"));
                }
            }
            if !s.path.starts_with('/') {
                return Err("field `pricing.source.path`: must start with `/`".into());
            }
            if !REFRESH_INTERVAL_S.contains(&s.refresh_interval_s) {
                return Err(
                    "field `pricing.source.refresh_interval_s`: must be 1 to 604800".into(),
                );
            }
            if !TIMEOUT_MS.contains(&s.timeout_ms) {
                return Err("field `pricing.source.timeout_ms`: must be 1 to 60000".into());
            }
        }
        Ok(parsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    const DAY: u64 = 1_796_169_600_000; // 2026-12-02T00:00:00Z

    fn openrouter(models: &[(&str, &str)]) -> Vec<u8> {
        let data: Vec<String> = models
            .iter()
            .map(|(id, prompt)| {
                format!(
                    r#"{{"id":"{id}","pricing":{{"prompt":"{prompt}","completion":"0.000002"}}}}"#
                )
            })
            .collect();
        format!(r#"{{"data":[{}]}}"#, data.join(",")).into_bytes()
    }

    #[test]
    fn an_accepted_document_is_named_live_date_hash_and_diffed() {
        let old = parse(
            DocFormat::OpenRouter,
            &openrouter(&[("a/x", "0.000001"), ("a/y", "0.000001")]),
            "old",
        )
        .unwrap();
        let doc = openrouter(&[
            ("a/x", "0.000003"),
            ("a/y", "0.000001"),
            ("a/z", "0.000001"),
        ]);
        let ok = accept(DocFormat::OpenRouter, &doc, DAY + 5, Some(&old), 20).unwrap();
        assert!(
            ok.table.version().starts_with("live-2026-12-02+"),
            "{}",
            ok.table.version()
        );
        assert_eq!(
            ok.diff,
            DiffSummary {
                added: 1,
                removed: 0,
                repriced: 1
            }
        );
        assert_eq!(ok.diff.to_string(), "1 added, 0 removed, 1 re-priced");
        assert_eq!(
            ok.table.get("a/x").unwrap().prices.prompt,
            Usd::parse("0.000003").unwrap()
        );
        // Same prices, another day: same content hash.
        let again = accept(
            DocFormat::OpenRouter,
            &doc,
            DAY + 86_400_000,
            Some(&ok.table),
            20,
        )
        .unwrap();
        assert!(again.diff.is_empty());
        assert_eq!(
            content_hash_of(again.table.version()),
            content_hash_of(ok.table.version())
        );
    }

    #[test]
    fn malformed_empty_absurd_and_wrong_format_documents_are_rejected() {
        let reject = |format, doc: &[u8]| accept(format, doc, DAY, None, 20).unwrap_err();
        assert_eq!(
            reject(DocFormat::OpenRouter, b"{\"data\":[").code(),
            "malformed"
        );
        assert_eq!(reject(DocFormat::OpenRouter, b"<html>").code(), "malformed");
        assert_eq!(
            reject(DocFormat::OpenRouter, br#"{"data":[]}"#),
            Rejection::NoPricedModel
        );
        let free = br#"{"data":[{"id":"f","pricing":{"prompt":"0","completion":"0"}}]}"#;
        assert_eq!(
            reject(DocFormat::OpenRouter, free),
            Rejection::NoPricedModel
        );
        let absurd = openrouter(&[("a/x", "2.5")]);
        assert_eq!(
            reject(DocFormat::OpenRouter, &absurd),
            Rejection::AbsurdPrice {
                model: "a/x".into(),
                key: "prompt"
            }
        );
        let negative = br#"{"data":[{"id":"n","pricing":{"prompt":"-0.5","completion":"0"}}]}"#;
        assert_eq!(
            reject(DocFormat::OpenRouter, negative),
            Rejection::NoPricedModel
        );
        let litellm = br#"{"gpt-4o": {"input_cost_per_token": 2.5e-06}}"#;
        assert_eq!(reject(DocFormat::OpenRouter, litellm).code(), "malformed");
        assert!(accept(DocFormat::LiteLlm, litellm, DAY, None, 20).is_ok());
        assert_eq!(
            reject(DocFormat::LiteLlm, &openrouter(&[("a/x", "0.000001")])).code(),
            "malformed"
        );
    }

    #[test]
    fn removing_more_than_the_allowed_share_of_models_is_rejected() {
        let ids: Vec<String> = (0..10).map(|i| format!("m/{i}")).collect();
        let all: Vec<(&str, &str)> = ids.iter().map(|id| (id.as_str(), "0.000001")).collect();
        let old = parse(DocFormat::OpenRouter, &openrouter(&all), "old").unwrap();
        // 2 of 10 removed: 20% is allowed; 3 is not.
        assert!(accept(
            DocFormat::OpenRouter,
            &openrouter(&all[2..]),
            DAY,
            Some(&old),
            20
        )
        .is_ok());
        assert_eq!(
            accept(
                DocFormat::OpenRouter,
                &openrouter(&all[3..]),
                DAY,
                Some(&old),
                20
            )
            .unwrap_err(),
            Rejection::TooManyRemoved {
                removed: 3,
                of: 10,
                max_percent: 20
            }
        );
        assert!(accept(
            DocFormat::OpenRouter,
            &openrouter(&all[9..]),
            DAY,
            Some(&old),
            100
        )
        .is_ok());
    }

    #[test]
    fn a_live_openrouter_document_gets_the_bundled_supplement_for_what_it_lacks() {
        // gpt-5 as OpenRouter lists it (no tier prices), plus its own `prompt_priority`.
        let doc = br#"{"data":[{"id":"openai/gpt-5","pricing":{"prompt":"0.00000125",
            "completion":"0.00001","input_cache_read":"0.000000125","prompt_priority":"0.000003"}},
            {"id":"a/private","pricing":{"prompt":"0.000001","completion":"0.000002"}}]}"#;
        let accepted = accept(DocFormat::OpenRouter, doc, DAY, None, 100).unwrap();
        assert!(accepted.table.version().starts_with("live-2026-12-02+"));
        let gpt5 = accepted.table.get("openai/gpt-5").unwrap().prices;
        // Filled from supplement.json (LiteLLM `gpt-5`), marked as such.
        assert_eq!(
            gpt5.known("prompt_flex"),
            Some(Usd::parse("0.000000625").unwrap())
        );
        assert_eq!(
            gpt5.known("completion_batch"),
            Some(Usd::parse("0.000005").unwrap())
        );
        let from = gpt5.supplement.as_ref().expect("supplemented");
        assert_eq!(from.source, "litellm:gpt-5");
        assert!(from.keys.contains("prompt_flex"));
        // The document's own price wins, and is not the supplement's.
        assert_eq!(gpt5.get("prompt_priority"), Usd::parse("0.000003").unwrap());
        assert!(!from.keys.contains("prompt_priority"));
        // A model the bundled table does not know is left as it is.
        let private = accepted.table.get("a/private").unwrap().prices;
        assert_eq!(private.supplement, None);
        // The bundled document itself, fetched live, is the bundled table again.
        let bundled = PriceTable::bundled();
        let fetched = accept(
            DocFormat::Snapshot,
            include_bytes!("../../pricing-data/bundled.json"),
            DAY,
            Some(&bundled),
            100,
        )
        .unwrap();
        assert_eq!(
            content_hash_of(fetched.table.version()),
            content_hash_of(bundled.version())
        );
        // A LiteLLM document is its own source: nothing is added.
        let litellm = br#"{"gpt-5":{"input_cost_per_token":1e-6,"output_cost_per_token":2e-6}}"#;
        let table = accept(DocFormat::LiteLlm, litellm, DAY, None, 100)
            .unwrap()
            .table;
        assert_eq!(table.get("gpt-5").unwrap().prices.supplement, None);
    }

    #[test]
    fn the_bundled_snapshot_passes_its_own_checks() {
        // The bundled table is `bundled.json` with `supplement.json`'s prices for keys it lacks.
        let mut doc: serde_json::Value =
            serde_json::from_slice(include_bytes!("../../pricing-data/bundled.json")).unwrap();
        let supplement: serde_json::Value =
            serde_json::from_slice(include_bytes!("../../pricing-data/supplement.json")).unwrap();
        for model in doc["data"].as_array_mut().unwrap() {
            let added = &supplement["models"][model["id"].as_str().unwrap()]["pricing"];
            for (key, value) in added.as_object().into_iter().flatten() {
                let pricing = model["pricing"].as_object_mut().unwrap();
                pricing.entry(key.clone()).or_insert(value.clone());
            }
        }
        let text = serde_json::to_vec(&doc).unwrap();
        let bundled = PriceTable::bundled();
        let ok = accept(DocFormat::Snapshot, &text, DAY, Some(&bundled), 0).unwrap();
        assert!(ok.diff.is_empty(), "{}", ok.diff);
        assert_eq!(
            content_hash_of(ok.table.version()),
            content_hash_of(bundled.version())
        );
    }

    #[test]
    fn the_pricing_section_parses_with_defaults_and_bounds() {
        let text = r#"{"source": {"cluster": "llm_cost_pricing", "authority": "openrouter.ai",
            "path": "/api/v1/models", "format": "openrouter", "refresh_interval_s": 600,
            "timeout_ms": 5000}, "max_removed_percent": 20}"#;
        let live = LivePricing::from_json(text).unwrap();
        let source = live.source.unwrap();
        assert_eq!(
            (source.format, source.refresh_interval_s, source.timeout_ms),
            (DocFormat::OpenRouter, 600, 5000)
        );
        let short =
            r#"{"source": {"cluster": "c", "authority": "a", "path": "/p", "format": "litellm"}}"#;
        let live = LivePricing::from_json(short).unwrap();
        assert_eq!(live.max_removed_percent, 20);
        assert_eq!(live.source.unwrap().refresh_interval_s, 600);
        for (bad, field) in [
            (r#"{"max_removed_percent": 101}"#, "max_removed_percent"),
            (
                r#"{"source": {"cluster": "c", "authority": "a", "path": "/p", "format": "csv"}}"#,
                "pricing",
            ),
            (
                r#"{"source": {"cluster": "", "authority": "a", "path": "/p", "format": "snapshot"}}"#,
                "cluster",
            ),
            (
                r#"{"source": {"cluster": "c", "authority": "a", "path": "p", "format": "snapshot"}}"#,
                "path",
            ),
            (
                r#"{"source": {"cluster": "c", "authority": "a", "path": "/p", "format": "snapshot", "refresh_interval_s": 0}}"#,
                "refresh_interval_s",
            ),
            (
                r#"{"source": {"cluster": "c", "authority": "a", "path": "/p", "format": "snapshot", "timeout_ms": 0}}"#,
                "timeout_ms",
            ),
            (r#"{"sauce": {}}"#, "pricing"),
        ] {
            let err = LivePricing::from_json(bad).unwrap_err();
            assert!(err.contains(field), "{bad}: {err}");
        }
        assert_eq!(DocFormat::from_name("snapshot"), Some(DocFormat::Snapshot));
        // In the meter configuration: parsed by every host, refused with the field named, and
        // dropped with a warning by a host without cluster calls.
        let config =
            crate::MeterConfig::from_json(format!(r#"{{"pricing": {text}}}"#).as_bytes()).unwrap();
        assert_eq!(config.live_pricing.unwrap().max_removed_percent, 20);
        let err = crate::MeterConfig::from_json(br#"{"pricing": {"max_removed_percent": 200}}"#)
            .unwrap_err();
        assert!(
            err.to_string().contains("pricing.max_removed_percent"),
            "{err}"
        );
        let no_calls = crate::HostSupport {
            name: "h",
            hold_headers_setting: true,
            shared_counters: true,
            collector: false,
        };
        let (config, warnings) =
            crate::MeterConfig::for_host(format!(r#"{{"pricing": {text}}}"#).as_bytes(), &no_calls)
                .unwrap();
        assert!(config.live_pricing.is_none());
        assert!(
            warnings[0].to_string().contains("`pricing`"),
            "{warnings:?}"
        );
        assert_eq!(DocFormat::from_name("xml"), None);
    }
}
