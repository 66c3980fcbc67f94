//! Envoy stats: which counters a cost record adds to, and defining them once per VM.
//!
//! Names follow Prometheus' conventions (`promtool check metrics` on Envoy's exposition, run by
//! tests/envoy/test_prometheus.py): every counter ends in `_total` and says its unit
//! (`llmcost.cost_micros_total`: micro-USD). Envoy exports a stat as it is named (1.40 adds no
//! suffix), so the `_total` is part of the name we define.
//!
//! Names end in `.model=<id>`, `.cost_status=<status>` or `.reason=<error>` so that a bootstrap
//! `stats_tags` rule (`(\.model=(.+))$`, ...) turns the suffix into a Prometheus label. Envoy shows
//! them under `wasmcustom.` in `/stats` (stripped in `/stats/prometheus`). Label values are
//! bounded: the model is the core's `metric_model` (price-table id or `other`) and the error is
//! one of the core's fixed codes (anything else becomes `other`).
//!
//! Attribution labels (`metric_labels`) come before the model on the per-model counters:
//! `llmcost.cost_micros_total.team=search.model=<id>`, made a label by
//! `(\.team=([^=]+))\.[a-z_]+=`. Their values are bounded by `labels` (at most
//! `max_label_values`, then `other`) and by the core's value charset (no `=`).

use std::collections::HashMap;

use llm_cost_core::CostRecord;
use proxy_wasm::hostcalls;
use proxy_wasm::types::MetricType;

/// Prefix of every counter we define.
pub const PREFIX: &str = "llmcost";

/// Counter names and increments for one finished call; `labels` are the attribution labels
/// `(name, admitted value)` of the per-model counters.
pub fn record_increments(
    record: &CostRecord,
    metric_model: &str,
    labels: &[(String, String)],
) -> Vec<(String, u64)> {
    let model = label(metric_model);
    let attribution: String = labels
        .iter()
        .map(|(name, value)| format!(".{name}={}", label(value)))
        .collect();
    let per_model = |what: &str, n: Option<u64>| {
        n.map(|n| (format!("{PREFIX}.{what}{attribution}.model={model}"), n))
    };
    let mut out: Vec<(String, u64)> = [
        per_model("requests_total", Some(1)),
        per_model("prompt_tokens_total", record.prompt_tokens),
        per_model("completion_tokens_total", record.completion_tokens),
        per_model("cached_tokens_total", record.cached_tokens),
        per_model("reasoning_tokens_total", record.reasoning_tokens),
        per_model("cost_micros_total", record.cost_micros),
    ]
    .into_iter()
    .flatten()
    .collect();
    let status = record.cost_status.as_str();
    out.push((format!("{PREFIX}.records_total.cost_status={status}"), 1));
    if let Some(error) = &record.error {
        out.push((
            format!("{PREFIX}.errors_total.reason={}", label(error.as_str())),
            1,
        ));
    }
    out
}

/// A label value safe for a stat name: model ids and error codes pass, anything odd is `other`.
pub fn label(value: &str) -> &str {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"-_./:@+".contains(&b);
    if value.is_empty() || value.len() > 128 || !value.bytes().all(ok) {
        "other"
    } else {
        value
    }
}

/// Counters defined in this VM, by name, and increments not yet handed to the host.
///
/// Increments are summed here and applied from the root's timer (`flush`): a handful of host
/// calls per flush interval instead of about eight per request.
#[derive(Debug, Default)]
pub struct Metrics {
    ids: HashMap<String, u32>,
    pending: HashMap<String, u64>,
}

impl Metrics {
    /// Adds `n` to the counter `name` (applied at the next `flush`).
    pub fn add(&mut self, name: &str, n: u64) {
        if n == 0 {
            return;
        }
        match self.pending.get_mut(name) {
            Some(sum) => *sum = sum.saturating_add(n),
            None => {
                self.pending.insert(name.to_owned(), n);
            }
        }
    }

    /// Adds every counter of a finished call.
    pub fn add_record(
        &mut self,
        record: &CostRecord,
        metric_model: &str,
        labels: &[(String, String)],
    ) {
        for (name, n) in record_increments(record, metric_model, labels) {
            self.add(&name, n);
        }
    }

    /// Hands the summed increments to the host, defining counters on first use.
    pub fn flush(&mut self) {
        for (name, n) in self.pending.drain() {
            let id = match self.ids.get(&name) {
                Some(id) => *id,
                None => match hostcalls::define_metric(MetricType::Counter, &name) {
                    Ok(id) => *self.ids.entry(name).or_insert(id),
                    Err(status) => {
                        log::debug!("llm-cost: metric refused: {status:?}");
                        continue;
                    }
                },
            };
            let _ = hostcalls::increment_metric(id, i64::try_from(n).unwrap_or(i64::MAX));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_cost_core::replay::{replay, Recorded};
    use llm_cost_core::{MeterConfig, RequestHead, ResponseHead, ResponsePlan};
    use std::rc::Rc;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../fixtures/recordings/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// A JSON call through the core the way the filter drives it.
    fn json_call(body: &[u8]) -> (CostRecord, String) {
        let config = Rc::new(MeterConfig::default());
        let replayed = replay(
            &config,
            &Recorded {
                request_head: RequestHead {
                    method: "POST",
                    host: "openrouter.ai",
                    path: "/api/v1/chat/completions",
                    ..RequestHead::default()
                },
                response_head: ResponseHead {
                    status: 200,
                    content_type: Some("application/json"),
                    ..ResponseHead::default()
                },
                response: body,
                end_ms: 5,
                ..Recorded::default()
            },
        );
        assert!(matches!(
            replayed.response_plan,
            ResponsePlan::BufferJson { .. }
        ));
        let outcome = replayed.outcome;
        (outcome.record, outcome.metric_model)
    }

    #[test]
    fn a_priced_call_counts_tokens_and_cost_under_its_price_table_model() {
        let (record, model) = json_call(&fixture("openrouter-cache-all-settings-real-api-0.json"));
        let got = record_increments(&record, &model, &[]);
        let m = "model=anthropic/claude-sonnet-4.6";
        for (name, n) in [
            (format!("llmcost.requests_total.{m}"), 1),
            (format!("llmcost.prompt_tokens_total.{m}"), 2572),
            (format!("llmcost.completion_tokens_total.{m}"), 63),
            (format!("llmcost.cost_micros_total.{m}"), 10588),
            ("llmcost.records_total.cost_status=exact".to_owned(), 1),
        ] {
            assert!(
                got.contains(&(name.clone(), n)),
                "{name}={n} missing in {got:?}"
            );
        }
        assert!(!got
            .iter()
            .any(|(name, _)| name.starts_with("llmcost.errors_total.")));
    }

    #[test]
    fn a_failed_call_counts_its_error_reason_under_model_other() {
        let (record, model) = json_call(b"{not json");
        let got = record_increments(&record, &model, &[]);
        assert!(got.contains(&("llmcost.requests_total.model=other".to_owned(), 1)));
        assert!(got.contains(&("llmcost.records_total.cost_status=error".to_owned(), 1)));
        assert!(got.contains(&("llmcost.errors_total.reason=malformed_json".to_owned(), 1)));
        assert!(!got.iter().any(|(name, _)| name.contains("cost_micros")));
    }

    #[test]
    fn attribution_labels_come_before_the_model_on_the_per_model_counters() {
        let (record, model) = json_call(&fixture("openrouter-cache-all-settings-real-api-0.json"));
        let labels = [
            ("team".to_owned(), "search".to_owned()),
            ("feature".to_owned(), "has space".to_owned()),
        ];
        let got = record_increments(&record, &model, &labels);
        let name =
            "llmcost.cost_micros_total.team=search.feature=other.model=anthropic/claude-sonnet-4.6";
        assert!(got.contains(&(name.to_owned(), 10588)), "{got:?}");
        assert!(got.contains(&("llmcost.records_total.cost_status=exact".to_owned(), 1)));
    }

    #[test]
    fn every_counter_name_ends_in_total_before_its_labels() {
        let (priced, model) = json_call(&fixture("openrouter-cache-all-settings-real-api-0.json"));
        let (failed, other) = json_call(b"{not json");
        let labels = [("team".to_owned(), "search".to_owned())];
        let mut names = record_increments(&priced, &model, &labels);
        names.extend(record_increments(&failed, &other, &labels));
        for (name, _) in names {
            // The family is the name up to its first `.label=` suffix (what stats_tags strip).
            let family = name.split('=').next().and_then(|s| s.rsplit_once('.'));
            let family = family.map_or(name.as_str(), |(family, _)| family);
            assert!(family.ends_with("_total"), "{name}");
        }
    }

    #[test]
    fn labels_keep_model_ids_and_error_codes() {
        assert_eq!(label("openai/gpt-4.1-mini"), "openai/gpt-4.1-mini");
        assert_eq!(
            label("anthropic/claude-3.5-sonnet:beta"),
            "anthropic/claude-3.5-sonnet:beta"
        );
        assert_eq!(label("truncated_stream"), "truncated_stream");
        assert_eq!(label("has space"), "other");
        assert_eq!(label(""), "other");
        assert_eq!(label(&"x".repeat(200)), "other");
    }
}
