//! Worker settings read once from the environment (`wrangler.toml` vars and secrets).
//!
//! Pure code: no Worker runtime types, so it builds and is unit-tested on the host.

use std::rc::Rc;

use llm_cost_core::{HostSupport, MeterConfig};

use crate::prices::PriceFeed;
use serde_json::{Map, Value};

/// Upstream used when `UPSTREAM_BASE_URL` is unset or empty.
pub const DEFAULT_UPSTREAM: &str = "https://openrouter.ai";

/// What the Worker can do with the shared configuration: it builds its own responses (so it
/// always holds headers), keeps spend counters in a Durable Object per budget key (`budgets`,
/// when the [`BUDGETS_BINDING`] is there: see [`Settings::from_vars`]), and sends records to
/// `LOG_SINK_URL`, not an Envoy cluster. The core drops the fields it cannot honour with a
/// warning each.
pub const WORKER: HostSupport = HostSupport {
    name: "the Worker",
    hold_headers_setting: false,
    shared_counters: true,
    collector: false,
};

/// The Durable Object namespace binding (wrangler.toml) that holds the budget ledgers.
pub const BUDGETS_BINDING: &str = "BUDGETS";

/// Everything the Worker needs per request, parsed once per isolate.
pub struct Settings {
    /// Upstream origin (scheme, host, optional port and path prefix), without a trailing `/`.
    pub upstream_base: String,
    /// Upstream host (`host[:port]`), given to the core as the request's authority.
    pub upstream_authority: String,
    /// Where cost records are POSTed as NDJSON, if anywhere.
    pub log_sink_url: Option<String>,
    /// What indexes the Analytics Engine data points: `key_id` or an attribution dimension
    /// (`ANALYTICS_INDEX`; default `key_id`).
    pub analytics_index: String,
    /// Live prices (`PRICES_URL`, …: [`PriceFeed`]); `None` prices with the bundled table.
    pub prices: Option<PriceFeed>,
    /// Core metering configuration; `Err` holds why metering is disabled (traffic still flows).
    pub meter: Result<Rc<MeterConfig>, String>,
    /// Fields of `METER_CONFIG` the Worker ignored, one message each (logged at start-up).
    pub warnings: Vec<String>,
}

impl Settings {
    /// Builds settings from a variable lookup (`UPSTREAM_BASE_URL`, `LOG_SINK_URL`,
    /// `METER_CONFIG`, `HEADER_PREFIX`, `MODEL_OVERRIDES`) and whether the [`BUDGETS_BINDING`]
    /// exists (without it, `budgets` is ignored with a warning: a limit kept per isolate would
    /// not hold). Only a bad URL is fatal; a bad metering variable disables metering and is
    /// reported in `meter`.
    pub fn from_vars(
        var: impl Fn(&str) -> Option<String>,
        budgets_bound: bool,
    ) -> Result<Settings, String> {
        let non_empty = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let upstream_base = non_empty("UPSTREAM_BASE_URL")
            .unwrap_or_else(|| DEFAULT_UPSTREAM.to_owned())
            .trim_end_matches('/')
            .to_owned();
        let upstream_authority = authority_of(&upstream_base)
            .ok_or_else(|| "UPSTREAM_BASE_URL must be an http:// or https:// URL".to_owned())?
            .to_owned();
        let log_sink_url = non_empty("LOG_SINK_URL");
        let analytics_index = non_empty("ANALYTICS_INDEX").unwrap_or_else(|| "key_id".to_owned());
        if let Some(sink) = &log_sink_url {
            if authority_of(sink).is_none() {
                return Err("LOG_SINK_URL must be an http:// or https:// URL".to_owned());
            }
        }
        let (meter, warnings) = match meter_config(
            non_empty("METER_CONFIG"),
            non_empty("HEADER_PREFIX"),
            non_empty("MODEL_OVERRIDES"),
            budgets_bound,
        ) {
            Ok((meter, warnings)) => (Ok(meter), warnings),
            Err(why) => (Err(why), Vec::new()),
        };
        let mut warnings = warnings;
        let prices = match PriceFeed::from_vars(non_empty) {
            Ok(feed) => feed,
            Err(why) => {
                warnings.push(format!("{why}; live prices off, the bundled table prices"));
                None
            }
        };
        let mut analytics_index = analytics_index;
        if let Ok(meter) = &meter {
            let known = analytics_index == "key_id"
                || meter
                    .attribution
                    .dimensions
                    .iter()
                    .any(|d| d.name == analytics_index);
            if !known {
                warnings.push(format!(
                    "ANALYTICS_INDEX: {analytics_index:?} is neither `key_id` nor an attribution dimension of METER_CONFIG; indexing by key_id"
                ));
                analytics_index = "key_id".to_owned();
            }
        }
        Ok(Settings {
            upstream_base,
            upstream_authority,
            log_sink_url,
            analytics_index,
            prices,
            meter,
            warnings,
        })
    }

    /// The upstream URL for a client request path (`/api/v1/chat/completions?x=1`).
    pub fn upstream_url(&self, path_and_query: &str) -> String {
        if path_and_query.starts_with('/') {
            format!("{}{}", self.upstream_base, path_and_query)
        } else {
            format!("{}/{}", self.upstream_base, path_and_query)
        }
    }
}

/// Builds the core configuration: `METER_CONFIG` is the core's whole JSON configuration
/// (docs/CONFIGURATION.md); `HEADER_PREFIX` replaces its `header_prefix` and `MODEL_OVERRIDES` is
/// merged into its `models` (winning per model). The core validates the result, and its error
/// names the field at fault; fields the Worker cannot honour ([`WORKER`]) are dropped with a
/// warning each (`METER_CONFIG: llm-cost configuration: field `budgets` ignored by the Worker: …`).
fn meter_config(
    meter_config: Option<String>,
    header_prefix: Option<String>,
    model_overrides: Option<String>,
    budgets_bound: bool,
) -> Result<(Rc<MeterConfig>, Vec<String>), String> {
    let mut config = match meter_config {
        None => Map::new(),
        Some(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("METER_CONFIG: must be a JSON object".to_owned()),
            Err(e) => return Err(format!("METER_CONFIG: {e}")),
        },
    };
    if let Some(prefix) = header_prefix {
        config.insert("header_prefix".to_owned(), Value::String(prefix));
    }
    if let Some(raw) = model_overrides {
        let overrides = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err("MODEL_OVERRIDES: must be a JSON object".to_owned()),
            Err(e) => return Err(format!("MODEL_OVERRIDES: {e}")),
        };
        match config.get_mut("models") {
            Some(Value::Object(models)) => models.extend(overrides),
            _ => {
                config.insert("models".to_owned(), Value::Object(overrides));
            }
        }
    }
    let json = serde_json::to_vec(&Value::Object(config.clone())).map_err(|e| e.to_string())?;
    let (mut meter, warnings) = MeterConfig::for_host(&json, &WORKER).map_err(|e| e.to_string())?;
    let mut warnings: Vec<String> = warnings
        .iter()
        .map(|w| format!("METER_CONFIG: {w}"))
        .collect();
    if !budgets_bound && !meter.budgets.is_empty() {
        meter.budgets = Default::default();
        warnings.push(format!(
            "METER_CONFIG: field `budgets` ignored by the Worker: no `{BUDGETS_BINDING}` Durable Object binding in wrangler.toml (docs/WORKER.md, \"Budgets\")"
        ));
    } else if let Some(Value::Object(budgets)) = config.get("budgets") {
        // The collector's spend sync is Envoy's: the Worker's ledgers live in Durable Objects.
        for field in ENVOY_ONLY_BUDGET_FIELDS {
            if budgets.contains_key(field) {
                warnings.push(format!(
                    "METER_CONFIG: field `budgets.{field}` ignored by the Worker: the collector's spend sync is the Envoy filter's; the Worker's ledgers are its Durable Objects (docs/WORKER.md, \"Budgets\")"
                ));
            }
        }
        meter.budgets.sync_interval_s = 0;
        meter.budgets.on_unknown_spend = Default::default();
        meter.budgets.spend_token = None;
    }
    Ok((Rc::new(meter), warnings))
}

/// `budgets` fields only the Envoy filter honours: the ledgers' sync from `llm-cost collect`'s
/// spend totals (`GET /v1/spend`). The Worker keeps its ledgers in Durable Objects and ignores
/// them, with one warning each.
pub const ENVOY_ONLY_BUDGET_FIELDS: [&str; 3] =
    ["sync_interval_s", "on_unknown_spend", "spend_token"];

/// `host[:port]` of an absolute http(s) URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
}

/// Request headers that must not be copied to the upstream request: hop-by-hop headers, the
/// client-facing host, Cloudflare's own request metadata, and the body length (recomputed).
pub fn is_forwardable_request_header(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    !(matches!(
        name.as_str(),
        "host"
            | "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "content-length"
            | "x-real-ip"
            | "x-forwarded-proto"
            | "x-forwarded-for"
    ) || name.starts_with("cf-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn defaults_to_openrouter_without_sink() {
        let s = Settings::from_vars(vars(&[]), false).expect("defaults are valid");
        assert_eq!(s.upstream_base, "https://openrouter.ai");
        assert_eq!(s.upstream_authority, "openrouter.ai");
        assert!(s.log_sink_url.is_none());
        let meter = s.meter.as_ref().expect("default metering config");
        assert_eq!(meter.header_prefix, MeterConfig::default().header_prefix);
        assert_eq!(
            s.upstream_url("/api/v1/chat/completions?a=1"),
            "https://openrouter.ai/api/v1/chat/completions?a=1"
        );
    }

    #[test]
    fn reads_upstream_sink_and_prefix() {
        let s = Settings::from_vars(
            vars(&[
                ("UPSTREAM_BASE_URL", "http://127.0.0.1:9000/"),
                ("LOG_SINK_URL", "http://127.0.0.1:9001/records"),
                ("HEADER_PREFIX", "X-Team-"),
                (
                    "MODEL_OVERRIDES",
                    r#"{"acme/private-1": {"prompt": "0.000001", "completion": "0.000002"}}"#,
                ),
            ]),
            false,
        )
        .expect("valid settings");
        assert_eq!(s.upstream_base, "http://127.0.0.1:9000");
        assert_eq!(s.upstream_authority, "127.0.0.1:9000");
        assert_eq!(
            s.log_sink_url.as_deref(),
            Some("http://127.0.0.1:9001/records")
        );
        let meter = s.meter.as_ref().expect("valid");
        assert_eq!(meter.header_prefix, "x-team-");
        assert!(meter.overrides.contains_key("acme/private-1"));
        assert_eq!(
            s.upstream_url("v1/models"),
            "http://127.0.0.1:9000/v1/models"
        );
    }

    #[test]
    fn bad_upstream_is_fatal_bad_metering_is_not() {
        assert!(Settings::from_vars(vars(&[("UPSTREAM_BASE_URL", "ftp://x")]), false).is_err());
        assert!(Settings::from_vars(vars(&[("LOG_SINK_URL", "nope")]), false).is_err());
        let s = Settings::from_vars(vars(&[("MODEL_OVERRIDES", "{not json")]), false)
            .expect("metering faults are not fatal");
        assert!(s.meter.unwrap_err().starts_with("MODEL_OVERRIDES"));
        let s = Settings::from_vars(
            vars(&[("MODEL_OVERRIDES", r#"{"m": {"promt": "1"}}"#)]),
            false,
        )
        .expect("not fatal");
        assert!(s.meter.unwrap_err().contains("models.m.promt"));
        let s = Settings::from_vars(vars(&[("HEADER_PREFIX", "bad\"prefix")]), false)
            .expect("not fatal");
        assert!(s.meter.unwrap_err().contains("header_prefix"));
        let s = Settings::from_vars(vars(&[("METER_CONFIG", "[1]")]), false).expect("not fatal");
        assert!(s.meter.is_err());
    }

    #[test]
    fn meter_config_is_the_base_and_the_short_vars_win() {
        let s = Settings::from_vars(vars(&[
            (
                "METER_CONFIG",
                r#"{"header_prefix": "x-base-", "inject_usage": false,
                    "models": {"a/1": {"prompt": "1", "completion": "1"},
                               "b/2": {"prompt": "2", "completion": "2"}}}"#,
            ),
            ("HEADER_PREFIX", "x-top-"),
            (
                "MODEL_OVERRIDES",
                r#"{"b/2": {"prompt": "3", "completion": "3"}, "c/3": {"prompt": "4", "completion": "4"}}"#,
            ),
        ]), false)
        .expect("valid settings");
        let meter = s.meter.as_ref().expect("valid meter config");
        assert_eq!(meter.header_prefix, "x-top-");
        assert!(!meter.inject_usage);
        let models: Vec<&str> = meter.overrides.keys().map(String::as_str).collect();
        assert_eq!(models, ["a/1", "b/2", "c/3"]);
    }

    #[test]
    fn filter_only_fields_are_ignored_with_a_warning_and_the_rest_meters() {
        // Without the BUDGETS binding isolates share no counter store: a limit would be silently
        // per-isolate, so it is ignored (not enforced), said once, and the rest still applies.
        let config = r#"{"budgets": {"default_limit_usd": "5"}, "hold_headers": false,
            "collector": {"cluster": "c"}, "key_id_header": true,
            "pricing": {"source": {"cluster": "c", "authority": "a", "path": "/p", "format": "openrouter"}}}"#;
        let s = Settings::from_vars(vars(&[("METER_CONFIG", config)]), false).expect("valid");
        let meter = s.meter.as_ref().expect("metering stays on");
        assert!(meter.budgets.is_empty());
        assert!(meter.hold_headers, "the Worker always holds headers");
        assert_eq!(meter.key_id_header.as_deref(), Some("x-llm-key-id"));
        assert_eq!(s.warnings.len(), 4, "{:?}", s.warnings);
        for field in ["budgets", "hold_headers", "collector", "pricing"] {
            assert!(
                s.warnings.iter().any(|w| w.starts_with("METER_CONFIG: ")
                    && w.contains(&format!("field `{field}` ignored by the Worker"))),
                "{field}: {:?}",
                s.warnings
            );
        }
        let plain = Settings::from_vars(
            vars(&[("METER_CONFIG", r#"{"inject_usage": false}"#)]),
            false,
        )
        .expect("valid");
        assert!(plain.warnings.is_empty());
    }

    #[test]
    fn analytics_index_is_key_id_or_a_dimension() {
        let config = r#"{"attribution": {"dimensions": {"team": {"from": ["header:x-team"]}}}}"#;
        let s = Settings::from_vars(vars(&[]), false).expect("valid");
        assert_eq!(s.analytics_index, "key_id");
        let s = Settings::from_vars(
            vars(&[("METER_CONFIG", config), ("ANALYTICS_INDEX", "team")]),
            false,
        )
        .expect("valid");
        assert_eq!((s.analytics_index.as_str(), s.warnings.len()), ("team", 0));
        let s = Settings::from_vars(
            vars(&[("METER_CONFIG", config), ("ANALYTICS_INDEX", "tenant")]),
            false,
        )
        .expect("a bad index is not fatal");
        assert_eq!(s.analytics_index, "key_id");
        assert!(s.warnings[0].starts_with("ANALYTICS_INDEX: \"tenant\""));
    }

    #[test]
    fn budgets_hold_with_the_durable_object_binding() {
        let config = r#"{"budgets": {"default_limit_usd": "5", "period": "day"}}"#;
        let s = Settings::from_vars(vars(&[("METER_CONFIG", config)]), true).expect("valid");
        let meter = s.meter.as_ref().expect("metering on");
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
        assert_eq!(
            meter.budgets.rules[0].limit_for("0123456789ab"),
            Some(llm_cost_core::Usd::parse("5").unwrap())
        );
        let unbound = Settings::from_vars(vars(&[("METER_CONFIG", config)]), false).expect("valid");
        assert!(unbound.meter.as_ref().expect("on").budgets.is_empty());
        assert!(unbound.warnings[0].contains("no `BUDGETS` Durable Object binding"));
    }

    #[test]
    fn envoy_only_budget_fields_are_ignored_with_a_warning_each() {
        let config = r#"{"budgets": {"default_limit_usd": "5", "sync_interval_s": 30,
            "on_unknown_spend": "deny", "spend_token": "tok-0123456789abcdef"}}"#;
        let s = Settings::from_vars(vars(&[("METER_CONFIG", config)]), true).expect("valid");
        let meter = s.meter.as_ref().expect("metering on");
        assert!(!meter.budgets.is_empty(), "the limits still hold");
        assert_eq!(meter.budgets.sync_interval_s, 0);
        assert_eq!(meter.budgets.on_unknown_spend, Default::default());
        assert!(meter.budgets.spend_token.is_none());
        assert_eq!(s.warnings.len(), 3, "{:?}", s.warnings);
        for (warning, field) in s.warnings.iter().zip(ENVOY_ONLY_BUDGET_FIELDS) {
            assert!(
                warning.starts_with(&format!(
                    "METER_CONFIG: field `budgets.{field}` ignored by the Worker"
                )),
                "{warning}"
            );
            assert!(
                !warning.contains("tok-0123456789abcdef"),
                "no secret in logs"
            );
        }
        // Without the binding, the one `budgets` warning says it all.
        let unbound = Settings::from_vars(vars(&[("METER_CONFIG", config)]), false).expect("valid");
        assert_eq!(unbound.warnings.len(), 1, "{:?}", unbound.warnings);
    }

    #[test]
    fn hop_by_hop_and_cloudflare_headers_are_dropped() {
        assert!(is_forwardable_request_header("Authorization"));
        assert!(is_forwardable_request_header("content-type"));
        assert!(!is_forwardable_request_header("Host"));
        assert!(!is_forwardable_request_header("CF-Connecting-IP"));
        assert!(!is_forwardable_request_header("content-length"));
    }
}
