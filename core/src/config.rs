//! Meter configuration: one JSON object shared by every host (Envoy `plugin_config`, the Worker's
//! vars, the CLI's `--config`). Every field is optional; an unknown field or a bad value is an
//! error whose message names the field, so a host can refuse the configuration at load time.
//!
//! Host concerns stay with the hosts: a host says what it can do ([`HostSupport`]) and
//! [`MeterConfig::for_host`] drops each field it cannot honour with a [`ConfigWarning`] naming the
//! field (the rest still meters); a host's own transport section (`collector`, the Envoy
//! filter's) is passed through unparsed ([`MeterConfig::collector_json`]) for that host to read.

use alloc::{borrow::ToOwned, boxed::Box, collections::BTreeMap, format, string::String, vec::Vec};
use core::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use crate::attribution::{Attribution, AttributionFile};
use crate::budget::{Budgets, BudgetsFile};
use crate::json_path;
use crate::overrides::{AppliedOverrides, ModelOverride, Resolved};
use crate::price_doc::LivePricing;
use crate::pricing::{content_hash, ModelEntry, PriceTable, Prices};
use crate::provider::{Provider, Route};
use crate::usage::Format;

/// Whether a metered stream ends with the `: llm-cost {...}` SSE comment (`stream_cost_comment`).
/// The record, metrics, filter state and (Envoy) trailers carry the cost either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamCostComment {
    /// Per wire format, what every official SDK tolerates (tests/sdk): on for chat completions,
    /// Responses and Anthropic Messages; off for Gemini, whose Python SDK (`google-genai`)
    /// parses every non-`data:` line of a stream as JSON and raises.
    #[default]
    Auto,
    /// On every stream, Gemini included (for clients that follow the SSE spec).
    Always,
    /// On no stream.
    Never,
}

impl StreamCostComment {
    /// Does a stream in `format` end with the cost comment?
    pub fn applies_to(self, format: Format) -> bool {
        match self {
            StreamCostComment::Always => true,
            StreamCostComment::Never => false,
            StreamCostComment::Auto => match format {
                Format::Chat
                | Format::Responses
                | Format::Anthropic
                | Format::Embeddings
                | Format::Transcription => true,
                Format::Gemini | Format::GeminiEmbeddings | Format::Images | Format::Speech => {
                    false
                }
            },
        }
    }
}

/// A markup (positive) or discount (negative) on the computed cost, for matching calls.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Adjustment {
    /// Host (port ignored) to match; any if absent.
    #[serde(default)]
    pub host: Option<String>,
    /// Path prefix to match; any if absent.
    #[serde(default)]
    pub path_prefix: Option<String>,
    /// `key_id` (tenant) to match; any if absent.
    #[serde(default)]
    pub key_id: Option<String>,
    /// Percentage as a decimal string with at most 2 decimals, e.g. `"12.5"` or `"-20"`.
    pub percent: String,
    /// Validated `percent` in basis points (1/100 of a percent).
    #[serde(skip)]
    pub basis_points: i64,
}

impl Adjustment {
    /// Does this adjustment apply to a call to `host` + `path` by `key_id`?
    pub fn matches(&self, host: &str, path: &str, key_id: Option<&str>) -> bool {
        let host = crate::provider::strip_port(host);
        self.host
            .as_deref()
            .is_none_or(|h| h.eq_ignore_ascii_case(host))
            && self
                .path_prefix
                .as_deref()
                .is_none_or(|p| path.starts_with(p))
            && self.key_id.as_deref().is_none_or(|k| Some(k) == key_id)
    }
}

/// `"12.5"` → 1250, `"-20"` → -2000; at most 2 decimals, not below -100 %.
fn basis_points(percent: &str) -> Option<i64> {
    let (negative, digits) = match percent.trim().strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, percent.trim()),
    };
    let (whole, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty()
        || frac.len() > 2
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac: i64 = format!("{frac:0<2}").parse().ok()?;
    let bp = whole.checked_mul(100)?.checked_add(frac)?;
    let bp = if negative { -bp } else { bp };
    (-10_000..=1_000_000).contains(&bp).then_some(bp)
}

/// The whole meter configuration, validated.
#[derive(Clone, Debug)]
pub struct MeterConfig {
    /// Lower-case prefix of every header we add (`x-llm-` gives `x-llm-cost`).
    pub header_prefix: String,
    /// Largest request body buffered for the rewrite; larger ones pass unchanged.
    pub max_request_body_bytes: usize,
    /// Largest JSON response body held to compute headers; larger ones pass unchanged.
    pub max_response_body_bytes: usize,
    /// Largest single SSE event scanned; larger ones are skipped and counted.
    pub max_sse_event_bytes: usize,
    /// Cut the usage-only chunk from streams when we injected it and the client did not ask.
    pub hide_injected_usage_chunk: bool,
    /// Rewrite requests so the upstream reports usage.
    pub inject_usage: bool,
    /// The host may hold request/response headers while it reads a body (Envoy:
    /// `allow_on_headers_stop_iteration: true`). Off: no rewrite, no cost headers on JSON
    /// responses (the record, filter state and metrics still have the cost), streams unchanged.
    /// An Envoy setting: a host without it ([`HostSupport::hold_headers_setting`]) always holds.
    pub hold_headers: bool,
    /// Estimate tokens when a call ends without usage (builds with the `estimate` feature only).
    pub estimate_missing_usage: bool,
    /// Which streams end with the `: llm-cost {...}` comment.
    pub stream_cost_comment: StreamCostComment,
    /// Provider routing rules, tried before the built-in host/path rules.
    pub routes: Vec<Route>,
    /// The price table (bundled unless replaced).
    pub pricing: PriceTable,
    /// Per-model prices that win over the table (`models` in JSON), as written; applied to
    /// the table by [`MeterConfig::resolve_model`] (see `overrides`).
    pub overrides: BTreeMap<String, ModelOverride>,
    /// Markups / discounts by route or tenant; the first match applies.
    pub adjustments: Vec<Adjustment>,
    /// Spend limits on any dimension (enforced by hosts with shared storage: the Envoy filter).
    pub budgets: Budgets,
    /// With `key_id_header: true`, the request header (`<header_prefix>key-id`) that carries the
    /// caller's `key_id` upstream (for Envoy's rate limit filter and upstream logs; forged copies
    /// are always removed first). Named once here, not per request.
    pub key_id_header: Option<String>,
    /// Who spent it: dimensions read from headers, tags and the body into `attributes`.
    pub attribution: Attribution,
    /// The `pricing` section: where live prices are fetched from (a host with HTTP calls does it).
    pub live_pricing: Option<LivePricing>,
    pricing_version: String,
    /// `overrides` applied to `pricing`.
    applied: AppliedOverrides,
    /// The `collector` section as written, for the host that reads it (the Envoy filter).
    collector: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
struct ConfigFile {
    header_prefix: String,
    max_request_body_bytes: usize,
    max_response_body_bytes: usize,
    max_sse_event_bytes: usize,
    hide_injected_usage_chunk: bool,
    inject_usage: bool,
    hold_headers: bool,
    estimate_missing_usage: bool,
    stream_cost_comment: StreamCostComment,
    routes: Vec<Route>,
    models: BTreeMap<String, BTreeMap<String, String>>,
    adjustments: Vec<Adjustment>,
    collector: Option<Box<RawValue>>,
    pricing: Option<Box<RawValue>>,
    budgets: BudgetsFile,
    key_id_header: bool,
    attribution: AttributionFile,
}

impl Default for ConfigFile {
    fn default() -> Self {
        ConfigFile {
            header_prefix: "x-llm-".into(),
            max_request_body_bytes: 1 << 20,
            max_response_body_bytes: 1 << 20,
            max_sse_event_bytes: 1 << 20,
            hide_injected_usage_chunk: true,
            inject_usage: true,
            hold_headers: true,
            estimate_missing_usage: true,
            stream_cost_comment: StreamCostComment::Auto,
            routes: Vec::new(),
            models: BTreeMap::new(),
            adjustments: Vec::new(),
            collector: None,
            pricing: None,
            budgets: BudgetsFile::default(),
            key_id_header: false,
            attribution: AttributionFile::default(),
        }
    }
}

/// A configuration the meter refuses, with the field at fault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "llm-cost configuration: {}", self.0)
    }
}

#[cfg(feature = "std")]
extern crate std;
#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// A field of the configuration a host ignored (the rest of the configuration applies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigWarning(pub String);

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "llm-cost configuration: {}", self.0)
    }
}

/// What a host can do with the shared configuration, passed to [`MeterConfig::for_host`].
/// The core maps each missing capability to the fields that need it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSupport {
    /// The host, as warnings name it (`"the Worker"`).
    pub name: &'static str,
    /// Whether holding headers is something this host's deployments configure (`hold_headers`;
    /// Envoy's `allow_on_headers_stop_iteration`). A host that builds its own responses always
    /// holds them, and ignores the field.
    pub hold_headers_setting: bool,
    /// Counters shared by every request of the host, so spend limits (`budgets`) hold.
    pub shared_counters: bool,
    /// The host calls Envoy clusters: sends records (`collector`), fetches prices (`pricing`).
    pub collector: bool,
}

impl HostSupport {
    /// The top-level fields this host cannot honour, each with why.
    fn unsupported(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [
            (
                self.hold_headers_setting,
                "hold_headers",
                "an Envoy setting; this host always holds headers while it reads a body",
            ),
            (
                self.shared_counters,
                "budgets",
                "spend limits need counters shared by every request, which only the Envoy filter has (docs/BUDGETS.md)",
            ),
            (
                self.collector,
                "collector",
                "an Envoy cluster; this host sends records its own way",
            ),
            (
                self.collector,
                "pricing",
                "live prices are fetched from an Envoy cluster; this host uses the bundled table",
            ),
        ]
        .into_iter()
        .filter(|(supported, _, _)| !supported)
        .map(|(_, field, why)| (field, why))
    }
}

/// A configuration error for `e`, raised while reading `bytes`, naming the field at fault
/// (`section` prefixes the path: a host reading its own section passes its name).
pub fn field_error(bytes: &[u8], e: &serde_json::Error, section: &str) -> ConfigError {
    let mut path = json_path::path_at(bytes, e.line(), e.column());
    let message = format!("{e}");
    // serde_json appends the position; the field path says it better.
    let message = match message.rsplit_once(" at line ") {
        Some((text, _)) if e.line() > 0 => text,
        _ => message.as_str(),
    };
    if message.starts_with("unknown field") {
        // The path ends at the unknown key itself: name the object it is in.
        path = path
            .rsplit_once('.')
            .map_or(String::new(), |(parent, _)| parent.into());
    }
    let path = match (section, path.as_str()) {
        ("", path) => path.to_owned(),
        (section, "") => section.to_owned(),
        (section, path) => format!("{section}.{path}"),
    };
    match path.as_str() {
        "" => ConfigError(format!("{e}")), // syntax errors: the position helps
        path => ConfigError(format!("field `{path}`: {message}")),
    }
}

impl Default for MeterConfig {
    fn default() -> Self {
        MeterConfig::from_file(ConfigFile::default()).unwrap_or_else(|_| unreachable!())
    }
}

impl MeterConfig {
    /// Parses and validates a JSON configuration; empty input means all defaults. Every field is
    /// honoured (the Envoy filter's view; other hosts use [`MeterConfig::for_host`]).
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MeterConfig::default());
        }
        let file: ConfigFile =
            serde_json::from_slice(bytes).map_err(|e| field_error(bytes, &e, ""))?;
        MeterConfig::from_file(file)
    }

    /// [`MeterConfig::from_json`] for a host that supports only part of the configuration: each
    /// top-level field it cannot honour is dropped (its default applies) with a warning naming
    /// it, so the rest of the configuration still meters.
    pub fn for_host(
        bytes: &[u8],
        host: &HostSupport,
    ) -> Result<(Self, Vec<ConfigWarning>), ConfigError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok((MeterConfig::default(), Vec::new()));
        }
        let mut object: BTreeMap<String, &RawValue> =
            serde_json::from_slice(bytes).map_err(|e| field_error(bytes, &e, ""))?;
        let mut warnings = Vec::new();
        for (field, why) in host.unsupported() {
            if object.remove(field).is_some() {
                warnings.push(ConfigWarning(format!(
                    "field `{field}` ignored by {}: {why}",
                    host.name
                )));
            }
        }
        let kept = serde_json::to_vec(&object).map_err(|e| ConfigError(format!("{e}")))?;
        Ok((MeterConfig::from_json(&kept)?, warnings))
    }

    fn from_file(file: ConfigFile) -> Result<Self, ConfigError> {
        let prefix = file.header_prefix.to_ascii_lowercase();
        let token = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if prefix.is_empty() || !prefix.bytes().all(token) {
            return Err(ConfigError(format!(
                "field `header_prefix`: {:?} is not a header-name prefix (letters, digits, `-`)",
                file.header_prefix
            )));
        }
        for (name, value) in [
            ("max_request_body_bytes", file.max_request_body_bytes),
            ("max_response_body_bytes", file.max_response_body_bytes),
            ("max_sse_event_bytes", file.max_sse_event_bytes),
        ] {
            if value == 0 {
                return Err(ConfigError(format!(
                    "field `{name}`: must be greater than 0"
                )));
            }
        }
        let mut overrides = BTreeMap::new();
        for (model, prices) in &file.models {
            overrides.insert(model.clone(), ModelOverride::parse(model, prices)?);
        }
        let mut adjustments = file.adjustments;
        for (i, adjustment) in adjustments.iter_mut().enumerate() {
            adjustment.basis_points = basis_points(&adjustment.percent).ok_or_else(|| {
                ConfigError(format!(
                    "field `adjustments[{i}].percent`: {:?} is not a percentage with at most 2 decimals, -100 or more",
                    adjustment.percent
                ))
            })?;
        }
        let key_id_header = file.key_id_header.then(|| format!("{prefix}key-id"));
        let live_pricing = file
            .pricing
            .map(|raw| LivePricing::from_json(raw.get()).map_err(ConfigError))
            .transpose()?;
        let attribution = Attribution::from_file(file.attribution)?;
        let mut config = MeterConfig {
            header_prefix: prefix,
            max_request_body_bytes: file.max_request_body_bytes,
            max_response_body_bytes: file.max_response_body_bytes,
            max_sse_event_bytes: file.max_sse_event_bytes,
            hide_injected_usage_chunk: file.hide_injected_usage_chunk,
            inject_usage: file.inject_usage,
            hold_headers: file.hold_headers,
            estimate_missing_usage: file.estimate_missing_usage,
            stream_cost_comment: file.stream_cost_comment,
            routes: file.routes,
            pricing: PriceTable::bundled(),
            overrides,
            adjustments,
            budgets: Budgets::from_file(file.budgets, &attribution)?,
            key_id_header,
            attribution,
            live_pricing,
            pricing_version: String::new(),
            applied: AppliedOverrides::default(),
            collector: file.collector.map(|raw| raw.get().to_owned()),
        };
        config.refresh_pricing()?;
        Ok(config)
    }

    /// Budget rules that load but will not behave as written most likely meant (a limit below
    /// `reserve_usd`, a `period` left at `none`, a dimension nothing fills where the check runs):
    /// for the host to log at configure. See [`crate::budget_sanity`].
    pub fn budget_warnings(&self) -> Vec<crate::budget_sanity::BudgetWarning> {
        // The Envoy filter checks budgets at the request headers unless it holds the body.
        let check_at_headers = !(self.inject_usage && self.hold_headers);
        crate::budget_sanity::warnings(&self.budgets, &self.attribution, check_at_headers)
    }

    /// The `collector` section as written (JSON), if any: the Envoy filter's transport settings,
    /// which it parses and validates itself.
    pub fn collector_json(&self) -> Option<&str> {
        self.collector.as_deref()
    }

    /// Replaces the price table (e.g. the CLI's `--pricing FILE`); fails when a `models` entry
    /// for a model this table lacks does not price the billed components.
    pub fn with_pricing(mut self, table: PriceTable) -> Result<Self, ConfigError> {
        self.pricing = table;
        self.refresh_pricing()?;
        Ok(self)
    }

    /// The prices of `model` answered by `provider`: the table's entry by the name rules
    /// (`model_names`), merged with its `models` override if any, or a `models` entry for a
    /// model the table lacks.
    pub fn resolve_model(&self, model: &str, provider: Provider) -> Option<Resolved> {
        self.applied.resolve(&self.pricing, model, provider)
    }

    /// True when this build can estimate tokens and the configuration allows it.
    pub fn estimates(&self) -> bool {
        cfg!(feature = "estimate") && self.estimate_missing_usage
    }

    /// Is `header_name` one of ours (starts with `header_prefix`, any case)? Hosts strip such
    /// headers from client requests and upstream responses so nobody can forge our numbers.
    pub fn is_own_header(&self, header_name: &str) -> bool {
        header_name.len() >= self.header_prefix.len()
            && header_name.as_bytes()[..self.header_prefix.len()]
                .eq_ignore_ascii_case(self.header_prefix.as_bytes())
    }

    /// The table's version, plus `+cfg-<hash>` when model overrides change a price or
    /// adjustments apply.
    pub fn pricing_version(&self) -> &str {
        &self.pricing_version
    }

    fn refresh_pricing(&mut self) -> Result<(), ConfigError> {
        self.applied = AppliedOverrides::new(&self.pricing, &self.overrides)?;
        let mut version = self.pricing.version().to_owned();
        // The effective prices of the entries overrides change (none: the table's version).
        let mut entries: Vec<ModelEntry> = self.applied.changed();
        if !entries.is_empty() || !self.adjustments.is_empty() {
            // Adjustments hash as pseudo-entries: their match and percentage in the id.
            entries.extend(self.adjustments.iter().map(|a| ModelEntry {
                id: format!(
                    "adjustment {:?} {:?} {:?} {}",
                    a.host, a.path_prefix, a.key_id, a.basis_points
                ),
                canonical_slug: String::new(),
                prices: Prices::default(),
            }));
            version = format!("{version}+cfg-{}", content_hash(&entries));
        }
        self.pricing_version = version;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn empty_config_is_all_defaults() {
        let config = MeterConfig::from_json(b"").unwrap();
        assert_eq!(config.header_prefix, "x-llm-");
        assert!(config.hide_injected_usage_chunk);
        assert_eq!(config.pricing_version(), PriceTable::bundled().version());
        assert_eq!(
            MeterConfig::from_json(b"{}").unwrap().max_sse_event_bytes,
            1 << 20
        );
    }

    #[test]
    fn own_headers_are_recognised_in_any_case() {
        let config = MeterConfig::default();
        assert!(config.is_own_header("X-LLM-Cost"));
        assert!(config.is_own_header("x-llm-cost-status"));
        assert!(!config.is_own_header("x-request-id"));
        assert!(!config.is_own_header("x-ll"));
    }

    #[test]
    fn unknown_fields_are_named() {
        let err = MeterConfig::from_json(br#"{"header_prefx":"x-"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown field `header_prefx`"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let err = MeterConfig::from_json(br#"{"models":{"m":{"prompt":"cheap"}}}"#).unwrap_err();
        assert!(err.to_string().contains("field `models.m.prompt`"), "{err}");
        let err = MeterConfig::from_json(br#"{"models":{"m":{"promt":"1"}}}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("field `models.m.promt`: unknown price key"),
            "{err}"
        );
        let err = MeterConfig::from_json(br#"{"header_prefix":"x llm"}"#).unwrap_err();
        assert!(err.to_string().contains("field `header_prefix`"), "{err}");
        let err = MeterConfig::from_json(br#"{"max_sse_event_bytes":0}"#).unwrap_err();
        assert!(
            err.to_string().contains("field `max_sse_event_bytes`"),
            "{err}"
        );
        let err = MeterConfig::from_json(br#"{"max_sse_event_bytes":"big"}"#).unwrap_err();
        assert!(
            err.to_string()
                .contains("field `max_sse_event_bytes`: invalid type"),
            "{err}"
        );
        // A float names its value (vendor/serde_core formats it with zmij, not core's Display).
        for (json, shown) in [
            (&br#"{"header_prefix":1.5}"#[..], "floating point `1.5`"),
            (br#"{"header_prefix":2.0}"#, "floating point `2.0`"),
            (br#"{"header_prefix":1e300}"#, "floating point `1e+300`"),
        ] {
            let err = MeterConfig::from_json(json).unwrap_err().to_string();
            assert!(
                err.contains("field `header_prefix`: invalid type: ") && err.contains(shown),
                "{err}"
            );
        }
        let err = MeterConfig::from_json(br#"{} trailing"#).unwrap_err();
        assert!(err.to_string().contains("trailing"), "{err}");
        let err =
            MeterConfig::from_json(br#"{"routes":[{"host":"h","provider":"acme"}]}"#).unwrap_err();
        assert!(err.to_string().contains("unknown variant `acme`"), "{err}");
    }

    const WORKER_LIKE: HostSupport = HostSupport {
        name: "the Worker",
        hold_headers_setting: false,
        shared_counters: false,
        collector: false,
    };

    #[test]
    fn a_host_drops_the_fields_it_cannot_honour_with_a_warning_each() {
        let json = br#"{"budgets":{"default_limit_usd":"5"},"hold_headers":false,
            "collector":{"cluster":"c"},"header_prefix":"x-acme-","inject_usage":false}"#;
        let (config, warnings) = MeterConfig::for_host(json, &WORKER_LIKE).unwrap();
        let text: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(text.len(), 3, "{text:?}");
        for field in ["hold_headers", "budgets", "collector"] {
            assert!(
                text.iter()
                    .any(|w| w.contains(&format!("field `{field}` ignored by the Worker"))),
                "{field}: {text:?}"
            );
        }
        // The rest applies; the dropped fields take their defaults.
        assert_eq!(config.header_prefix, "x-acme-");
        assert!(!config.inject_usage);
        assert!(config.hold_headers);
        assert!(config.budgets.is_empty());
        assert_eq!(config.collector_json(), None);
    }

    #[test]
    fn a_host_still_refuses_bad_fields_it_supports() {
        let (_, warnings) = MeterConfig::for_host(b" ", &WORKER_LIKE).unwrap();
        assert!(warnings.is_empty());
        let err = MeterConfig::for_host(br#"{"max_sse_event_bytes":0}"#, &WORKER_LIKE).unwrap_err();
        assert!(
            err.to_string().contains("field `max_sse_event_bytes`"),
            "{err}"
        );
        let err = MeterConfig::for_host(br#"{"header_prefx":"x"}"#, &WORKER_LIKE).unwrap_err();
        assert!(err.to_string().contains("header_prefx"), "{err}");
        let err = MeterConfig::for_host(b"[1]", &WORKER_LIKE).unwrap_err();
        assert!(!err.to_string().is_empty());
    }

    #[test]
    fn the_collector_section_is_passed_through_for_its_host() {
        let config =
            MeterConfig::from_json(br#"{"collector": {"path": "/in", "clustr": 1}}"#).unwrap();
        assert_eq!(
            config.collector_json(),
            Some(r#"{"path": "/in", "clustr": 1}"#)
        );
    }

    #[test]
    fn stream_cost_comment_defaults_per_format() {
        let auto = MeterConfig::from_json(b"{}").unwrap().stream_cost_comment;
        assert_eq!(auto, StreamCostComment::Auto);
        for (format, on) in [
            (Format::Chat, true),
            (Format::Responses, true),
            (Format::Anthropic, true),
            (Format::Gemini, false),
        ] {
            assert_eq!(auto.applies_to(format), on, "{format:?}");
            assert!(StreamCostComment::Always.applies_to(format));
            assert!(!StreamCostComment::Never.applies_to(format));
        }
        for (json, want) in [
            (
                &br#"{"stream_cost_comment":"auto"}"#[..],
                StreamCostComment::Auto,
            ),
            (
                br#"{"stream_cost_comment":"always"}"#,
                StreamCostComment::Always,
            ),
            (
                br#"{"stream_cost_comment":"never"}"#,
                StreamCostComment::Never,
            ),
        ] {
            assert_eq!(
                MeterConfig::from_json(json).unwrap().stream_cost_comment,
                want
            );
        }
        let err = MeterConfig::from_json(br#"{"stream_cost_comment":true}"#).unwrap_err();
        assert!(
            err.to_string().contains("field `stream_cost_comment`"),
            "{err}"
        );
        let err = MeterConfig::from_json(br#"{"stream_cost_comment":"sometimes"}"#).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `sometimes`"),
            "{err}"
        );
    }

    #[test]
    fn adjustments_are_validated_and_change_the_version() {
        let ok = MeterConfig::from_json(br#"{"adjustments":[{"key_id":"abc","percent":"-12.5"}]}"#)
            .unwrap();
        assert_eq!(ok.adjustments[0].basis_points, -1250);
        assert!(ok.pricing_version().contains("+cfg-"));
        for bad in ["12.345", "-101", "x", ""] {
            let json = format!(r#"{{"adjustments":[{{"percent":"{bad}"}}]}}"#);
            let err = MeterConfig::from_json(json.as_bytes()).unwrap_err();
            assert!(
                err.to_string().contains("field `adjustments[0].percent`"),
                "{err}"
            );
        }
        assert!(ok.adjustments[0].matches("h:80", "/p", Some("abc")));
        assert!(!ok.adjustments[0].matches("h", "/p", Some("xyz")));
    }

    #[test]
    fn routes_and_adjustments_read_an_ipv6_authority_alike() {
        let config = MeterConfig::from_json(
            br#"{"routes":[{"host":"[::1]","provider":"anthropic"}],
                 "adjustments":[{"host":"[::1]","percent":"10"}]}"#,
        )
        .unwrap();
        for authority in ["[::1]:8080", "[::1]"] {
            assert_eq!(
                crate::provider::detect(&config.routes, authority, "/x"),
                crate::Provider::Anthropic,
                "{authority}"
            );
            assert!(
                config.adjustments[0].matches(authority, "/x", None),
                "{authority}"
            );
        }
    }

    #[test]
    fn budget_rules_name_their_field_for_an_unknown_mode_period_or_dimension() {
        let attribution = r#""attribution":{"dimensions":{"team":{"from":["header:x-team"]}}}"#;
        for (rule, needle) in [
            (
                r#"{"dimension":"team","default_limit_usd":"1","mode":"dry-run"}"#,
                "field `budgets.rules[0].mode`: unknown variant `dry-run`, expected `enforce` or `shadow`",
            ),
            (
                r#"{"dimension":"team","default_limit_usd":"1","period":"week"}"#,
                "field `budgets.rules[0].period`: unknown variant `week`",
            ),
            (
                r#"{"dimension":"feature","default_limit_usd":"1"}"#,
                "field `budgets.rules[0].dimension`: \"feature\" is no dimension a call has",
            ),
            (
                r#"{"dimension":"team","default_limit_usd":"1","limit":"2"}"#,
                "unknown field `limit`",
            ),
        ] {
            let json = format!(r#"{{{attribution},"budgets":{{"rules":[{rule}]}}}}"#);
            let err = MeterConfig::from_json(json.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle), "{rule}: {err}");
        }
        let err = MeterConfig::from_json(br#"{"budgets":{"unpriced":"maybe"}}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `budgets.unpriced`: unknown variant `maybe`"),
            "{err}"
        );
        // Rules on the issue's dimensions load next to the attribution that fills them.
        let json = format!(
            r#"{{{attribution},"budgets":{{"rules":[{{"dimension":"team","limits_usd":{{"search":"500"}},"default_limit_usd":"100","period":"month"}},{{"dimension":"key_id","limits_usd":{{"3f2a9c1b7e44":"25"}},"period":"day","mode":"shadow"}}],"unpriced":"deny"}}}}"#
        );
        let config = MeterConfig::from_json(json.as_bytes()).unwrap();
        assert_eq!(config.budgets.rules.len(), 2);
    }

    #[test]
    fn overrides_change_the_pricing_version() {
        let a =
            MeterConfig::from_json(br#"{"models":{"m":{"prompt":"0.000001","completion":"0"}}}"#)
                .unwrap();
        let b =
            MeterConfig::from_json(br#"{"models":{"m":{"prompt":"0.000002","completion":"0"}}}"#)
                .unwrap();
        assert_ne!(a.pricing_version(), b.pricing_version());
        assert!(a
            .pricing_version()
            .starts_with(PriceTable::bundled().version()));
    }
}
