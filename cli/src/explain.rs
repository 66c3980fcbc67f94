//! Which prices apply, and why: `llm-cost pricing show MODEL` and `llm-cost price --explain`.
//!
//! Both ask the core the way a call does ([`MeterConfig::resolve_model`]: the table's name rules,
//! then the configuration's `models` merged in) and print the entry, where each price came from
//! (table or `models`), and which of the entry's prices are in effect (list, long-context tier,
//! time window).

use std::fmt::Write as _;

use llm_cost_core::overrides::{PriceSource, Resolved};
use llm_cost_core::pricing::{Prices, PRICE_KEYS};
use llm_cost_core::service_tier::ServiceTier;
use llm_cost_core::time::{minute_of_day, rfc3339_millis};
use llm_cost_core::{MeterConfig, Provider, Usd};
use serde_json::Value;

/// Providers tried, in order, when none is given: their prefixes complete a bare name
/// (`gpt-4o` → `openai/gpt-4o`, `claude-…` → `anthropic/…`, `gemini-…` → `google/…`).
const PROVIDERS: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

/// Resolves `model` as a call answered by `provider` would (each provider in turn when `None`).
pub fn resolve(config: &MeterConfig, model: &str, provider: Option<Provider>) -> Option<Resolved> {
    match provider {
        Some(p) => config.resolve_model(model, p),
        None => PROVIDERS
            .iter()
            .find_map(|p| config.resolve_model(model, *p)),
    }
}

/// `pricing show`: the entry, its prices in effect for a call at `at` (Unix ms; list prices when
/// `None`) with `prompt_tokens`, and its tiers and windows.
pub fn show(
    config: &MeterConfig,
    model: &str,
    provider: Option<Provider>,
    at: Option<u64>,
    prompt_tokens: u64,
) -> Result<String, String> {
    let resolved = resolve(config, model, provider).ok_or_else(|| {
        format!(
            "no price for model `{model}` in {} (neither a table entry by id, slug or alias, nor a `models` entry): its calls would be `unpriced`",
            config.pricing_version()
        )
    })?;
    let prices = &resolved.priced.prices;
    let (condition, in_effect) = prices.condition_in_effect(prompt_tokens, at.map(minute_of_day));
    let mut out = String::new();
    let _ = writeln!(out, "model            {model}");
    let _ = writeln!(
        out,
        "priced as        {} ({})",
        resolved.priced.id,
        source_text(&resolved.source)
    );
    let _ = writeln!(out, "pricing_version  {}", config.pricing_version());
    let when = at.map_or_else(|| "any time".to_owned(), rfc3339_millis);
    let _ = writeln!(
        out,
        "in effect        {condition} ({prompt_tokens} prompt tokens, {when})"
    );
    let _ = writeln!(out, "prices (USD per token; `request`: per request)");
    for (key, value) in listed(in_effect) {
        let line = format!(
            "  {key:<20}{:<14}{}",
            value.to_decimal_string(),
            origin(&resolved.source, key)
        );
        let _ = writeln!(out, "{}", line.trim_end());
    }
    if in_effect.internal_reasoning == Usd::ZERO {
        let _ = writeln!(out, "  (reasoning tokens are priced as completion)");
    }
    for (min, tier) in &prices.long_context {
        let _ = writeln!(out, "tier from {min} prompt tokens: {}", compact(tier));
    }
    for window in &prices.time_of_day {
        let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
        let _ = writeln!(
            out,
            "window {}-{} UTC: {}",
            clock(window.start),
            clock(window.end),
            compact(&window.prices)
        );
    }
    Ok(out)
}

/// `price --explain`: how the record `record_json` was priced, one line per priced component.
pub fn explain(config: &MeterConfig, provider: Provider, record_json: &str, at: u64) -> String {
    let record: Value = serde_json::from_str(record_json).unwrap_or(Value::Null);
    let mut out = String::new();
    let Some(model) = record["model"].as_str() else {
        let _ = writeln!(
            out,
            "explain: no model in the response or request: not priced"
        );
        return out;
    };
    let Some(resolved) = config.resolve_model(model, provider) else {
        let _ = writeln!(
            out,
            "explain: model `{model}`: no table entry (id, slug or alias) and no `models` entry: unpriced"
        );
        return out;
    };
    let prompt_tokens = record["prompt_tokens"].as_u64().unwrap_or(0);
    let tier = record["service_tier"]
        .as_str()
        .map(ServiceTier::from_wire)
        .unwrap_or_default();
    // As `cost::price`: time windows are list-price facts; another tier is priced by its keys.
    let minute = (tier == ServiceTier::Standard).then(|| minute_of_day(at));
    let (condition, conditional) = resolved
        .priced
        .prices
        .condition_in_effect(prompt_tokens, minute);
    let Some(tiered) = conditional.for_tier(tier) else {
        let _ = writeln!(
            out,
            "explain: model `{model}` priced as `{}`: no prices for service tier `{}`: unpriced",
            resolved.priced.id,
            tier.as_str()
        );
        return out;
    };
    let prices = &tiered;
    let _ = writeln!(
        out,
        "explain: model `{model}` priced as `{}` ({}), {condition}, {}",
        resolved.priced.id,
        source_text(&resolved.source),
        config.pricing_version()
    );
    // Breakdown component → the price key that prices it.
    let components = [
        ("prompt", "prompt"),
        ("cached", "input_cache_read"),
        ("cache_write", "input_cache_write"),
        ("cache_write_1h", "input_cache_write_1h"),
        ("audio_in", "audio"),
        (
            "image_in",
            if prices.has("image") {
                "image"
            } else {
                "prompt"
            },
        ),
        ("completion", "completion"),
        (
            "reasoning",
            if prices.internal_reasoning == Usd::ZERO {
                "completion"
            } else {
                "internal_reasoning"
            },
        ),
        ("audio_out", "audio_output"),
        ("image_out", "image_output"),
        ("request", "request"),
        ("web_search", "web_search"),
    ];
    for (component, key) in components {
        let Some(cost) = record["breakdown"][component].as_str() else {
            continue;
        };
        if Usd::parse(cost).is_ok_and(|c| c == Usd::ZERO) {
            continue;
        }
        let unit = if key == "request" {
            "per request"
        } else {
            "per token"
        };
        let _ = writeln!(
            out,
            "explain:   {component:<12}{cost:<14}at {} {unit} (`{key}`{})",
            prices.get(key).to_decimal_string(),
            match origin(&resolved.source, key) {
                "" => String::new(),
                o => format!(", {o}"),
            }
        );
    }
    if let Some(percent) = record["adjustment_percent"].as_str() {
        let _ = writeln!(out, "explain:   then the adjustment {percent} %");
    }
    if let Some(total) = record["cost_usd"].as_str() {
        let _ = writeln!(out, "explain:   total       {total}");
    }
    out
}

fn source_text(source: &PriceSource) -> String {
    match source {
        PriceSource::Table => "table entry".to_owned(),
        PriceSource::Merged { key, keys } => {
            format!("table entry with `models.{key}` for {}", keys.join(", "))
        }
        PriceSource::Config { key } => format!("`models.{key}`: not in the table"),
    }
}

/// `from models.K` for a price the configuration set, else empty.
fn origin(source: &PriceSource, key: &str) -> &'static str {
    match source {
        PriceSource::Merged { keys, .. } if keys.contains(&key) => "from `models`",
        PriceSource::Config { .. } => "from `models`",
        _ => "",
    }
}

/// Every known price: prompt and completion always, other keys when the source named them.
fn listed(prices: &Prices) -> Vec<(&'static str, Usd)> {
    PRICE_KEYS
        .iter()
        .filter_map(|k| Some((*k, prices.known(k)?)))
        .collect()
}

fn compact(prices: &Prices) -> String {
    listed(prices)
        .iter()
        .map(|(k, v)| format!("{k} {}", v.to_decimal_string()))
        .collect::<Vec<_>>()
        .join(", ")
}
