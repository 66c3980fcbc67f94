//! Anthropic: `GET /v1/organizations/cost_report` (what was charged per day, workspace and cost
//! item, in cents as decimal strings) and `GET /v1/organizations/usage_report/messages` (tokens
//! per day, model, API key, workspace and service tier), both with an Admin API key
//! (`sk-ant-admin…`), both paged by `has_more` / `next_page`.
//!
//! The cost report has no API-key dimension and the usage report no request count; Anthropic's
//! `api_key_id` (`apikey_…`) is not derived from the key, so such rows cannot be joined to our
//! `key_id`.

use serde::Deserialize;

use super::http::{Client, FetchError};
use super::row::{count_of_json, day_of_rfc3339, next_day, usd_of_cents, BillingRow};

pub(super) const DEFAULT_BASE: &str = "https://api.anthropic.com";
pub(super) const KEY_VARIABLE: &str = "ANTHROPIC_ADMIN_KEY";
pub(super) const DENIED_HINT: &str = "Anthropic's usage and cost reports need an Admin API key (sk-ant-admin…), \
which only an organization admin can create (Console → Settings → Admin keys); a regular API key (sk-ant-api…) \
is refused. Put it in $ANTHROPIC_ADMIN_KEY.";
/// The API version header every Anthropic request carries.
pub(super) const VERSION: &str = "2023-06-01";
const COSTS: &str = "/v1/organizations/cost_report";
const MESSAGES: &str = "/v1/organizations/usage_report/messages";

type Page = super::Page<Bucket>;

#[derive(Deserialize)]
struct Bucket {
    starting_at: String,
    results: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// Fetches the cost report and the messages usage report for `since..=until`.
pub(super) fn fetch(
    client: &mut Client,
    since: &str,
    until: &str,
) -> Result<Vec<BillingRow>, FetchError> {
    let end = next_day(until).unwrap_or_default();
    let window = |groups: &[&str]| {
        super::report_window(
            ("starting_at", format!("{since}T00:00:00Z")),
            ("ending_at", format!("{end}T00:00:00Z")),
            groups,
        )
    };
    let mut rows = super::paged(
        client,
        COSTS,
        window(&["workspace_id", "description"]),
        parse_costs,
    )?;
    rows.extend(super::paged(
        client,
        MESSAGES,
        window(&["model", "api_key_id", "workspace_id", "service_tier"]),
        parse_messages,
    )?);
    Ok(rows)
}

fn page(body: &[u8]) -> Result<Page, String> {
    serde_json::from_slice(body).map_err(|e| e.to_string())
}

fn day(bucket: &Bucket) -> Result<String, String> {
    day_of_rfc3339(&bucket.starting_at)
        .ok_or_else(|| format!("starting_at {:?} is not RFC 3339", bucket.starting_at))
}

fn parse_costs(body: &[u8]) -> super::PageRows {
    let page = page(body)?;
    let mut rows = Vec::new();
    for bucket in &page.data {
        let day = day(bucket)?;
        for r in &bucket.results {
            let text = |name: &str| r.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            let currency = text("currency").unwrap_or_else(|| "USD".into());
            if !currency.eq_ignore_ascii_case("usd") {
                return Err(format!("currency {currency:?}: only USD is reconciled"));
            }
            let amount = text("amount").ok_or("cost result without a decimal-string amount")?;
            let cost = usd_of_cents(&amount).map_err(|e| e.to_string())?;
            rows.push(BillingRow {
                provider: "anthropic".into(),
                day: day.clone(),
                model: text("model"),
                project: text("workspace_id"),
                service_tier: text("service_tier"),
                line_item: text("description"),
                cost_usd: Some(cost.to_decimal_string()),
                source: format!("GET {COSTS}"),
                ..BillingRow::default()
            });
        }
    }
    Ok((rows, page.next()))
}

fn parse_messages(body: &[u8]) -> super::PageRows {
    let page = page(body)?;
    let mut rows = Vec::new();
    for bucket in &page.data {
        let day = day(bucket)?;
        for r in &bucket.results {
            let text = |name: &str| r.get(name).and_then(|v| v.as_str()).map(str::to_owned);
            let count = |name: &str| count_of_json(r.get(name));
            let creation = r.get("cache_creation");
            let written = ["ephemeral_1h_input_tokens", "ephemeral_5m_input_tokens"]
                .iter()
                .map(|n| count_of_json(creation.and_then(|c| c.get(*n))).unwrap_or(0))
                .try_fold(0u64, |a, b| a.checked_add(b));
            let uncached = count("uncached_input_tokens")
                .ok_or("usage result without uncached_input_tokens")?;
            let read = count("cache_read_input_tokens").unwrap_or(0);
            let written = written.ok_or("token counts do not fit")?;
            // As the record's prompt_tokens: every input token, cached and cache-written ones included.
            let prompt = uncached
                .checked_add(read)
                .and_then(|p| p.checked_add(written))
                .ok_or("token counts do not fit")?;
            rows.push(BillingRow {
                provider: "anthropic".into(),
                day: day.clone(),
                model: text("model"),
                api_key: text("api_key_id"),
                project: text("workspace_id"),
                service_tier: text("service_tier"),
                prompt_tokens: Some(prompt),
                completion_tokens: count("output_tokens"),
                cached_tokens: Some(read),
                cache_write_tokens: Some(written),
                source: format!("GET {MESSAGES}"),
                ..BillingRow::default()
            });
        }
    }
    Ok((rows, page.next()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The response example of Anthropic's "Get Messages Usage Report" reference page.
    const MESSAGES_EXAMPLE: &str = r#"{"data":[{"ending_at":"2025-08-02T00:00:00Z","results":[{
      "api_key_id":"apikey_01Rj2N8SVvo6BePZj99NhmiT","cache_creation":{"ephemeral_1h_input_tokens":1000,
      "ephemeral_5m_input_tokens":500},"cache_read_input_tokens":200,"context_window":"0-200k",
      "model":"claude-sonnet-4-20250514","output_tokens":500,"server_tool_use":{"web_search_requests":10},
      "service_tier":"standard","uncached_input_tokens":1500,"workspace_id":"wrkspc_01JwQvzr7rXLA5AGx3HKfFUJ"}],
      "starting_at":"2025-08-01T00:00:00Z"}],"has_more":true,"next_page":"2019-12-27T18:11:19.117Z"}"#;

    #[test]
    fn usage_report_tokens_add_up_like_the_record() {
        let (rows, next) = parse_messages(MESSAGES_EXAMPLE.as_bytes()).unwrap();
        assert_eq!(next.as_deref(), Some("2019-12-27T18:11:19.117Z"));
        let r = &rows[0];
        assert_eq!(r.day, "2025-08-01");
        assert_eq!(r.prompt_tokens, Some(1500 + 200 + 1000 + 500));
        assert_eq!(
            (r.cached_tokens, r.cache_write_tokens, r.completion_tokens),
            (Some(200), Some(1500), Some(500))
        );
        assert_eq!(
            r.api_key.as_deref(),
            Some("apikey_01Rj2N8SVvo6BePZj99NhmiT")
        );
        assert_eq!((r.key_id.as_deref(), r.requests), (None, None));
    }

    #[test]
    fn cost_report_amounts_are_cents() {
        let body = r#"{"data":[{"starting_at":"2025-08-01T00:00:00Z","ending_at":"2025-08-02T00:00:00Z","results":[
          {"amount":"123.45","currency":"USD","cost_type":"tokens","description":"Claude Sonnet 4 Usage - Input Tokens",
           "model":"claude-sonnet-4-20250514","service_tier":"standard","token_type":"uncached_input_tokens",
           "context_window":"0-200k","workspace_id":null}]}],"has_more":false,"next_page":null}"#;
        let (rows, next) = parse_costs(body.as_bytes()).unwrap();
        assert_eq!(next, None);
        assert_eq!(rows[0].cost_usd.as_deref(), Some("1.2345"));
        assert_eq!(rows[0].model.as_deref(), Some("claude-sonnet-4-20250514"));
        assert!(parse_costs(body.replace("\"123.45\"", "123.45").as_bytes()).is_err());
    }
}
