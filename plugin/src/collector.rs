//! The collector settings: where the filter sends cost records (an Envoy cluster, batched NDJSON
//! `POST`s). Envoy transport, so they live here, not in the shared core configuration: the core
//! passes the `collector` section through unparsed ([`MeterConfig::collector_json`]) and this
//! module reads and validates it, naming the field at fault like the core does.

use llm_cost_core::config::field_error;
use llm_cost_core::{ConfigError, MeterConfig};
use serde::Deserialize;

/// Where and how the filter sends cost records.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// Send records at all (off: records only reach access logs via filter state, e.g. OTLP).
    pub enabled: bool,
    /// Envoy cluster receiving `POST`ed NDJSON batches.
    pub cluster: String,
    /// `:authority` of the collector requests.
    pub authority: String,
    /// `:path` of the collector requests.
    pub path: String,
    /// Timeout of one collector request.
    pub timeout_ms: u64,
    /// How often queued records are flushed.
    pub flush_interval_ms: u64,
    /// Most records in one POST.
    pub max_batch_records: usize,
    /// Most records waiting; past it the oldest are dropped (and counted).
    pub max_queue_records: usize,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            enabled: true,
            cluster: "llm_cost_collector".into(),
            authority: "llm-cost-collector".into(),
            path: "/ingest".into(),
            timeout_ms: 2000,
            flush_interval_ms: 500,
            max_batch_records: 500,
            max_queue_records: 10_000,
        }
    }
}

impl CollectorConfig {
    /// The `collector` section of `config` (defaults if absent), validated.
    pub fn of(config: &MeterConfig) -> Result<CollectorConfig, ConfigError> {
        let Some(json) = config.collector_json() else {
            return Ok(CollectorConfig::default());
        };
        let c: CollectorConfig = serde_json::from_slice(json.as_bytes())
            .map_err(|e| field_error(json.as_bytes(), &e, "collector"))?;
        if c.timeout_ms == 0
            || c.flush_interval_ms == 0
            || c.max_batch_records == 0
            || c.max_queue_records == 0
        {
            return Err(ConfigError(
                "field `collector`: timeout_ms, flush_interval_ms, max_batch_records and max_queue_records must be greater than 0".into(),
            ));
        }
        if !c.path.starts_with('/') {
            return Err(ConfigError(format!(
                "field `collector.path`: {:?} must start with `/`",
                c.path
            )));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collector(json: &str) -> Result<CollectorConfig, ConfigError> {
        CollectorConfig::of(&MeterConfig::from_json(json.as_bytes()).unwrap())
    }

    #[test]
    fn absent_means_defaults_and_fields_apply() {
        assert_eq!(collector("{}").unwrap(), CollectorConfig::default());
        let c = collector(r#"{"collector":{"cluster":"c","flush_interval_ms":50}}"#).unwrap();
        assert_eq!((c.cluster.as_str(), c.flush_interval_ms), ("c", 50));
        assert_eq!(c.path, "/ingest");
    }

    #[test]
    fn errors_name_the_collector_field() {
        let err = collector(r#"{"collector":{"clustr":"c"}}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `clustr`"), "{err}");
        assert!(err.to_string().contains("field `collector`"), "{err}");
        let err = collector(r#"{"collector":{"timeout_ms":-1}}"#).unwrap_err();
        assert!(
            err.to_string().contains("field `collector.timeout_ms`"),
            "{err}"
        );
        let err = collector(r#"{"collector":{"path":"ingest"}}"#).unwrap_err();
        assert!(err.to_string().contains("field `collector.path`"), "{err}");
        let err = collector(r#"{"collector":{"max_batch_records":0}}"#).unwrap_err();
        assert!(err.to_string().contains("field `collector`"), "{err}");
    }
}
