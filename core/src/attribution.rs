//! Attribution: who spent it. Named dimensions (`team`, `feature`, `user`, ...) read from request
//! headers, a tags header and the JSON request body, bounded and optionally hashed, into the
//! record's `attributes`.
//!
//! Owns the `attribution` configuration (its shape is the interface of issue #14), the bounds
//! every value must meet, and the resolution "first non-empty source wins". It does not read
//! headers or bodies itself: a host hands over the headers named by [`Attribution::header_names`]
//! and the core's `Call` hands over the request body it already reads for the rewrite. A value
//! that breaks the bounds is dropped and counted ([`Attributes::dropped`]); it never fails a call.

use alloc::{borrow::ToOwned, collections::BTreeMap, format, string::String, vec::Vec};
use core::fmt::Write as _;

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use crate::config::ConfigError;

/// Most dimensions in one configuration.
pub const MAX_DIMENSIONS: usize = 16;
/// Most sources of one dimension.
pub const MAX_SOURCES: usize = 8;
/// Longest dimension name (also a Prometheus label name).
pub const MAX_NAME_BYTES: usize = 32;
/// Longest stored value; longer ones are dropped and counted.
pub const MAX_VALUE_BYTES: usize = 64;
/// Longest value accepted for hashing (`hash: true`); longer ones are dropped and counted.
pub const MAX_HASHED_INPUT_BYTES: usize = 1024;
/// Most distinct values per metric label the default configuration allows.
pub const DEFAULT_MAX_LABEL_VALUES: usize = 50;
/// Ceiling of `max_label_values` (Prometheus series grow with it).
pub const MAX_LABEL_VALUES_CEILING: usize = 1000;

/// Names a dimension may not take: the record's own fields (a test keeps this in step with the
/// serializer), the report's built-in dimensions and the metric labels the filter already uses.
pub const RESERVED_NAMES: &[&str] = &[
    "ts",
    "request_id",
    "host",
    "provider",
    "endpoint",
    "model_requested",
    "model",
    "stream",
    "status_code",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cache_write_1h_tokens",
    "audio_prompt_tokens",
    "audio_completion_tokens",
    "image_prompt_tokens",
    "image_completion_tokens",
    "audio_duration_ms",
    "input_characters",
    "service_tier",
    "cost_usd",
    "cost_micros",
    "upstream_cost_usd",
    "cost_status",
    "error",
    "pricing_version",
    "breakdown",
    "key_id",
    "priced_as",
    "upstream_inference_cost_usd",
    "is_byok",
    "duration_ms",
    "oversize_events",
    "adjustment_percent",
    "attributes",
    "budget_would_exceed",
    "budget_thresholds",
    "budget_error",
    // report dimensions and metric labels that are not record fields
    "day",
    "month",
    "status",
    "reason",
];

/// Request headers that carry secrets: a `header:` source may read them only with `hash: true`
/// (a record never carries a key, a token or a cookie in clear).
pub const SECRET_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-goog-api-key",
    "cookie",
];

/// Where a dimension's value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// `header:NAME`: a request header (name lower-case).
    Header(String),
    /// `tag:KEY`: `KEY=value` in the comma-separated tags header.
    Tag(String),
    /// `body:a.b.c`: a string at a dotted path of the JSON request body.
    Body(Vec<String>),
}

impl Source {
    fn parse(text: &str) -> Option<Source> {
        let (kind, rest) = text.split_once(':')?;
        let rest = rest.trim();
        if rest.is_empty() {
            return None;
        }
        match kind.trim() {
            "header" if rest.bytes().all(header_byte) => {
                Some(Source::Header(rest.to_ascii_lowercase()))
            }
            "tag"
                if rest
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'=' && b != b',') =>
            {
                Some(Source::Tag(rest.to_owned()))
            }
            "body" => {
                let path: Vec<String> = rest.split('.').map(str::to_owned).collect();
                path.iter()
                    .all(|p| !p.is_empty())
                    .then_some(Source::Body(path))
            }
            _ => None,
        }
    }
}

/// One named dimension.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dimension {
    /// Its name: the key in `attributes`, a metric label, a report dimension.
    pub name: String,
    /// Sources tried in order; the first non-empty value wins.
    pub sources: Vec<Source>,
    /// Store a 12-hex-digit SHA-256 prefix instead of the value (end-user ids are personal data).
    pub hash: bool,
}

/// The validated `attribution` configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attribution {
    /// Request header carrying `key=value, key=value` tags (`tag:` sources).
    pub tags_header: String,
    /// The dimensions, by name.
    pub dimensions: Vec<Dimension>,
    /// Dimensions that become labels of the filter's counters.
    pub metric_labels: Vec<String>,
    /// Distinct values per metric label per Envoy process; the rest are counted under `other`.
    pub max_label_values: usize,
    /// Remove the source headers (and the tags header) before the request goes upstream.
    pub remove_headers: bool,
}

impl Default for Attribution {
    fn default() -> Self {
        Attribution {
            tags_header: "x-llm-tags".into(),
            dimensions: Vec::new(),
            metric_labels: Vec::new(),
            max_label_values: DEFAULT_MAX_LABEL_VALUES,
            remove_headers: false,
        }
    }
}

/// `attribution` as written in the configuration.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct AttributionFile {
    tags_header: String,
    dimensions: BTreeMap<String, DimensionFile>,
    metric_labels: Vec<String>,
    max_label_values: usize,
    remove_headers: bool,
}

impl Default for AttributionFile {
    fn default() -> Self {
        let d = Attribution::default();
        AttributionFile {
            tags_header: d.tags_header,
            dimensions: BTreeMap::new(),
            metric_labels: Vec::new(),
            max_label_values: d.max_label_values,
            remove_headers: false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionFile {
    from: Vec<String>,
    #[serde(default)]
    hash: bool,
}

fn header_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

fn error(field: &str, message: &str) -> ConfigError {
    ConfigError(format!("field `attribution.{field}`: {message}"))
}

impl Attribution {
    pub(crate) fn from_file(file: AttributionFile) -> Result<Attribution, ConfigError> {
        let tags_header = file.tags_header.trim().to_ascii_lowercase();
        if tags_header.is_empty() || !tags_header.bytes().all(header_byte) {
            return Err(error(
                "tags_header",
                &format!("{:?} is not a header name", file.tags_header),
            ));
        }
        if file.dimensions.len() > MAX_DIMENSIONS {
            return Err(error(
                "dimensions",
                &format!("at most {MAX_DIMENSIONS} dimensions"),
            ));
        }
        let mut dimensions = Vec::new();
        for (name, dimension) in file.dimensions {
            let field = format!("dimensions.{name}");
            let well_formed = !name.is_empty()
                && name.len() <= MAX_NAME_BYTES
                && name.as_bytes()[0].is_ascii_lowercase()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !well_formed {
                return Err(error(
                    &field,
                    &format!("a dimension name is a lower-case letter, then letters, digits or `_`, at most {MAX_NAME_BYTES} bytes"),
                ));
            }
            if RESERVED_NAMES.contains(&name.as_str()) {
                return Err(error(
                    &field,
                    &format!("`{name}` is a built-in record field or report dimension; choose another name"),
                ));
            }
            if dimension.from.is_empty() || dimension.from.len() > MAX_SOURCES {
                return Err(error(
                    &format!("{field}.from"),
                    &format!("1 to {MAX_SOURCES} sources"),
                ));
            }
            let mut sources = Vec::new();
            for (i, text) in dimension.from.iter().enumerate() {
                let source = Source::parse(text).ok_or_else(|| {
                    error(
                        &format!("{field}.from[{i}]"),
                        &format!("{text:?} is not `header:NAME`, `tag:KEY` or `body:PATH`"),
                    )
                })?;
                if let Source::Header(name) = &source {
                    if SECRET_HEADERS.contains(&name.as_str()) && !dimension.hash {
                        return Err(error(
                            &format!("{field}.from[{i}]"),
                            &format!(
                                "`{name}` carries a secret: read it only with `\"hash\": true`"
                            ),
                        ));
                    }
                }
                sources.push(source);
            }
            dimensions.push(Dimension {
                name,
                sources,
                hash: dimension.hash,
            });
        }
        for (i, label) in file.metric_labels.iter().enumerate() {
            if !dimensions.iter().any(|d| &d.name == label) {
                return Err(error(
                    &format!("metric_labels[{i}]"),
                    &format!("{label:?} is not a configured dimension"),
                ));
            }
            if file.metric_labels[..i].contains(label) {
                return Err(error(
                    &format!("metric_labels[{i}]"),
                    &format!("{label:?} is listed twice"),
                ));
            }
        }
        if !(1..=MAX_LABEL_VALUES_CEILING).contains(&file.max_label_values) {
            return Err(error(
                "max_label_values",
                &format!("1 to {MAX_LABEL_VALUES_CEILING}"),
            ));
        }
        Ok(Attribution {
            tags_header,
            dimensions,
            metric_labels: file.metric_labels,
            max_label_values: file.max_label_values,
            remove_headers: file.remove_headers,
        })
    }

    /// No dimensions configured: nothing to read, `attributes` is `{}`.
    pub fn is_empty(&self) -> bool {
        self.dimensions.is_empty()
    }

    /// The request headers a host must hand over (lower-case, each once): every `header:` source,
    /// and the tags header when a `tag:` source exists.
    pub fn header_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for source in self.dimensions.iter().flat_map(|d| &d.sources) {
            let name = match source {
                Source::Header(name) => name.as_str(),
                Source::Tag(_) => self.tags_header.as_str(),
                Source::Body(_) => continue,
            };
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    /// Is `name` (any case) a header this configuration reads? Hosts keep such headers on the
    /// request even when they carry the meter's prefix, and drop them when `remove_headers` is on.
    pub fn is_source_header(&self, name: &str) -> bool {
        self.header_names()
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }

    /// Does any dimension read the request body?
    pub fn reads_body(&self) -> bool {
        self.dimensions
            .iter()
            .flat_map(|d| &d.sources)
            .any(|s| matches!(s, Source::Body(_)))
    }

    /// The strings at every `body:` path of `body` (a JSON object), for [`Attribution::resolve`].
    /// Not JSON, or not configured: nothing.
    pub fn body_values(&self, body: &[u8]) -> BodyValues {
        let mut out = BodyValues::default();
        if !self.reads_body() {
            return out;
        }
        let Ok(top) = serde_json::from_slice::<BTreeMap<String, &RawValue>>(body) else {
            return out;
        };
        for source in self.dimensions.iter().flat_map(|d| &d.sources) {
            if let Source::Body(path) = source {
                let joined = path.join(".");
                if out.0.iter().any(|(p, _)| *p == joined) {
                    continue;
                }
                if let Some(value) = string_at(&top, path) {
                    out.0.push((joined, value));
                }
            }
        }
        out
    }

    /// Resolves every dimension from the request's headers (`(name, value)` pairs, names as
    /// given by [`Attribution::header_names`]) and body values.
    pub fn resolve(&self, headers: &[(String, String)], body: &BodyValues) -> Attributes {
        let mut out = Attributes::default();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        };
        for dimension in &self.dimensions {
            let value = dimension.sources.iter().find_map(|source| {
                let value = match source {
                    Source::Header(name) => header(name).map(str::to_owned),
                    Source::Tag(key) => header(&self.tags_header).and_then(|t| tag(t, key)),
                    Source::Body(path) => {
                        let joined = path.join(".");
                        body.0
                            .iter()
                            .find(|(p, _)| *p == joined)
                            .map(|(_, v)| v.clone())
                    }
                }?;
                let value = value.trim();
                (!value.is_empty()).then(|| value.to_owned())
            });
            let Some(value) = value else { continue };
            // The first non-empty value decides: a bad one is dropped, never replaced by a later
            // (possibly less trusted) source.
            match bounded(&value, dimension.hash) {
                Some(value) => {
                    out.values.insert(dimension.name.clone(), value);
                }
                None => out.dropped += 1,
            }
        }
        out
    }
}

/// Strings found at the configured `body:` paths of one request body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BodyValues(Vec<(String, String)>);

/// One call's attributes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Dimension name → value (or hash), for the record's `attributes`.
    pub values: BTreeMap<String, String>,
    /// Values dropped for breaking the bounds (length, charset).
    pub dropped: u32,
}

/// The string at `path` below `top`; `None` when absent or not a string.
fn string_at(top: &BTreeMap<String, &RawValue>, path: &[String]) -> Option<String> {
    let (first, rest) = path.split_first()?;
    let mut raw: &RawValue = top.get(first.as_str())?;
    for key in rest {
        let object: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get()).ok()?;
        raw = object.get(key.as_str())?;
    }
    serde_json::from_str::<String>(raw.get()).ok()
}

/// `key=value` from a `k1=v1, k2=v2` tags header; the first `key` wins.
fn tag(tags: &str, key: &str) -> Option<String> {
    tags.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().to_owned())
    })
}

/// Can `b` appear in a stored value? Letters, digits and `-_.:@/+`: safe in JSON, CSV, a
/// Prometheus label and an Envoy stat name.
pub fn value_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.:@/+".contains(&b)
}

/// The value to store, or `None` when it breaks the bounds.
fn bounded(value: &str, hash: bool) -> Option<String> {
    if hash {
        if value.len() > MAX_HASHED_INPUT_BYTES {
            return None;
        }
        let digest = Sha256::digest(value.as_bytes());
        let mut out = String::with_capacity(12);
        for b in digest.iter().take(6) {
            let _ = write!(out, "{b:02x}");
        }
        return Some(out);
    }
    (value.len() <= MAX_VALUE_BYTES && value.bytes().all(value_byte)).then(|| value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn parse(json: &str) -> Result<Attribution, ConfigError> {
        Attribution::from_file(serde_json::from_str(json).unwrap())
    }

    const ISSUE_EXAMPLE: &str = r#"{
        "tags_header": "x-llm-tags",
        "dimensions": {
          "team":    {"from": ["header:x-team"]},
          "feature": {"from": ["tag:feature", "body:metadata.feature"]},
          "user":    {"from": ["body:user", "body:safety_identifier", "body:metadata.user_id", "header:x-user-id"], "hash": true}
        },
        "metric_labels": ["team"],
        "max_label_values": 50
    }"#;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_issue_example_loads_and_names_what_the_host_must_read() {
        let a = parse(ISSUE_EXAMPLE).unwrap();
        assert_eq!(a.dimensions.len(), 3);
        assert_eq!(a.header_names(), vec!["x-llm-tags", "x-team", "x-user-id"]);
        assert!(a.reads_body());
        assert!(a.is_source_header("X-Team"));
        assert!(!a.is_source_header("authorization"));
    }

    #[test]
    fn sources_are_tried_in_order_first_non_empty_wins() {
        let a = parse(ISSUE_EXAMPLE).unwrap();
        let body = a.body_values(
            br#"{"model":"m","user":"","metadata":{"feature":"from-body","user_id":"u-42"}}"#,
        );
        let got = a.resolve(
            &headers(&[
                ("x-team", " search "),
                ("x-llm-tags", "env=prod, feature=summarize"),
            ]),
            &body,
        );
        assert_eq!(got.values["team"], "search");
        assert_eq!(got.values["feature"], "summarize");
        // `user` is empty, `safety_identifier` absent: `metadata.user_id` wins, hashed.
        let user = &got.values["user"];
        assert_eq!(user.len(), 12);
        assert_ne!(user, "u-42");
        assert_eq!(got.dropped, 0);
        // Without the tag the body's feature is used.
        let got = a.resolve(&headers(&[]), &body);
        assert_eq!(got.values["feature"], "from-body");
        assert!(!got.values.contains_key("team"));
    }

    #[test]
    fn bad_values_are_dropped_and_counted_never_replaced_by_a_later_source() {
        let a = parse(ISSUE_EXAMPLE).unwrap();
        let body = a.body_values(br#"{"metadata":{"feature":"ok"}}"#);
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        let got = a.resolve(
            &headers(&[
                ("x-team", "has space"),
                ("x-llm-tags", &format!("feature={long}")),
            ]),
            &body,
        );
        assert!(got.values.is_empty(), "{got:?}");
        assert_eq!(got.dropped, 2);
        let ok = a.resolve(&headers(&[("x-team", &"y".repeat(MAX_VALUE_BYTES))]), &body);
        assert_eq!(ok.values["team"].len(), MAX_VALUE_BYTES);
    }

    #[test]
    fn hashed_values_accept_any_text_within_the_input_bound() {
        let a = parse(r#"{"dimensions":{"user":{"from":["header:x-user"],"hash":true}}}"#).unwrap();
        let got = a.resolve(
            &headers(&[("x-user", "jane doe@example.com")]),
            &BodyValues::default(),
        );
        assert_eq!(got.values["user"].len(), 12);
        let too_long = "u".repeat(MAX_HASHED_INPUT_BYTES + 1);
        let got = a.resolve(&headers(&[("x-user", &too_long)]), &BodyValues::default());
        assert_eq!((got.values.len(), got.dropped), (0, 1));
    }

    #[test]
    fn body_sources_read_strings_only_and_ignore_non_json() {
        let a = parse(r#"{"dimensions":{"app":{"from":["body:metadata.app"]}}}"#).unwrap();
        for body in [
            &br#"{"metadata":{"app":7}}"#[..],
            br#"{"metadata":"app"}"#,
            b"not json",
            br#"[1]"#,
        ] {
            let got = a.resolve(&[], &a.body_values(body));
            assert!(got.values.is_empty(), "{}", String::from_utf8_lossy(body));
        }
        let got = a.resolve(&[], &a.body_values(br#"{"metadata":{"app":"ch\u0061t"}}"#));
        assert_eq!(got.values["app"], "chat");
    }

    #[test]
    fn built_in_names_and_bad_shapes_are_refused_at_load_time() {
        for (json, needle) in [
            (
                r#"{"dimensions":{"model":{"from":["header:x-m"]}}}"#,
                "dimensions.model`: `model` is a built-in",
            ),
            (
                r#"{"dimensions":{"key_id":{"from":["header:x-k"]}}}"#,
                "built-in",
            ),
            (
                r#"{"dimensions":{"day":{"from":["header:x-d"]}}}"#,
                "built-in",
            ),
            (
                r#"{"dimensions":{"Team":{"from":["header:x-t"]}}}"#,
                "dimensions.Team",
            ),
            (
                r#"{"dimensions":{"team":{"from":[]}}}"#,
                "dimensions.team.from",
            ),
            (
                r#"{"dimensions":{"team":{"from":["cookie:t"]}}}"#,
                "dimensions.team.from[0]",
            ),
            (
                r#"{"dimensions":{"team":{"from":["body:a..b"]}}}"#,
                "from[0]",
            ),
            (
                r#"{"dimensions":{"team":{"from":["header:x team"]}}}"#,
                "from[0]",
            ),
            (r#"{"metric_labels":["team"]}"#, "metric_labels[0]"),
            (r#"{"max_label_values":0}"#, "max_label_values"),
            (
                r#"{"dimensions":{"t":{"from":["header:Authorization"]}}}"#,
                "carries a secret",
            ),
            (r#"{"tags_header":"x tags"}"#, "tags_header"),
        ] {
            let err = parse(json).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
        assert!(parse(r#"{"dimensions":{"t":{"from":["header:cookie"],"hash":true}}}"#).is_ok());
        let many: Vec<String> = (0..=MAX_DIMENSIONS)
            .map(|i| format!(r#""d{i}":{{"from":["header:x-{i}"]}}"#))
            .collect();
        let err = parse(&format!(r#"{{"dimensions":{{{}}}}}"#, many.join(",")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("at most 16 dimensions"), "{err}");
    }

    #[test]
    fn tags_parse_loosely_and_first_key_wins() {
        assert_eq!(tag("a=1,b=2", "b").as_deref(), Some("2"));
        assert_eq!(tag(" a = 1 , a=2", "a").as_deref(), Some("1"));
        assert_eq!(tag("a", "a"), None);
        assert_eq!(tag("ab=1", "a"), None);
    }
}
