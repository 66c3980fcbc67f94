//! Price tables: the bundled snapshot, tables loaded from a file, and per-model overrides.
//!
//! A table maps a model id to [`Prices`] (USD per token, or per request). Tables load from the
//! OpenRouter `/api/v1/models` shape or LiteLLM's `model_prices_and_context_window.json`; the
//! bundled one is compiled in (`llm-cost-pricing-data`), so no JSON is parsed for it.
//! Name resolution (aliases) lives in `model_names`; the arithmetic in `cost`.

use alloc::{borrow::ToOwned, collections::BTreeMap, format, string::String, vec::Vec};
use core::cell::RefCell;
use core::fmt::{self, Write as _};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::money::{MoneyError, Usd};
use crate::service_tier::ServiceTier;
use llm_cost_pricing_data as bundled;

/// Prices of one model. A missing `prompt` or `completion` is zero (the OpenRouter convention);
/// every other price is known only when its source names it (an explicit `0` is free), so a
/// billed component without a price leaves the call unpriced instead of costing a silent $0.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prices {
    /// Per uncached text input token.
    pub prompt: Usd,
    /// Per text output token.
    pub completion: Usd,
    /// Per request.
    pub request: Usd,
    /// Per cached (read) input token.
    pub input_cache_read: Usd,
    /// Per input token written to the cache (Anthropic: the 5-minute write).
    pub input_cache_write: Usd,
    /// Per input token written to the 1-hour cache (Anthropic `ephemeral_1h_input_tokens`).
    pub input_cache_write_1h: Usd,
    /// Per reasoning token; zero means "priced as completion".
    pub internal_reasoning: Usd,
    /// Per input image token (unnamed: image tokens cost the `prompt` price, as OpenAI and
    /// Gemini bill them).
    pub image: Usd,
    /// Per output image token (Gemini image output, gpt-image).
    pub image_output: Usd,
    /// Per input audio token.
    pub audio: Usd,
    /// Per output audio token.
    pub audio_output: Usd,
    /// Per second of input audio (whisper-1 transcriptions billed by duration; LiteLLM
    /// `input_cost_per_second`).
    pub audio_second: Usd,
    /// Per character of the request's input text (tts-1 speech; LiteLLM
    /// `input_cost_per_character`).
    pub input_character: Usd,
    /// Per web search request.
    pub web_search: Usd,
    /// The base keys above that the source named (prompt and completion are always known).
    pub named: KeySet,
    /// Service-tier prices by key (`prompt_flex`, `completion_priority`, `input_cache_read_batch`,
    /// ...): the price of a component when the response says that tier served the call.
    pub tiered: Vec<(&'static str, Usd)>,
    /// Long-context tiers (OpenRouter `overrides` with `min_prompt_tokens`), ascending: a call
    /// with at least that many prompt tokens is priced wholly at the tier's prices.
    pub long_context: Vec<(u64, Prices)>,
    /// Time-of-day prices (OpenRouter `overrides` with `utc_start`/`utc_end`): a call made inside
    /// a window is priced at the window's prices.
    pub time_of_day: Vec<TimeWindow>,
    /// Prices a second source added to the entry (the bundled table's facts from LiteLLM that
    /// OpenRouter's listing lacks): a call priced with one says so in `priced_as`.
    pub supplement: Option<Supplement>,
}

/// Which prices of an entry came from a second source, and from which entry of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Supplement {
    /// The source entry, e.g. `litellm:gpt-5`.
    pub source: String,
    /// The price keys it added.
    pub keys: KeySet,
}

/// A set of [`PRICE_KEYS`] (a bit each: small and cheap to copy, unlike a tree of strings).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeySet(u64);

impl KeySet {
    fn bit(key: &str) -> u64 {
        PRICE_KEYS
            .iter()
            .position(|k| *k == key)
            .map_or(0, |i| 1 << i)
    }

    /// Adds `key` (a no-op for a name that is not a price key).
    pub fn insert(&mut self, key: &str) {
        self.0 |= Self::bit(key);
    }

    /// Removes `key`.
    pub fn remove(&mut self, key: &str) {
        self.0 &= !Self::bit(key);
    }

    /// Is `key` in the set?
    pub fn contains(&self, key: &str) -> bool {
        self.0 & Self::bit(key) != 0
    }

    /// The keys, in [`PRICE_KEYS`] order.
    pub fn iter(&self) -> impl Iterator<Item = &'static str> + '_ {
        PRICE_KEYS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, k)| *k)
    }
}

impl<'a> FromIterator<&'a str> for KeySet {
    fn from_iter<I: IntoIterator<Item = &'a str>>(keys: I) -> Self {
        let mut set = KeySet::default();
        for key in keys {
            set.insert(key);
        }
        set
    }
}

/// A daily price window in UTC, from `start` (inclusive) to `end` (exclusive), in minutes after
/// midnight; it wraps past midnight when `end <= start`. OpenRouter writes the bounds as `HHMM`
/// numbers (`1000` is 10:00 UTC).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeWindow {
    /// First minute of the window.
    pub start: u16,
    /// First minute after the window.
    pub end: u16,
    /// The prices inside it (base prices overlaid with the window's).
    pub prices: Prices,
}

impl TimeWindow {
    /// True if `minute` (after midnight UTC) falls inside the window.
    pub fn contains(&self, minute: u16) -> bool {
        if self.start < self.end {
            (self.start..self.end).contains(&minute)
        } else {
            minute >= self.start || minute < self.end
        }
    }
}

/// Which of an entry's prices apply to a call ([`Prices::condition_in_effect`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PriceCondition {
    /// The base (list) prices.
    List,
    /// The long-context tier for calls with at least `min` prompt tokens.
    Tier {
        /// The tier's threshold.
        min: u64,
    },
    /// The time-of-day window from `start` to `end` (minutes after midnight UTC).
    Window {
        /// First minute of the window.
        start: u16,
        /// First minute after it.
        end: u16,
    },
}

impl fmt::Display for PriceCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = |m: u16| (m / 60, m % 60);
        match *self {
            PriceCondition::List => write!(f, "list prices"),
            PriceCondition::Tier { min } => {
                write!(f, "long-context tier from {min} prompt tokens")
            }
            PriceCondition::Window { start, end } => {
                let ((sh, sm), (eh, em)) = (clock(start), clock(end));
                write!(f, "time window {sh:02}:{sm:02}-{eh:02}:{em:02} UTC")
            }
        }
    }
}

/// `HHMM` (OpenRouter's `utc_start`/`utc_end`) → minutes after midnight; `None` unless a time of
/// day (`2400` is the end of the day).
pub fn minutes_of_hhmm(hhmm: u64) -> Option<u16> {
    let (hours, minutes) = (hhmm / 100, hhmm % 100);
    (minutes < 60 && (hours < 24 || hhmm == 2400)).then(|| (hours * 60 + minutes) as u16)
}

/// The price keys, in canonical order (sorted), as named by OpenRouter, and the service-tier
/// keys (defined once, in `pricing-data/src/keys.rs`, which the table's build script also reads).
pub use llm_cost_pricing_data::{PRICE_KEYS, SERVICE_TIER_SUFFIXES};

/// The price key `key` as the `PRICE_KEYS` entry (static), if it is one.
pub fn price_key(key: &str) -> Option<&'static str> {
    PRICE_KEYS.iter().copied().find(|k| *k == key)
}

/// Is `key` a service-tier key (`prompt_flex`)? Its tier's suffix, if so.
pub fn tier_of_key(key: &str) -> Option<(&str, &'static str)> {
    SERVICE_TIER_SUFFIXES.iter().find_map(|suffix| {
        let base = key.strip_suffix(suffix)?.strip_suffix('_')?;
        Some((base, *suffix))
    })
}

impl Prices {
    /// Sets the price named `key` (a [`PRICE_KEYS`] entry); unknown keys are ignored.
    pub fn set(&mut self, key: &str, value: Usd) {
        let Some(key) = price_key(key) else {
            return;
        };
        if tier_of_key(key).is_some() {
            match self.tiered.binary_search_by(|(k, _)| (*k).cmp(key)) {
                Ok(at) => self.tiered[at].1 = value,
                Err(at) => self.tiered.insert(at, (key, value)),
            }
            return;
        }
        if let Some(slot) = self.slot(key) {
            *slot = value;
            self.named.insert(key);
        }
    }

    fn slot(&mut self, key: &str) -> Option<&mut Usd> {
        Some(match key {
            "prompt" => &mut self.prompt,
            "completion" => &mut self.completion,
            "request" => &mut self.request,
            "input_cache_read" => &mut self.input_cache_read,
            "input_cache_write" => &mut self.input_cache_write,
            "input_cache_write_1h" => &mut self.input_cache_write_1h,
            "internal_reasoning" => &mut self.internal_reasoning,
            "image" => &mut self.image,
            "image_output" => &mut self.image_output,
            "audio" => &mut self.audio,
            "audio_output" => &mut self.audio_output,
            "audio_second" => &mut self.audio_second,
            "input_character" => &mut self.input_character,
            "web_search" => &mut self.web_search,
            _ => return None,
        })
    }

    /// Is the price named `key` known? Prompt and completion always are; any other when its
    /// source named it (or it is non-zero).
    pub fn has(&self, key: &str) -> bool {
        if tier_of_key(key).is_some() {
            return self.tiered.iter().any(|(k, _)| *k == key);
        }
        matches!(key, "prompt" | "completion")
            || self.named.contains(key)
            || self.get(key) != Usd::ZERO
    }

    /// The price named `key`, `None` when unknown ([`Prices::has`]).
    pub fn known(&self, key: &str) -> Option<Usd> {
        self.has(key).then(|| self.get(key))
    }

    /// The same prices, whatever their provenance ([`Prices::supplement`] aside).
    pub fn same_prices(&self, other: &Prices) -> bool {
        let bare = |p: &Prices| {
            let mut p = p.clone();
            p.supplement = None;
            for (_, tier) in &mut p.long_context {
                tier.supplement = None;
            }
            p
        };
        bare(self) == bare(other)
    }

    /// The prices of a call served at `tier`: these for standard; for a tier with keys of its
    /// own (`prompt_flex`, ...), those keys as base keys, plus this entry's per-request and
    /// per-search prices (not tier-dependent). `None` when the entry prices nothing at that
    /// tier (scale, unknown tiers, or no key with the tier's suffix).
    pub fn for_tier(&self, tier: ServiceTier) -> Option<Prices> {
        let Some(suffix) = tier.key_suffix() else {
            return (tier == ServiceTier::Standard).then(|| self.clone());
        };
        let mut prices = Prices::default();
        let mut any = false;
        for (key, value) in &self.tiered {
            if let Some((base, s)) = tier_of_key(key) {
                if s == suffix {
                    prices.set(base, *value);
                    any = true;
                }
            }
        }
        for key in ["request", "web_search"] {
            if let Some(value) = self.known(key) {
                prices.set(key, value);
            }
        }
        // A tier price the supplement added is, at that tier, a base price it added.
        prices.supplement = self.supplement.as_ref().map(|s| Supplement {
            source: s.source.clone(),
            keys: s
                .keys
                .iter()
                .filter_map(|key| match tier_of_key(key) {
                    Some((base, t)) if t == suffix => price_key(base),
                    Some(_) => None,
                    None => matches!(key, "request" | "web_search").then_some(key),
                })
                .collect(),
        });
        any.then_some(prices)
    }

    /// The prices for a call with `prompt_tokens` input tokens made at `minute_of_day` (UTC; `None`
    /// when unknown: list prices): its time window if one holds it, else its long-context tier.
    pub fn in_effect(&self, prompt_tokens: u64, minute_of_day: Option<u16>) -> &Prices {
        self.condition_in_effect(prompt_tokens, minute_of_day).1
    }

    /// [`Prices::in_effect`], with which of the entry's prices they are (for explanations).
    pub fn condition_in_effect(
        &self,
        prompt_tokens: u64,
        minute_of_day: Option<u16>,
    ) -> (PriceCondition, &Prices) {
        if let Some(window) =
            minute_of_day.and_then(|minute| self.time_of_day.iter().find(|w| w.contains(minute)))
        {
            return (
                PriceCondition::Window {
                    start: window.start,
                    end: window.end,
                },
                &window.prices,
            );
        }
        match self
            .long_context
            .iter()
            .rev()
            .find(|(min, _)| prompt_tokens >= *min)
        {
            Some((min, tier)) => (PriceCondition::Tier { min: *min }, tier),
            None => (PriceCondition::List, self),
        }
    }

    /// The prices that apply to a call with `prompt_tokens` input tokens (its tier, if any).
    pub fn for_prompt_tokens(&self, prompt_tokens: u64) -> &Prices {
        self.condition_in_effect(prompt_tokens, None).1
    }

    /// These prices with `overrides` (OpenRouter's list of `{"min_prompt_tokens": N, key:
    /// decimal, ...}` and `{"utc_start": HHMM, "utc_end": HHMM, key: decimal, ...}`) as
    /// long-context tiers and time-of-day windows. Entries with neither condition are ignored.
    pub fn with_overrides(mut self, overrides: &serde_json::Value) -> Result<Prices, PricingError> {
        let parsed;
        let overrides = match overrides {
            // OpenRouter's feed serialises the list as Python text: `[{'min_prompt_tokens': …}]`.
            serde_json::Value::String(text) => {
                parsed = serde_json::from_str(&text.replace('\'', "\""))
                    .map_err(|e| PricingError::Format(format!("pricing `overrides`: {e}")))?;
                &parsed
            }
            other => other,
        };
        for entry in overrides.as_array().into_iter().flatten() {
            let number = |key: &str| entry.get(key).and_then(|v| v.as_u64());
            let window = match (number("utc_start"), number("utc_end")) {
                (Some(start), Some(end)) => Some(
                    minutes_of_hhmm(start)
                        .zip(minutes_of_hhmm(end))
                        .ok_or_else(|| {
                            PricingError::Format(format!(
                                "pricing `overrides`: utc_start {start} / utc_end {end} is not HHMM"
                            ))
                        })?,
                ),
                _ => None,
            };
            let min = number("min_prompt_tokens");
            if window.is_none() && min.is_none() {
                continue;
            }
            // Base prices inherited; service-tier prices are not (a tier's price at long context
            // is a fact of its own, unknown unless the entry names it).
            let mut prices = Prices {
                long_context: Vec::new(),
                time_of_day: Vec::new(),
                tiered: Vec::new(),
                ..self.clone()
            };
            for key in PRICE_KEYS {
                let text = match entry.get(key) {
                    Some(serde_json::Value::String(s)) => s.clone(),
                    Some(serde_json::Value::Number(n)) => format!("{n}"),
                    _ => continue,
                };
                let plain = crate::decimal::plain(&text).unwrap_or(text);
                let usd = Usd::parse(&plain).map_err(|reason| PricingError::BadPrice {
                    model: String::new(),
                    key: format!("overrides.{key}"),
                    reason,
                })?;
                prices.set(key, usd);
            }
            match (window, min) {
                (Some((start, end)), _) => self.time_of_day.push(TimeWindow { start, end, prices }),
                (None, Some(min)) => self.long_context.push((min, prices)),
                (None, None) => {}
            }
        }
        crate::sort::stable_sort_by(&mut self.long_context, |a, b| a.0.cmp(&b.0));
        Ok(self)
    }

    /// The price named `key` (a [`PRICE_KEYS`] entry); zero for unknown keys and unknown prices.
    pub fn get(&self, key: &str) -> Usd {
        if tier_of_key(key).is_some() {
            return self
                .tiered
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(Usd::ZERO, |(_, v)| *v);
        }
        match key {
            "prompt" => self.prompt,
            "completion" => self.completion,
            "request" => self.request,
            "input_cache_read" => self.input_cache_read,
            "input_cache_write" => self.input_cache_write,
            "input_cache_write_1h" => self.input_cache_write_1h,
            "internal_reasoning" => self.internal_reasoning,
            "image" => self.image,
            "image_output" => self.image_output,
            "audio" => self.audio,
            "audio_output" => self.audio_output,
            "audio_second" => self.audio_second,
            "input_character" => self.input_character,
            "web_search" => self.web_search,
            _ => Usd::ZERO,
        }
    }

    /// Parses `(key, decimal)` pairs, e.g. a bundled entry.
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Prices, PricingError> {
        let mut prices = Prices::default();
        for (key, value) in pairs {
            let usd = Usd::parse(value).map_err(|e| PricingError::BadPrice {
                model: String::new(),
                key: key.to_owned(),
                reason: e,
            })?;
            prices.set(key, usd);
        }
        Ok(prices)
    }
}

/// A model with its prices, as stored in a loaded table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelEntry {
    /// Model id as the table names it.
    pub id: String,
    /// OpenRouter canonical slug, empty if none.
    pub canonical_slug: String,
    /// Its prices.
    pub prices: Prices,
}

/// Why a price table could not be loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PricingError {
    /// The file is not JSON or has neither known shape.
    Format(String),
    /// A price is not a usable decimal.
    BadPrice {
        /// The model whose price is bad.
        model: String,
        /// The pricing key, e.g. `prompt`.
        key: String,
        /// What is wrong with it.
        reason: MoneyError,
    },
}

impl fmt::Display for PricingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PricingError::Format(msg) => write!(f, "pricing file: {msg}"),
            PricingError::BadPrice { model, key, reason } => {
                write!(f, "price `{key}` of model `{model}`: {reason}")
            }
        }
    }
}

/// A price table: the bundled snapshot or one loaded at run time.
#[derive(Clone, Debug)]
pub struct PriceTable {
    source: TableSource,
    version: String,
    /// Bundled entries decoded so far, sorted by the name they were found under: a model's
    /// text line is decoded (seven-odd decimal parses) once per table, not at every call. Only
    /// names that resolved are kept, so it holds at most every id and slug of the table.
    decoded: RefCell<Vec<(String, Priced)>>,
}

#[derive(Clone, Debug)]
enum TableSource {
    Bundled,
    /// Sorted by id; `slugs` maps canonical slugs to indices.
    Loaded {
        models: Vec<ModelEntry>,
        slugs: BTreeMap<String, usize>,
    },
}

/// A resolved model: the id the table knows it by, and its prices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Priced {
    /// The table entry that priced the call (`priced_as` in the record).
    pub id: String,
    /// The entry's prices.
    pub prices: Prices,
}

impl Default for PriceTable {
    fn default() -> Self {
        PriceTable::bundled()
    }
}

impl PriceTable {
    /// The snapshot compiled into this build.
    pub fn bundled() -> Self {
        PriceTable {
            source: TableSource::Bundled,
            version: bundled::PRICING_VERSION.to_owned(),
            decoded: RefCell::default(),
        }
    }

    /// Builds a table from entries; `snapshot_id` names it in `pricing_version`.
    pub fn from_entries(snapshot_id: &str, mut models: Vec<ModelEntry>) -> Self {
        crate::sort::stable_sort_by(&mut models, |a, b| a.id.cmp(&b.id));
        models.dedup_by(|a, b| a.id == b.id);
        // Several ids can share a slug (`x` and `x:batch`, `x:free`): the slug means the base model.
        let preference = |m: &ModelEntry| (m.id.contains(':'), m.id.len());
        let mut slugs: BTreeMap<String, usize> = BTreeMap::new();
        for (i, model) in models.iter().enumerate() {
            if model.canonical_slug.is_empty() {
                continue;
            }
            let slot = slugs.entry(model.canonical_slug.clone()).or_insert(i);
            if preference(model) < preference(&models[*slot]) {
                *slot = i;
            }
        }
        let version = format!("{snapshot_id}+{}", content_hash(&models));
        PriceTable {
            source: TableSource::Loaded { models, slugs },
            version,
            decoded: RefCell::default(),
        }
    }

    /// Parses an OpenRouter `/api/v1/models` dump or a LiteLLM price file (detected).
    pub fn from_json(bytes: &[u8]) -> Result<Self, PricingError> {
        let doc: serde_json::Value = serde_json::from_slice(bytes)
            .map_err(|e| PricingError::Format(format!("not JSON ({e})")))?;
        if doc.get("data").is_some_and(|d| d.is_array()) {
            load_openrouter(&doc)
        } else if doc.is_object() {
            load_litellm(&doc)
        } else {
            Err(PricingError::Format(
                "expected an OpenRouter {\"data\":[...]} dump or a LiteLLM price object".into(),
            ))
        }
    }

    /// `<snapshot id>+<8 hex of the content hash>`: changes whenever any price changes.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// Number of models.
    pub fn len(&self) -> usize {
        match &self.source {
            TableSource::Bundled => bundled::len(),
            TableSource::Loaded { models, .. } => models.len(),
        }
    }

    /// True if the table has no model.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exact lookup by table id or canonical slug (no aliasing; see `model_names::resolve`).
    pub fn get(&self, name: &str) -> Option<Priced> {
        match &self.source {
            TableSource::Bundled => {
                let at = match self
                    .decoded
                    .borrow()
                    .binary_search_by(|(n, _)| n.as_str().cmp(name))
                {
                    Ok(i) => return self.decoded.borrow().get(i).map(|(_, p)| p.clone()),
                    Err(at) => at,
                };
                let model = bundled::find(name)?;
                let priced = Priced {
                    id: model.id.to_owned(),
                    prices: bundled_prices(&model).ok()?,
                };
                self.decoded
                    .borrow_mut()
                    .insert(at, (name.to_owned(), priced.clone()));
                Some(priced)
            }
            TableSource::Loaded { models, slugs } => {
                let index = models
                    .binary_search_by(|m| m.id.as_str().cmp(name))
                    .ok()
                    .or_else(|| slugs.get(name).copied())?;
                let model = &models[index];
                Some(Priced {
                    id: model.id.clone(),
                    prices: model.prices.clone(),
                })
            }
        }
    }

    /// Every entry (bundled entries are parsed on the fly).
    pub fn entries(&self) -> Vec<ModelEntry> {
        match &self.source {
            TableSource::Bundled => bundled::models()
                .filter_map(|m| {
                    Some(ModelEntry {
                        id: m.id.to_owned(),
                        canonical_slug: m.canonical_slug.to_owned(),
                        prices: bundled_prices(&m).ok()?,
                    })
                })
                .collect(),
            TableSource::Loaded { models, .. } => models.clone(),
        }
    }
}

/// First 8 hex digits of SHA-256 over the canonical text of `models` (sorted by id):
/// one line per model, `id \t slug`, then `\t key=decimal` in key order for prompt, completion
/// and every other known price ([`Prices::has`]). `pricing-data/build.rs` computes the same for the bundled table.
pub fn content_hash(models: &[ModelEntry]) -> String {
    let mut canonical = String::new();
    for model in models {
        let _ = write!(canonical, "{}\t{}", model.id, model.canonical_slug);
        write_prices(&mut canonical, &model.prices);
        for (min, tier) in &model.prices.long_context {
            let _ = write!(canonical, "\t>{min}");
            write_prices(&mut canonical, tier);
        }
        for window in &model.prices.time_of_day {
            let _ = write!(canonical, "\t@{}-{}", window.start, window.end);
            write_prices(&mut canonical, &window.prices);
        }
        canonical.push('\n');
    }
    hex8(&Sha256::digest(canonical.as_bytes()))
}

/// A bundled model's prices, long-context tiers and time windows included.
fn bundled_prices(model: &bundled::BundledModel) -> Result<Prices, PricingError> {
    let mut prices = Prices::from_pairs(model.prices())?;
    for (min, tier) in model.tiers() {
        prices.long_context.push((min, Prices::from_pairs(tier)?));
    }
    for (start, end, window) in model.time_windows() {
        prices.time_of_day.push(TimeWindow {
            start,
            end,
            prices: Prices::from_pairs(window)?,
        });
    }
    if let Some((source, keys)) = model.supplement() {
        let supplement = Supplement {
            source: source.to_owned(),
            keys: keys.collect(),
        };
        for (_, tier) in &mut prices.long_context {
            tier.supplement = Some(supplement.clone());
        }
        prices.supplement = Some(supplement);
    }
    Ok(prices)
}

/// `\tkey=decimal` for every known price (prompt and completion always), in key order.
fn write_prices(out: &mut String, prices: &Prices) {
    for key in PRICE_KEYS {
        if let Some(value) = prices.known(key) {
            let _ = write!(out, "\t{key}={value}");
        }
    }
}

/// First 4 bytes as 8 lower-case hex digits.
pub(crate) fn hex8(digest: &[u8]) -> String {
    let mut out = String::with_capacity(8);
    for b in digest.iter().take(4) {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[derive(Deserialize)]
struct OpenRouterModel {
    id: String,
    #[serde(default)]
    canonical_slug: Option<String>,
    #[serde(default)]
    pricing: BTreeMap<String, serde_json::Value>,
}

fn load_openrouter(doc: &serde_json::Value) -> Result<PriceTable, PricingError> {
    let data = doc.get("data").cloned().unwrap_or_default();
    let models: Vec<OpenRouterModel> = serde_json::from_value(data)
        .map_err(|e| PricingError::Format(format!("OpenRouter `data` entries: {e}")))?;
    let mut entries = Vec::with_capacity(models.len());
    'models: for model in models {
        let mut prices = Prices::default();
        for key in PRICE_KEYS {
            let Some(value) = model.pricing.get(key) else {
                continue;
            };
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => format!("{n}"),
                _ => continue,
            };
            if text.trim_start().starts_with('-') {
                continue 'models; // "-1": dynamic pricing (e.g. openrouter/auto), not a price
            }
            let usd = Usd::parse(&crate::decimal::plain(&text).unwrap_or(text.clone())).map_err(
                |reason| PricingError::BadPrice {
                    model: model.id.clone(),
                    key: key.to_owned(),
                    reason,
                },
            )?;
            prices.set(key, usd);
        }
        if let Some(overrides) = model.pricing.get("overrides") {
            prices = prices.with_overrides(overrides).map_err(|e| match e {
                PricingError::BadPrice { key, reason, .. } => PricingError::BadPrice {
                    model: model.id.clone(),
                    key,
                    reason,
                },
                other => other,
            })?;
        }
        entries.push(ModelEntry {
            id: model.id,
            canonical_slug: model.canonical_slug.unwrap_or_default(),
            prices,
        });
    }
    let date = doc
        .get("snapshot_date")
        .and_then(|d| d.as_str())
        .unwrap_or("file");
    Ok(PriceTable::from_entries(
        &format!("openrouter-{date}"),
        entries,
    ))
}

/// LiteLLM price name → price key. A LiteLLM key is one of these names, then optionally
/// `_above_<N>k_tokens` (a long-context price, for prompts of more than N thousand tokens), then
/// optionally `_flex`, `_priority` or `_batches` (a service tier's price).
const LITELLM_KEYS: [(&str, &str); 13] = [
    ("input_cost_per_token", "prompt"),
    ("output_cost_per_token", "completion"),
    ("cache_read_input_token_cost", "input_cache_read"),
    ("cache_creation_input_token_cost", "input_cache_write"),
    (
        "cache_creation_input_token_cost_above_1hr",
        "input_cache_write_1h",
    ),
    ("output_cost_per_reasoning_token", "internal_reasoning"),
    ("input_cost_per_audio_token", "audio"),
    ("output_cost_per_audio_token", "audio_output"),
    ("input_cost_per_second", "audio_second"),
    ("input_cost_per_character", "input_character"),
    ("input_cost_per_image_token", "image"),
    ("output_cost_per_image_token", "image_output"),
    ("input_cost_per_request", "request"),
];

/// LiteLLM's tier suffix → ours.
const LITELLM_TIERS: [(&str, &str); 3] = [
    ("_flex", "flex"),
    ("_priority", "priority"),
    ("_batches", "batch"),
];

/// A LiteLLM key as `(price key, long-context threshold, tier suffix)`; `None` for keys that are
/// not per-token prices we apply (per second, per character, per page, ...).
fn litellm_key(name: &str) -> Option<(&'static str, Option<u64>, Option<&'static str>)> {
    let (rest, tier) = LITELLM_TIERS
        .iter()
        .find_map(|(suffix, tier)| Some((name.strip_suffix(suffix)?, Some(*tier))))
        .unwrap_or((name, None));
    let (rest, above) = match rest
        .rsplit_once("_above_")
        .and_then(|(base, n)| Some((base, n.strip_suffix("k_tokens")?.parse::<u64>().ok()?)))
    {
        // LiteLLM applies the price to prompts of *more* than N thousand tokens.
        Some((base, thousands)) => (base, Some(thousands.checked_mul(1000)?.checked_add(1)?)),
        None => (rest, None),
    };
    let key = LITELLM_KEYS
        .iter()
        .find_map(|(litellm, key)| (*litellm == rest).then_some(*key))?;
    let key = match tier {
        None => key,
        Some(tier) => price_key(&format!("{key}_{tier}"))?,
    };
    Some((key, above, tier))
}

/// A LiteLLM number as a price (its shortest decimal form is the price intended).
fn litellm_price(model: &str, key: &str, n: &serde_json::Number) -> Result<Usd, PricingError> {
    let text = format!("{n}");
    let plain = crate::decimal::plain(&text).unwrap_or(text);
    Usd::parse(&plain).map_err(|reason| PricingError::BadPrice {
        model: model.to_owned(),
        key: key.to_owned(),
        reason,
    })
}

fn load_litellm(doc: &serde_json::Value) -> Result<PriceTable, PricingError> {
    let object = doc
        .as_object()
        .ok_or_else(|| PricingError::Format("expected a JSON object".into()))?;
    let mut entries = Vec::new();
    for (id, spec) in object {
        if id == "sample_spec" {
            continue; // LiteLLM's documentation entry, not a model
        }
        let Some(spec) = spec.as_object() else {
            continue;
        };
        let mut prices = Prices::default();
        // Long-context prices by threshold, as OpenRouter-style `overrides` entries.
        let mut tiers: BTreeMap<u64, serde_json::Map<String, serde_json::Value>> = BTreeMap::new();
        let mut priced = false;
        for (name, value) in spec {
            let serde_json::Value::Number(n) = value else {
                continue;
            };
            let Some((key, above, _)) = litellm_key(name) else {
                continue;
            };
            let usd = litellm_price(id, key, n)?;
            match above {
                None => prices.set(key, usd),
                Some(min) => {
                    tiers
                        .entry(min)
                        .or_default()
                        .insert(key.into(), serde_json::Value::String(format!("{usd}")));
                }
            }
            priced = true;
        }
        // The per-search web price, by search context size: the default (`medium`) applies.
        if let Some(per_query) = spec.get("search_context_cost_per_query") {
            let medium = per_query
                .get("search_context_size_medium")
                .or_else(|| per_query.as_number().map(|_| per_query));
            if let Some(serde_json::Value::Number(n)) = medium {
                prices.set("web_search", litellm_price(id, "web_search", n)?);
            }
        }
        if !priced {
            continue;
        }
        if !tiers.is_empty() {
            let overrides: Vec<serde_json::Value> = tiers
                .into_iter()
                .map(|(min, mut keys)| {
                    keys.insert("min_prompt_tokens".into(), serde_json::json!(min));
                    serde_json::Value::Object(keys)
                })
                .collect();
            prices = prices.with_overrides(&serde_json::Value::Array(overrides))?;
        }
        entries.push(ModelEntry {
            id: id.clone(),
            canonical_slug: String::new(),
            prices,
        });
    }
    Ok(PriceTable::from_entries("litellm", entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_table_finds_ids_and_canonical_slugs() {
        let table = PriceTable::bundled();
        let by_id = table.get("openai/gpt-4o").expect("gpt-4o is bundled");
        assert_eq!(by_id.prices.prompt, Usd::parse("0.0000025").unwrap());
        let slug = bundled::models()
            .find(|m| !m.canonical_slug.is_empty() && m.canonical_slug != m.id)
            .expect("some model has a distinct slug");
        assert_eq!(table.get(slug.canonical_slug).unwrap().id, slug.id);
        assert!(table.get("no-such/model").is_none());
    }

    #[test]
    fn bundled_lines_are_decoded_once_and_only_names_that_resolved_are_kept() {
        let table = PriceTable::bundled();
        let slug = bundled::models()
            .find(|m| !m.canonical_slug.is_empty() && m.canonical_slug != m.id)
            .expect("some model has a distinct slug");
        let fresh = |name: &str| {
            let model = bundled::find(name).unwrap();
            Priced {
                id: model.id.to_owned(),
                prices: bundled_prices(&model).unwrap(),
            }
        };
        for _ in 0..3 {
            for name in ["openai/gpt-5", slug.canonical_slug, "openai/gpt-4o"] {
                assert_eq!(table.get(name), Some(fresh(name)), "{name}");
            }
            assert!(table.get("no-such/model").is_none());
        }
        let decoded = table.decoded.borrow();
        let names: Vec<&str> = decoded.iter().map(|(n, _)| n.as_str()).collect();
        let mut expected = ["openai/gpt-5", slug.canonical_slug, "openai/gpt-4o"];
        expected.sort_unstable();
        assert_eq!(names, expected);
    }

    #[test]
    fn windows_hold_their_start_not_their_end_and_may_wrap_or_cover_the_day() {
        let window = |start, end| TimeWindow {
            start,
            end,
            prices: Prices::default(),
        };
        let (day, night, all) = (window(60, 240), window(600, 60), window(0, 0));
        assert!(day.contains(60) && day.contains(239) && !day.contains(240) && !day.contains(59));
        assert!(night.contains(600) && night.contains(1439) && night.contains(0));
        assert!(!night.contains(60) && !night.contains(599));
        assert!((0..1440).all(|minute| all.contains(minute)));
        assert_eq!(minutes_of_hhmm(1000), Some(600));
        assert_eq!(minutes_of_hhmm(2400), Some(1440));
        assert_eq!((minutes_of_hhmm(2401), minutes_of_hhmm(960)), (None, None));
    }

    #[test]
    fn bundled_version_equals_the_hash_of_the_same_snapshot_loaded_at_run_time() {
        let text = include_bytes!("../../pricing-data/bundled.json");
        let loaded = PriceTable::from_json(text).unwrap();
        // The bundled table is the snapshot plus `supplement.json`'s prices for keys it lacks.
        let supplement: serde_json::Value =
            serde_json::from_slice(include_bytes!("../../pricing-data/supplement.json")).unwrap();
        let mut entries = loaded.entries();
        for entry in &mut entries {
            let added = &supplement["models"][entry.id.as_str()]["pricing"];
            for (key, value) in added.as_object().into_iter().flatten() {
                if !entry.prices.has(key) {
                    entry
                        .prices
                        .set(key, Usd::parse(value.as_str().unwrap()).unwrap());
                }
            }
        }
        // And its own entries (models OpenRouter does not list), whole.
        for (id, entry) in supplement["entries"].as_object().unwrap() {
            let mut prices = Prices::default();
            for (key, value) in entry["pricing"].as_object().unwrap() {
                prices.set(key, Usd::parse(value.as_str().unwrap()).unwrap());
            }
            entries.push(ModelEntry {
                id: id.clone(),
                canonical_slug: id.clone(),
                prices,
            });
        }
        let merged = PriceTable::from_entries("openrouter-2026-08-19", entries);
        assert_eq!(merged.version(), PriceTable::bundled().version());
        assert_eq!(merged.len(), PriceTable::bundled().len());
        // Each supplemented price is marked with its source.
        let gpt5 = PriceTable::bundled().get("openai/gpt-5").unwrap().prices;
        let from = gpt5.supplement.expect("supplemented");
        assert_eq!(from.source, "litellm:gpt-5");
        assert!(from.keys.contains("prompt_flex") && !from.keys.contains("prompt"));
    }

    #[test]
    fn loads_litellm_shape_with_float_prices_exactly() {
        let json = br#"{"sample_spec": {"input_cost_per_token": 0.0},
            "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                        "cache_read_input_token_cost": 1.25e-06, "litellm_provider": "openai"},
            "embedding-only": {"mode": "embedding"}}"#;
        let table = PriceTable::from_json(json).unwrap();
        assert_eq!(table.len(), 1);
        let prices = table.get("gpt-4o").unwrap().prices;
        assert_eq!(prices.prompt.to_decimal_string(), "0.0000025");
        assert_eq!(prices.completion.to_decimal_string(), "0.00001");
        assert_eq!(prices.input_cache_read.to_decimal_string(), "0.00000125");
        assert!(table.version().starts_with("litellm+"));
    }

    #[test]
    fn litellm_tiers_long_context_cache_ttl_audio_and_search_prices_are_kept() {
        let json =
            br#"{"gpt-5.4": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1.5e-05,
                "cache_read_input_token_cost": 2.5e-07,
                "input_cost_per_token_flex": 1.25e-06, "output_cost_per_token_priority": 3e-05,
                "input_cost_per_token_batches": 1.25e-06,
                "input_cost_per_token_above_272k_tokens": 5e-06,
                "cache_read_input_token_cost_above_272k_tokens": 5e-07,
                "input_cost_per_token_above_272k_tokens_priority": 1e-05,
                "input_cost_per_token_ultrafast": 9e-06, "input_cost_per_second": 0.1,
                "search_context_cost_per_query": {"search_context_size_low": 0.01,
                    "search_context_size_medium": 0.025, "search_context_size_high": 0.03}},
            "claude-sonnet-4-5": {"input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
                "cache_creation_input_token_cost": 3.75e-06,
                "cache_creation_input_token_cost_above_1hr": 6e-06},
            "gpt-audio": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                "input_cost_per_audio_token": 3.2e-05, "output_cost_per_audio_token": 6.4e-05}}"#;
        let table = PriceTable::from_json(json).unwrap();
        let usd = |s| Usd::parse(s).unwrap();
        let gpt = table.get("gpt-5.4").unwrap().prices;
        assert_eq!(gpt.get("prompt_flex"), usd("0.00000125"));
        assert_eq!(gpt.get("completion_priority"), usd("0.00003"));
        assert_eq!(gpt.get("prompt_batch"), usd("0.00000125"));
        assert_eq!(gpt.web_search, usd("0.025"));
        assert_eq!(gpt.long_context.len(), 1);
        let (min, long) = &gpt.long_context[0];
        assert_eq!(*min, 272_001);
        assert_eq!(long.prompt, usd("0.000005"));
        assert_eq!(long.input_cache_read, usd("0.0000005"));
        assert_eq!(long.completion, usd("0.000015")); // inherited
        assert_eq!(long.get("prompt_priority"), usd("0.00001"));
        assert!(!long.has("prompt_flex")); // a tier's long-context price is its own fact
        let claude = table.get("claude-sonnet-4-5").unwrap().prices;
        assert_eq!(claude.input_cache_write_1h, usd("0.000006"));
        let audio = table.get("gpt-audio").unwrap().prices;
        assert_eq!(
            (audio.audio, audio.audio_output),
            (usd("0.000032"), usd("0.000064"))
        );
        assert!(!audio.has("web_search"));
    }

    #[test]
    fn openrouter_shape_ignores_extra_keys_and_skips_dynamic_prices() {
        let json = br#"{"snapshot_date":"2026-01-01","data":[
            {"id":"a/b","canonical_slug":"a/b-2026","name":"x","pricing":{"prompt":"0.000001","completion":"0.000002","overrides":"[]"}},
            {"id":"openrouter/auto","pricing":{"prompt":"-1","completion":"-1"}}]}"#;
        let table = PriceTable::from_json(json).unwrap();
        assert_eq!(table.len(), 1);
        assert_eq!(table.get("a/b-2026").unwrap().id, "a/b");
        assert!(table.version().starts_with("openrouter-2026-01-01+"));
    }

    #[test]
    fn version_changes_when_a_price_changes() {
        let a = br#"{"data":[{"id":"m","pricing":{"prompt":"0.000001","completion":"0"}}]}"#;
        let b = br#"{"data":[{"id":"m","pricing":{"prompt":"0.000002","completion":"0"}}]}"#;
        let va = PriceTable::from_json(a).unwrap().version().to_owned();
        let vb = PriceTable::from_json(b).unwrap().version().to_owned();
        assert_ne!(va, vb);
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let err = PriceTable::from_json(b"[1,2]").unwrap_err();
        assert!(format!("{err}").contains("OpenRouter"));
        let bad = br#"{"data":[{"id":"m","pricing":{"prompt":"cheap"}}]}"#;
        let err = PriceTable::from_json(bad).unwrap_err();
        assert_eq!(
            format!("{err}"),
            "price `prompt` of model `m`: not a non-negative decimal number"
        );
    }
}
