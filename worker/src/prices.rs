//! Live prices for the Worker, the decisions: which price source to fetch (`PRICES_URL`,
//! `PRICES_FORMAT`, …), whether a fetched document replaces the one in KV, and the configuration
//! an isolate prices with once it reads a stored document. The checks are the core's
//! (`llm_cost_core::price_doc::accept`: the same as the Envoy filter's live pricing).
//!
//! Pure code: host-tested. The runtime half (the Cron Trigger and the KV reads) is `live_prices`.
//!
//! KV holds two keys: [`VERSION_KEY`] (the accepted table's version, small: what isolates poll)
//! and [`DOCUMENT_KEY`] (`<fetch Unix ms>\n<document bytes>`, read only when the version changed).

use std::rc::Rc;

use llm_cost_core::price_doc::{self, DocFormat};
use llm_cost_core::{MeterConfig, PriceTable};

/// The KV namespace binding (wrangler.toml `[[kv_namespaces]]`) that holds the accepted prices.
pub const PRICES_BINDING: &str = "PRICES";
/// KV key of the accepted table's version.
pub const VERSION_KEY: &str = "llm_cost.pricing.version";
/// KV key of the accepted document, prefixed by its fetch time.
pub const DOCUMENT_KEY: &str = "llm_cost.pricing.document";
/// A document larger than this is not read (LiteLLM's whole file is about 3.5 MB; KV values may
/// be 25 MiB).
pub const MAX_DOCUMENT_BYTES: usize = 16 << 20;

/// Where live prices come from, and how often isolates look for a new version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriceFeed {
    /// The document's URL (`PRICES_URL`).
    pub url: String,
    /// Its shape (`PRICES_FORMAT`: `openrouter`, `litellm`, `snapshot`; default `openrouter`).
    pub format: DocFormat,
    /// Most models of the table in use a document may drop (`PRICES_MAX_REMOVED_PERCENT`, 20).
    pub max_removed_percent: u8,
    /// Seconds between an isolate's looks at the stored version (`PRICES_CHECK_S`, 60; 1 to 3600).
    pub check_interval_s: u64,
}

impl PriceFeed {
    /// The feed the variables describe (`non_empty`: a variable's trimmed value, `None` when
    /// unset or empty): `None` without `PRICES_URL`; an error names the variable.
    pub fn from_vars(
        non_empty: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<PriceFeed>, String> {
        let Some(url) = non_empty("PRICES_URL") else {
            return Ok(None);
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err("PRICES_URL must be an http:// or https:// URL".into());
        }
        let format = match non_empty("PRICES_FORMAT") {
            None => DocFormat::OpenRouter,
            Some(name) => DocFormat::from_name(&name).ok_or_else(|| {
                format!("PRICES_FORMAT: {name:?} is not openrouter, litellm or snapshot")
            })?,
        };
        let number = |name: &str,
                      text: Option<String>,
                      default: u64,
                      range: std::ops::RangeInclusive<u64>| {
            let Some(text) = text else {
                return Ok(default);
            };
            match text.parse::<u64>() {
                Ok(n) if range.contains(&n) => Ok(n),
                _ => Err(format!(
                    "{name}: {text:?} is not a whole number from {} to {}",
                    range.start(),
                    range.end()
                )),
            }
        };
        Ok(Some(PriceFeed {
            url,
            format,
            max_removed_percent: number(
                "PRICES_MAX_REMOVED_PERCENT",
                non_empty("PRICES_MAX_REMOVED_PERCENT"),
                20,
                0..=100,
            )? as u8,
            check_interval_s: number("PRICES_CHECK_S", non_empty("PRICES_CHECK_S"), 60, 1..=3600)?,
        }))
    }
}

/// What the Cron Trigger does with a fetched document.
#[derive(Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Accepted and different from the stored table: store `document` (the [`DOCUMENT_KEY`]
    /// value), then `version`.
    Store {
        /// The table's version (`live-<date>+<content hash>`).
        version: String,
        /// `<fetch Unix ms>\n<document bytes>`.
        document: Vec<u8>,
    },
    /// Accepted, same prices as the table in use: nothing to store.
    Unchanged,
    /// Refused by the checks (the stored table stays): why, for the log.
    Rejected(String),
}

/// Checks a fetched document against `in_use` (the stored table, else the bundled one).
pub fn refresh(
    feed: &PriceFeed,
    body: &[u8],
    fetched_unix_ms: u64,
    in_use: &PriceTable,
) -> Refresh {
    if body.len() > MAX_DOCUMENT_BYTES {
        return Refresh::Rejected(format!("{} bytes is too large", body.len()));
    }
    let baseline = feed.format.shares_bundled_ids().then_some(in_use);
    match price_doc::accept(
        feed.format,
        body,
        fetched_unix_ms,
        baseline,
        feed.max_removed_percent,
    ) {
        Err(why) => Refresh::Rejected(format!("{}: {why}", why.code())),
        Ok(accepted) => {
            if price_doc::content_hash_of(accepted.table.version())
                == price_doc::content_hash_of(in_use.version())
            {
                return Refresh::Unchanged;
            }
            let mut document = format!("{fetched_unix_ms}\n").into_bytes();
            document.extend_from_slice(body);
            Refresh::Store {
                version: accepted.table.version().to_owned(),
                document,
            }
        }
    }
}

/// The configuration that prices with a stored document (`base`'s overrides and adjustments
/// kept), and its table. Already checked by the Cron Trigger: parsed here without the removal
/// check, which needs the table the document replaced.
pub fn install(
    base: &MeterConfig,
    feed: &PriceFeed,
    stored: &[u8],
) -> Result<(PriceTable, Rc<MeterConfig>), String> {
    let split = stored.iter().position(|b| *b == b'\n');
    let (fetched, document) = match split {
        Some(at) => (&stored[..at], &stored[at + 1..]),
        None => return Err("stored document has no fetch time".into()),
    };
    let fetched = std::str::from_utf8(fetched)
        .ok()
        .and_then(|t| t.parse::<u64>().ok())
        .ok_or("stored document has no fetch time")?;
    let accepted = price_doc::accept(feed.format, document, fetched, None, 100)
        .map_err(|why| format!("stored document unusable: {why}"))?;
    let config = base
        .clone()
        .with_pricing(accepted.table.clone())
        .map_err(|e| format!("stored document refused by the configuration: {e}"))?;
    Ok((accepted.table, Rc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    const NOW: u64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    fn feed() -> PriceFeed {
        PriceFeed::from_vars(vars(&[("PRICES_URL", "http://127.0.0.1:1/models")]))
            .unwrap()
            .unwrap()
    }

    /// The bundled document with `model`'s prompt price set to `prompt`.
    fn bundled_with(model: &str, prompt: &str) -> Vec<u8> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../pricing-data/bundled.json");
        let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        for entry in doc["data"].as_array_mut().unwrap() {
            if entry["id"] == model {
                entry["pricing"]["prompt"] = Value::String(prompt.into());
            }
        }
        serde_json::to_vec(&doc).unwrap()
    }

    #[test]
    fn the_feed_is_read_from_its_variables() {
        assert_eq!(PriceFeed::from_vars(vars(&[])), Ok(None));
        let f = feed();
        assert_eq!(
            (f.format, f.max_removed_percent, f.check_interval_s),
            (DocFormat::OpenRouter, 20, 60)
        );
        let f = PriceFeed::from_vars(vars(&[
            ("PRICES_URL", "https://example.com/p.json"),
            ("PRICES_FORMAT", "litellm"),
            ("PRICES_MAX_REMOVED_PERCENT", "5"),
            ("PRICES_CHECK_S", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (f.format, f.max_removed_percent, f.check_interval_s),
            (DocFormat::LiteLlm, 5, 1)
        );
        for (name, value) in [
            ("PRICES_URL", "ftp://x"),
            ("PRICES_FORMAT", "csv"),
            ("PRICES_CHECK_S", "0"),
            ("PRICES_MAX_REMOVED_PERCENT", "101"),
        ] {
            // The first pair of a name wins: the bad value, then a good URL.
            let pairs = [(name, value), ("PRICES_URL", "http://127.0.0.1:1/")];
            let err = PriceFeed::from_vars(vars(&pairs)).unwrap_err();
            assert!(err.starts_with(name), "{err}");
        }
    }

    #[test]
    fn a_changed_price_is_stored_and_installs_with_the_overrides_kept() {
        let bundled = PriceTable::bundled();
        // The bundled table is bundled.json plus pricing-data/supplement.json (LiteLLM's service
        // tier, 1-hour cache write and audio prices OpenRouter's data lacks); the core adds the
        // same supplement to a live OpenRouter document, so the unchanged document fetched live
        // is the bundled table and nothing is stored.
        let same = refresh(
            &feed(),
            &bundled_with("openai/o3", "0.000002"),
            NOW,
            &bundled,
        );
        assert_eq!(same, Refresh::Unchanged);
        let changed = bundled_with("openai/o3", "0.00001");
        let Refresh::Store { version, document } = refresh(&feed(), &changed, NOW, &bundled) else {
            panic!("a changed price is stored");
        };
        assert!(version.starts_with("live-2026-11-25+"), "{version}");
        assert!(document.starts_with(format!("{NOW}\n").as_bytes()));
        let base = MeterConfig::from_json(
            br#"{"models": {"acme/private-1": {"prompt": "1", "completion": "1"}}}"#,
        )
        .unwrap();
        let (table, config) = install(&base, &feed(), &document).unwrap();
        assert_eq!(table.version(), version);
        assert!(config.overrides.contains_key("acme/private-1"));
        assert_ne!(config.pricing_version(), base.pricing_version());
        // The next fetch of the same document changes nothing.
        assert_eq!(
            refresh(&feed(), &changed, NOW + 1, &table),
            Refresh::Unchanged
        );
    }

    #[test]
    fn bad_documents_are_rejected_with_the_cores_reason() {
        let bundled = PriceTable::bundled();
        let Refresh::Rejected(why) = refresh(&feed(), b"{not json", NOW, &bundled) else {
            panic!("malformed");
        };
        assert!(why.starts_with("malformed"), "{why}");
        let few = br#"{"data": [{"id": "openai/o3", "pricing": {"prompt": "0.000002", "completion": "0.000008"}}]}"#;
        let Refresh::Rejected(why) = refresh(&feed(), few, NOW, &bundled) else {
            panic!("too many removed");
        };
        assert!(why.starts_with("too_many_removed"), "{why}");
        assert!(install(&MeterConfig::default(), &feed(), b"no time").is_err());
    }
}
