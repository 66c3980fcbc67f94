//! Worker settings read once from the environment (`wrangler.toml` vars and secrets).
//!
//! Pure code: no Worker runtime types, so it builds and is unit-tested on the host.

use llm_cost_core::MeterConfig;

/// Upstream used when `UPSTREAM_BASE_URL` is unset or empty.
pub const DEFAULT_UPSTREAM: &str = "https://openrouter.ai";

/// Everything the Worker needs per request, parsed once per isolate.
pub struct Settings {
    /// Upstream origin (scheme, host, optional port and path prefix), without a trailing `/`.
    pub upstream_base: String,
    /// Upstream host (`host[:port]`), given to the core as the request's authority.
    pub upstream_authority: String,
    /// Where cost records are POSTed as NDJSON, if anywhere.
    pub log_sink_url: Option<String>,
    /// Core metering configuration; `Err` holds why metering is disabled (traffic still flows).
    pub meter: Result<MeterConfig, String>,
}

impl Settings {
    /// Builds settings from a variable lookup (`UPSTREAM_BASE_URL`, `LOG_SINK_URL`,
    /// `HEADER_PREFIX`, `MODEL_OVERRIDES`). Only a bad upstream URL is fatal; a bad metering
    /// variable disables metering and is reported in `meter`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Settings, String> {
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
        if let Some(sink) = &log_sink_url {
            if authority_of(sink).is_none() {
                return Err("LOG_SINK_URL must be an http:// or https:// URL".to_owned());
            }
        }
        let meter = meter_config(non_empty("HEADER_PREFIX"), non_empty("MODEL_OVERRIDES"));
        Ok(Settings {
            upstream_base,
            upstream_authority,
            log_sink_url,
            meter,
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

/// Builds the core configuration from the two metering variables.
fn meter_config(
    header_prefix: Option<String>,
    model_overrides: Option<String>,
) -> Result<MeterConfig, String> {
    let mut config = MeterConfig::default();
    if let Some(raw) = model_overrides {
        // Reuse the core's own validation: MODEL_OVERRIDES is the `model_overrides` member of the
        // core's JSON configuration.
        let json = format!("{{\"model_overrides\":{raw}}}");
        config =
            MeterConfig::from_json(json.as_bytes()).map_err(|e| format!("MODEL_OVERRIDES: {e}"))?;
    }
    if let Some(prefix) = header_prefix {
        if !is_header_token(&prefix) {
            return Err("HEADER_PREFIX must be a header-name token such as X-LLM-Cost".to_owned());
        }
        config.header_prefix = prefix;
    }
    Ok(config)
}

/// `host[:port]` of an absolute http(s) URL.
fn authority_of(url: &str) -> Option<&str> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    (!authority.is_empty() && !authority.contains('@')).then_some(authority)
}

/// RFC 9110 token characters, which is what a header name may contain.
fn is_header_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
        let s = Settings::from_vars(vars(&[])).expect("defaults are valid");
        assert_eq!(s.upstream_base, "https://openrouter.ai");
        assert_eq!(s.upstream_authority, "openrouter.ai");
        assert!(s.log_sink_url.is_none());
        let meter = s.meter.expect("default metering config");
        assert_eq!(meter.header_prefix, MeterConfig::default().header_prefix);
        assert_eq!(
            s.upstream_url("/api/v1/chat/completions?a=1"),
            "https://openrouter.ai/api/v1/chat/completions?a=1"
        );
    }

    #[test]
    fn reads_upstream_sink_and_prefix() {
        let s = Settings::from_vars(vars(&[
            ("UPSTREAM_BASE_URL", "http://127.0.0.1:9000/"),
            ("LOG_SINK_URL", "http://127.0.0.1:9001/records"),
            ("HEADER_PREFIX", "X-Team-Cost"),
            ("MODEL_OVERRIDES", " "),
        ]))
        .expect("valid settings");
        assert_eq!(s.upstream_base, "http://127.0.0.1:9000");
        assert_eq!(s.upstream_authority, "127.0.0.1:9000");
        assert_eq!(
            s.log_sink_url.as_deref(),
            Some("http://127.0.0.1:9001/records")
        );
        assert_eq!(s.meter.expect("valid").header_prefix, "X-Team-Cost");
        assert_eq!(
            s.upstream_url("v1/models"),
            "http://127.0.0.1:9000/v1/models"
        );
    }

    #[test]
    fn bad_upstream_is_fatal_bad_metering_is_not() {
        assert!(Settings::from_vars(vars(&[("UPSTREAM_BASE_URL", "ftp://x")])).is_err());
        assert!(Settings::from_vars(vars(&[("LOG_SINK_URL", "nope")])).is_err());
        let s = Settings::from_vars(vars(&[("MODEL_OVERRIDES", "{not json")]))
            .expect("metering faults are not fatal");
        assert!(s.meter.unwrap_err().starts_with("MODEL_OVERRIDES"));
        let s = Settings::from_vars(vars(&[("HEADER_PREFIX", "bad prefix")])).expect("not fatal");
        assert!(s.meter.is_err());
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
