//! OpenAI: `GET /v1/organization/costs` (what was charged, per day, line item, project and key)
//! and `GET /v1/organization/usage/completions` (requests and tokens per day, model, key,
//! project and service tier), both with an admin key holding the `api.usage.read` scope, both
//! paged by `has_more` / `next_page` (OpenAI's OpenAPI document, `UsageResponse`).
//!
//! A cost line item names the model and the kind of token (`gpt-4o-2024-08-06, input`); a line
//! item without one (a tool, storage) is kept as its own `model`, so it shows as spend nobody
//! metered instead of vanishing. OpenAI's `api_key_id` (`key_…`) is not derived from the key:
//! such rows cannot be joined to our `key_id`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::http::{Client, FetchError};
use super::row::{count_of_json, day_of_unix, day_start, next_day, usd_of_json, BillingRow};

pub(super) const DEFAULT_BASE: &str = "https://api.openai.com";
pub(super) const KEY_VARIABLE: &str = "OPENAI_ADMIN_KEY";
pub(super) const DENIED_HINT: &str = "OpenAI's usage and cost endpoints need an organization admin key \
(sk-admin-…) with the api.usage.read scope: create one at platform.openai.com/settings/organization/admin-keys \
(Permissions: Usage → Read) as an organization owner; a project or service-account key cannot read them. \
Put it in $OPENAI_ADMIN_KEY.";
const COSTS: &str = "/v1/organization/costs";
const COMPLETIONS: &str = "/v1/organization/usage/completions";

type Page = super::Page<Bucket>;

#[derive(Deserialize)]
struct Bucket {
    start_time: u64,
    /// Kept as text: a `serde_json::Value` would turn `amount.value` into an `f64`.
    results: Vec<Box<RawValue>>,
}

#[derive(Deserialize)]
struct CostResult {
    amount: Amount,
    #[serde(default)]
    line_item: Option<String>,
    #[serde(default)]
    project_id: Option<String>,
    #[serde(default)]
    api_key_id: Option<String>,
}

#[derive(Deserialize)]
struct Amount {
    value: Box<RawValue>,
    #[serde(default)]
    currency: Option<String>,
}

/// Fetches costs and completions usage for `since..=until`.
pub(super) fn fetch(
    client: &mut Client,
    since: &str,
    until: &str,
) -> Result<Vec<BillingRow>, FetchError> {
    let start = day_start(since).unwrap_or(0).to_string();
    let end = next_day(until)
        .and_then(|d| day_start(&d))
        .unwrap_or(0)
        .to_string();
    let window = |groups: &[&str]| {
        super::report_window(
            ("start_time", start.clone()),
            ("end_time", end.clone()),
            groups,
        )
    };
    let mut rows = super::paged(
        client,
        COSTS,
        window(&["line_item", "project_id", "api_key_id"]),
        parse_costs,
    )?;
    rows.extend(super::paged(
        client,
        COMPLETIONS,
        window(&["model", "api_key_id", "project_id", "service_tier"]),
        parse_completions,
    )?);
    Ok(rows)
}

/// The model a cost line item is for: the text before `, ` (`gpt-4o-2024-08-06, input`), else
/// the whole line item.
pub fn model_of_line_item(line_item: &str) -> &str {
    line_item
        .split_once(", ")
        .map_or(line_item, |(model, _)| model)
        .trim()
}

fn page(body: &[u8]) -> Result<Page, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn parse_costs(body: &[u8]) -> super::PageRows {
    let page = page(body)?;
    let mut rows = Vec::new();
    for bucket in &page.data {
        for result in &bucket.results {
            let result: CostResult =
                serde_json::from_str(result.get()).map_err(|e| format!("costs result: {e}"))?;
            let currency = result.amount.currency.as_deref().unwrap_or("usd");
            if !currency.eq_ignore_ascii_case("usd") {
                return Err(format!("currency {currency:?}: only USD is reconciled"));
            }
            let cost = usd_of_json(&result.amount.value).map_err(|e| e.to_string())?;
            rows.push(BillingRow {
                provider: "openai".into(),
                day: day_of_unix(bucket.start_time),
                model: result
                    .line_item
                    .as_deref()
                    .map(|l| model_of_line_item(l).to_owned()),
                api_key: result.api_key_id,
                project: result.project_id,
                line_item: result.line_item,
                cost_usd: Some(cost.to_decimal_string()),
                source: format!("GET {COSTS}"),
                ..BillingRow::default()
            });
        }
    }
    Ok((rows, page.next()))
}

fn parse_completions(body: &[u8]) -> super::PageRows {
    let page = page(body)?;
    let mut rows = Vec::new();
    for bucket in &page.data {
        for raw in &bucket.results {
            let r: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(raw.get()).map_err(|e| format!("completions result: {e}"))?;
            let text = |name: &str| r.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            let count = |name: &str| count_of_json(r.get(name));
            let (Some(input), Some(output)) = (count("input_tokens"), count("output_tokens"))
            else {
                return Err("completions result without input_tokens/output_tokens".into());
            };
            rows.push(BillingRow {
                provider: "openai".into(),
                day: day_of_unix(bucket.start_time),
                model: text("model"),
                api_key: text("api_key_id"),
                project: text("project_id"),
                service_tier: text("service_tier"),
                requests: count("num_model_requests"),
                prompt_tokens: Some(input),
                completion_tokens: Some(output),
                cached_tokens: count("input_cached_tokens"),
                cache_write_tokens: count("input_cache_write_tokens"),
                source: format!("GET {COMPLETIONS}"),
                ..BillingRow::default()
            });
        }
    }
    Ok((rows, page.next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The x-oaiMeta response examples of openai-openapi's openapi.yaml (costs, then completions).
    const COSTS_EXAMPLE: &str = r#"{"object":"page","data":[{"object":"bucket","start_time":1730419200,"end_time":1730505600,
      "results":[{"object":"organization.costs.result","amount":{"value":0.06,"currency":"usd"},"line_item":null,
      "project_id":null,"api_key_id":null,"quantity":null,"quantity_unit":null}]}],"has_more":false,"next_page":null}"#;
    const COMPLETIONS_EXAMPLE: &str = r#"{"object":"page","data":[{"object":"bucket","start_time":1730419200,"end_time":1730505600,
      "results":[{"object":"organization.usage.completions.result","input_tokens":1000,"input_cached_tokens":400,
      "input_cache_write_tokens":100,"input_uncached_tokens":500,"output_tokens":500,"input_text_tokens":400,
      "output_text_tokens":400,"input_cached_text_tokens":300,"input_audio_tokens":50,"input_cached_audio_tokens":50,
      "output_audio_tokens":50,"input_image_tokens":50,"input_cached_image_tokens":50,"output_image_tokens":50,
      "num_model_requests":5,"project_id":null,"user_id":null,"api_key_id":null,"model":null,"batch":null,
      "service_tier":null}]}],"has_more":true,"next_page":"page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="}"#;

    #[test]
    fn documented_examples_parse_into_rows() {
        let (rows, next) = parse_costs(COSTS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(next, None);
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].day.as_str(), rows[0].cost_usd.as_deref()),
            ("2024-11-01", Some("0.06"))
        );
        let (rows, next) = parse_completions(COMPLETIONS_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(next.as_deref(), Some("page_AAAAAGdGxdEiJdKOAAAAAGcqsYA="));
        let r = &rows[0];
        assert_eq!(
            (r.requests, r.prompt_tokens, r.completion_tokens),
            (Some(5), Some(1000), Some(500))
        );
        assert_eq!(
            (r.cached_tokens, r.cache_write_tokens, r.cost_usd.as_deref()),
            (Some(400), Some(100), None)
        );
    }

    #[test]
    fn cost_line_items_name_their_model() {
        assert_eq!(
            model_of_line_item("gpt-4o-2024-08-06, input"),
            "gpt-4o-2024-08-06"
        );
        assert_eq!(
            model_of_line_item("gpt-4o-mini-2024-07-18, cached input"),
            "gpt-4o-mini-2024-07-18"
        );
        assert_eq!(
            model_of_line_item("web search tool calls"),
            "web search tool calls"
        );
    }

    #[test]
    fn cost_values_keep_their_exact_digits_and_foreign_currency_is_refused() {
        let body = COSTS_EXAMPLE.replace("0.06", "0.8958740000000000001");
        let (rows, _) = parse_costs(body.as_bytes()).unwrap();
        assert_eq!(rows[0].cost_usd.as_deref(), Some("0.8958740000000000001"));
        let body = COSTS_EXAMPLE.replace("\"usd\"", "\"eur\"");
        assert!(parse_costs(body.as_bytes()).is_err());
    }
}
