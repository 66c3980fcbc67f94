//! OpenRouter: `GET /api/v1/activity` (management key) — spend, requests and tokens per UTC day,
//! model and provider endpoint for the last 30 completed days.
//!
//! Activity rows carry no key, but the endpoint filters by `api_key_hash`; the hash is the
//! lowercase hex SHA-256 of the key (OpenRouter's docs, "Deep-link to the user's key": the
//! `api_key_hash` of the logs page and `/keys/{hash}` are `sha256Hex(key)`), so its first 12
//! digits are our `key_id`. So: list the keys (`GET /api/v1/keys`, paged by `offset`), fetch the
//! activity of each, and fetch the unfiltered activity once more; what the keys do not account
//! for (deleted keys, keys outside the listed workspace) is a row with no key.

use std::collections::BTreeMap;

use llm_cost_core::Usd;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::http::{Client, FetchError, MAX_PAGES};
use super::row::{usd_of_json, BillingRow};

pub(super) const DEFAULT_BASE: &str = "https://openrouter.ai";
pub(super) const KEY_VARIABLE: &str = "OPENROUTER_MANAGEMENT_KEY";
pub(super) const DENIED_HINT: &str = "OpenRouter's /api/v1/activity and /api/v1/keys need a management key \
(openrouter.ai/settings/management-keys); an inference key (sk-or-v1-… used for completions) is refused. \
Put the management key in $OPENROUTER_MANAGEMENT_KEY.";
const ACTIVITY: &str = "/api/v1/activity";
const KEYS: &str = "/api/v1/keys";

#[derive(Deserialize)]
struct KeysPage {
    data: Vec<KeyEntry>,
}

#[derive(Deserialize)]
struct KeyEntry {
    hash: String,
}

#[derive(Deserialize)]
struct ActivityPage {
    data: Vec<Item>,
}

/// One activity item (OpenRouter's `ActivityItem`).
#[derive(Deserialize)]
struct Item {
    date: String,
    model: String,
    #[serde(default)]
    model_permaslug: Option<String>,
    #[serde(default)]
    endpoint_id: Option<String>,
    usage: Box<RawValue>,
    #[serde(default)]
    byok_usage_inference: Option<Box<RawValue>>,
    #[serde(default)]
    requests: Option<u64>,
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    #[serde(default)]
    workspace_id: Option<String>,
}

/// The sums of one (day, model, endpoint) line.
#[derive(Clone, Default)]
struct Line {
    model: String,
    project: Option<String>,
    cost: Usd,
    byok: Usd,
    requests: u64,
    prompt: u64,
    completion: u64,
    reasoning: u64,
}

type LineKey = (String, String, String, Option<String>);

/// Fetches activity for the days `since..=until` as billing rows, one per key and line, plus
/// rows with no key for spend no listed key accounts for.
pub(super) fn fetch(
    client: &mut Client,
    since: &str,
    until: &str,
) -> Result<Vec<BillingRow>, FetchError> {
    let hashes = list_keys(client)?;
    let total = activity(client, None, since, until)?;
    let mut rest = total.clone();
    let mut rows = Vec::new();
    for hash in &hashes {
        let lines = activity(client, Some(hash), since, until)?;
        for (key, line) in lines {
            if let Some(left) = rest.get_mut(&key) {
                subtract(left, &line);
            }
            rows.push(row(&key, &line, Some(hash)));
        }
    }
    for (key, line) in &rest {
        if line.cost != Usd::ZERO || line.byok != Usd::ZERO || line.requests > 0 {
            rows.push(row(key, line, None));
        }
    }
    rows.sort_by(|a, b| (&a.day, &a.model, &a.api_key).cmp(&(&b.day, &b.model, &b.api_key)));
    Ok(rows)
}

/// Every key's hash, disabled keys included (their past spend is still spend).
fn list_keys(client: &mut Client) -> Result<Vec<String>, FetchError> {
    let mut hashes = Vec::new();
    for _ in 0..MAX_PAGES {
        let query = vec![
            ("include_disabled".to_owned(), "true".to_owned()),
            ("offset".to_owned(), hashes.len().to_string()),
        ];
        let body = client.get(KEYS, &query)?;
        let page: KeysPage = serde_json::from_slice(&body).map_err(|e| FetchError::Malformed {
            endpoint: format!("GET {KEYS}"),
            detail: e.to_string(),
        })?;
        if page.data.is_empty() {
            return Ok(hashes);
        }
        hashes.extend(page.data.into_iter().map(|k| k.hash));
    }
    Err(FetchError::TooManyPages {
        endpoint: format!("GET {KEYS}"),
    })
}

/// The activity (of one key, or of the whole account) in `since..=until`, summed per line.
fn activity(
    client: &mut Client,
    hash: Option<&str>,
    since: &str,
    until: &str,
) -> Result<BTreeMap<LineKey, Line>, FetchError> {
    let endpoint = format!("GET {ACTIVITY}");
    let query: Vec<(String, String)> = hash
        .map(|h| vec![("api_key_hash".to_owned(), h.to_owned())])
        .unwrap_or_default();
    let body = client.get(ACTIVITY, &query)?;
    parse_activity(&body, since, until).map_err(|detail| FetchError::Malformed { endpoint, detail })
}

fn parse_activity(
    body: &[u8],
    since: &str,
    until: &str,
) -> Result<BTreeMap<LineKey, Line>, String> {
    let page: ActivityPage = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let mut lines: BTreeMap<LineKey, Line> = BTreeMap::new();
    for item in page.data {
        // `YYYY-MM-DD` as documented (some answers have been seen with ` 00:00:00` after it).
        let day = item.date.get(..10).unwrap_or("").to_owned();
        if super::row::day_start(&day).is_none() {
            return Err(format!("date {:?} is not a day", item.date));
        }
        if day.as_str() < since || day.as_str() > until {
            continue;
        }
        let cost = usd_of_json(&item.usage).map_err(|e| e.to_string())?;
        let byok = match &item.byok_usage_inference {
            Some(raw) => usd_of_json(raw).map_err(|e| e.to_string())?,
            None => Usd::ZERO,
        };
        let endpoint = item
            .endpoint_id
            .clone()
            .or(item.model_permaslug.clone())
            .unwrap_or_default();
        let key = (day, item.model.clone(), endpoint, item.workspace_id.clone());
        let line = lines.entry(key).or_insert_with(|| Line {
            model: item.model.clone(),
            project: item.workspace_id.clone(),
            ..Line::default()
        });
        let overflow = || "a sum does not fit".to_owned();
        line.cost = line.cost.checked_add(cost).map_err(|_| overflow())?;
        line.byok = line.byok.checked_add(byok).map_err(|_| overflow())?;
        let add = |sum: &mut u64, n: Option<u64>| -> Result<(), String> {
            *sum = sum.checked_add(n.unwrap_or(0)).ok_or_else(overflow)?;
            Ok(())
        };
        add(&mut line.requests, item.requests)?;
        add(&mut line.prompt, item.prompt_tokens)?;
        add(&mut line.completion, item.completion_tokens)?;
        add(&mut line.reasoning, item.reasoning_tokens)?;
    }
    Ok(lines)
}

/// `left − part`, never below zero.
fn subtract(left: &mut Line, part: &Line) {
    left.cost = left.cost.saturating_sub(part.cost);
    left.byok = left.byok.saturating_sub(part.byok);
    left.requests = left.requests.saturating_sub(part.requests);
    left.prompt = left.prompt.saturating_sub(part.prompt);
    left.completion = left.completion.saturating_sub(part.completion);
    left.reasoning = left.reasoning.saturating_sub(part.reasoning);
}

/// Our `key_id` for an OpenRouter key hash (64 lowercase hex digits), else `None`.
pub fn key_id_of_hash(hash: &str) -> Option<String> {
    let is_sha256 =
        hash.len() == 64 && hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    is_sha256.then(|| hash[..12].to_owned())
}

fn row(key: &LineKey, line: &Line, hash: Option<&String>) -> BillingRow {
    BillingRow {
        provider: "openrouter".into(),
        day: key.0.clone(),
        model: Some(line.model.clone()),
        api_key: hash.cloned(),
        key_id: hash.and_then(|h| key_id_of_hash(h)),
        project: line.project.clone(),
        service_tier: None,
        line_item: None,
        requests: Some(line.requests),
        prompt_tokens: Some(line.prompt),
        completion_tokens: Some(line.completion),
        cached_tokens: None,
        cache_write_tokens: None,
        reasoning_tokens: Some(line.reasoning),
        cost_usd: Some(line.cost.to_decimal_string()),
        byok_cost_usd: (line.byok != Usd::ZERO).then(|| line.byok.to_decimal_string()),
        source: format!("GET {ACTIVITY}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The documented example (openapi.yaml `ActivityResponse`), plus a second endpoint and day.
    const PAGE: &str = r#"{"data":[
      {"date":"2025-08-24","model":"openai/gpt-4.1","model_permaslug":"openai/gpt-4.1-2025-04-14",
       "endpoint_id":"550e8400-e29b-41d4-a716-446655440000","provider_name":"OpenAI","usage":0.015,
       "byok_usage_inference":0.012,"requests":5,"prompt_tokens":50,"completion_tokens":125,"reasoning_tokens":25},
      {"date":"2025-08-24","model":"openai/gpt-4.1","model_permaslug":"openai/gpt-4.1-2025-04-14",
       "endpoint_id":"550e8400-e29b-41d4-a716-446655440000","provider_name":"OpenAI","usage":0.1,
       "byok_usage_inference":0,"requests":1,"prompt_tokens":1,"completion_tokens":1,"reasoning_tokens":0},
      {"date":"2025-08-23","model":"anthropic/claude-sonnet-4.5","model_permaslug":"anthropic/claude-4.5-sonnet-20250929",
       "endpoint_id":"ep-2","provider_name":"Anthropic","usage":0.2,
       "byok_usage_inference":0,"requests":1,"prompt_tokens":10,"completion_tokens":10,"reasoning_tokens":0}
    ]}"#;

    #[test]
    fn activity_items_are_summed_per_day_model_endpoint_exactly() {
        let lines = parse_activity(PAGE.as_bytes(), "2025-08-24", "2025-08-24").unwrap();
        assert_eq!(lines.len(), 1, "the 23rd is outside --since");
        let line = lines.values().next().unwrap();
        // 0.015 + 0.1 in f64 is 0.11499999999999999.
        assert_eq!(line.cost.to_decimal_string(), "0.115");
        assert_eq!(line.byok.to_decimal_string(), "0.012");
        assert_eq!(
            (line.requests, line.prompt, line.completion, line.reasoning),
            (6, 51, 126, 25)
        );
        assert_eq!(
            parse_activity(PAGE.as_bytes(), "2025-08-01", "2025-08-31")
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn malformed_activity_is_an_error_not_a_guess() {
        assert!(parse_activity(
            br#"{"data":[{"date":"yesterday","model":"m","usage":1}]}"#,
            "a",
            "z"
        )
        .is_err());
        assert!(parse_activity(
            br#"{"data":[{"date":"2025-08-24","model":"m","usage":-1}]}"#,
            "2025-01-01",
            "2025-12-31"
        )
        .is_err());
        assert!(parse_activity(br#"{"rows":[]}"#, "a", "z").is_err());
    }

    #[test]
    fn key_hash_gives_our_key_id() {
        // `printf %s sk-test-not-a-real-key | sha256sum`: the key every Envoy test call carries.
        let hash = "1ab5b22bf73811aad5f69447acefea8d2bc8b5e9e1ad4227e99f9790f3b180d1";
        let ours = llm_cost_core::identity::key_id("sk-test-not-a-real-key");
        assert_eq!(key_id_of_hash(hash), ours);
        assert_eq!(ours.as_deref(), Some("1ab5b22bf738"));
        assert_eq!(key_id_of_hash("abc123def456"), None);
        assert_eq!(key_id_of_hash(&hash.to_uppercase()), None);
    }
}
