//! The cost of one call: usage × prices, exact, with a per-component breakdown.
//!
//! `uncached = prompt − cached − cache_write` (when negative: `prompt − cached`, never below 0);
//! `cost = uncached·prompt + cached·input_cache_read + cache_write·input_cache_write
//!       + (completion − reasoning)·completion + reasoning·(internal_reasoning, or completion if 0)
//!       + request + web_search_requests·web_search`. Reasoning is clamped to completion. This
//! reproduces OpenRouter's `usage.cost` exactly where no other fee (e.g. the `:online` plugin)
//! applies.

use crate::money::{MoneyError, Usd};
use crate::pricing::Prices;
use crate::usage::Usage;

/// Cost per component; `total` is their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Uncached input tokens.
    pub prompt: Usd,
    /// Cached input tokens read.
    pub cached: Usd,
    /// Input tokens written to the cache.
    pub cache_write: Usd,
    /// Output tokens that are not reasoning.
    pub completion: Usd,
    /// Reasoning tokens.
    pub reasoning: Usd,
    /// Per-request fee.
    pub request: Usd,
    /// Web searches the upstream reported, at the per-search price.
    pub web_search: Usd,
    /// Sum of the above.
    pub total: Usd,
}

/// Prices `usage` for a call made at `minute_of_day` (minutes after midnight UTC; `None`: list
/// prices, no time-of-day window). Fails only on overflow (absurd token counts or prices).
pub fn price(
    usage: &Usage,
    prices: &Prices,
    minute_of_day: Option<u16>,
) -> Result<Breakdown, MoneyError> {
    let prices = prices.in_effect(usage.prompt_tokens, minute_of_day);
    let after_cache_read = usage.prompt_tokens.saturating_sub(usage.cached_tokens);
    let uncached = match after_cache_read.checked_sub(usage.cache_write_tokens) {
        Some(n) => n,
        None => after_cache_read,
    };
    let reasoning = usage.reasoning_tokens.min(usage.completion_tokens);
    let reasoning_price = if prices.internal_reasoning == Usd::ZERO {
        prices.completion
    } else {
        prices.internal_reasoning
    };
    let mut b = Breakdown {
        prompt: prices.prompt.checked_mul(uncached)?,
        cached: prices.input_cache_read.checked_mul(usage.cached_tokens)?,
        cache_write: prices
            .input_cache_write
            .checked_mul(usage.cache_write_tokens)?,
        completion: prices
            .completion
            .checked_mul(usage.completion_tokens - reasoning)?,
        reasoning: reasoning_price.checked_mul(reasoning)?,
        request: prices.request,
        web_search: prices.web_search.checked_mul(usage.web_search_requests)?,
        total: Usd::ZERO,
    };
    b.total = [
        b.prompt,
        b.cached,
        b.cache_write,
        b.completion,
        b.reasoning,
        b.request,
        b.web_search,
    ]
    .into_iter()
    .try_fold(Usd::ZERO, Usd::checked_add)?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(s: &str) -> Usd {
        Usd::parse(s).unwrap()
    }

    fn sonnet() -> Prices {
        Prices {
            prompt: usd("0.000003"),
            completion: usd("0.000015"),
            input_cache_read: usd("0.0000003"),
            input_cache_write: usd("0.00000375"),
            ..Prices::default()
        }
    }

    #[test]
    fn reproduces_openrouter_cache_write_cost() {
        // openrouter-cache-all-settings-real-api-0: usage.cost 0.01058775
        let usage = Usage {
            prompt_tokens: 2572,
            completion_tokens: 63,
            cache_write_tokens: 2569,
            ..Usage::default()
        };
        let b = price(&usage, &sonnet(), None).unwrap();
        assert_eq!(b.total.to_decimal_string(), "0.01058775");
        assert_eq!(b.prompt.to_decimal_string(), "0.000009");
        assert_eq!(b.cache_write.to_decimal_string(), "0.00963375");
    }

    #[test]
    fn cached_tokens_are_not_double_counted() {
        let usage = Usage {
            prompt_tokens: 1000,
            cached_tokens: 800,
            completion_tokens: 10,
            ..Usage::default()
        };
        let b = price(&usage, &sonnet(), None).unwrap();
        assert_eq!(b.prompt, usd("0.000003").checked_mul(200).unwrap());
        assert_eq!(b.cached, usd("0.0000003").checked_mul(800).unwrap());
    }

    #[test]
    fn cache_write_not_inside_prompt_falls_back_to_prompt_minus_cached() {
        let usage = Usage {
            prompt_tokens: 100,
            cached_tokens: 10,
            cache_write_tokens: 500,
            ..Usage::default()
        };
        let b = price(&usage, &sonnet(), None).unwrap();
        assert_eq!(b.prompt, usd("0.000003").checked_mul(90).unwrap());
    }

    #[test]
    fn reasoning_is_a_subset_of_completion_and_clamped() {
        let mut prices = sonnet();
        prices.internal_reasoning = usd("0.00001");
        let usage = Usage {
            completion_tokens: 10,
            reasoning_tokens: 11,
            ..Usage::default()
        };
        let b = price(&usage, &prices, None).unwrap();
        assert_eq!(b.completion, Usd::ZERO);
        assert_eq!(b.reasoning, usd("0.0001"));
    }

    #[test]
    fn reasoning_without_its_own_price_costs_as_completion() {
        let usage = Usage {
            completion_tokens: 10,
            reasoning_tokens: 4,
            ..Usage::default()
        };
        let b = price(&usage, &sonnet(), None).unwrap();
        assert_eq!(
            b.completion.checked_add(b.reasoning).unwrap(),
            usd("0.00015")
        );
    }

    #[test]
    fn request_fee_is_added_once() {
        let prices = Prices {
            request: usd("0.005"),
            ..Prices::default()
        };
        assert_eq!(
            price(&Usage::default(), &prices, None).unwrap().total,
            usd("0.005")
        );
    }

    #[test]
    fn a_long_prompt_is_priced_wholly_at_its_tier() {
        // Gemini-2.5-Pro-style: from 200k prompt tokens every token costs the tier's price.
        let overrides = serde_json::json!(
            "[{'min_prompt_tokens': 200000, 'prompt': '0.0000025', 'completion': '0.000015'}, {'utc_start': 1000, 'utc_end': 100, 'prompt': '0.0000001'}]"
        );
        let prices = Prices {
            prompt: usd("0.00000125"),
            completion: usd("0.00001"),
            input_cache_read: usd("0.00000031"),
            ..Prices::default()
        }
        .with_overrides(&overrides)
        .unwrap();
        assert_eq!(prices.long_context.len(), 1);
        assert_eq!(prices.time_of_day.len(), 1);
        let at = |prompt_tokens| Usage {
            prompt_tokens,
            completion_tokens: 1000,
            ..Usage::default()
        };
        assert_eq!(
            price(&at(199_999), &prices, None).unwrap().total,
            usd("0.00000125")
                .checked_mul(199_999)
                .unwrap()
                .checked_add(usd("0.01"))
                .unwrap()
        );
        assert_eq!(
            price(&at(200_000), &prices, None).unwrap().total,
            usd("0.5").checked_add(usd("0.015")).unwrap()
        );
        // Keys the tier does not name keep the base price.
        assert_eq!(
            prices.for_prompt_tokens(300_000).input_cache_read,
            usd("0.00000031")
        );
        assert!(Prices::default()
            .with_overrides(&serde_json::json!(
                "[{'min_prompt_tokens': 1, 'prompt': 'x'}]"
            ))
            .is_err());
    }

    #[test]
    fn a_call_inside_a_time_window_is_priced_at_the_window() {
        // DeepSeek-V4-Pro-style: list price, doubled 01:00–04:00 UTC; windows cover the day.
        let overrides = serde_json::json!([
            {"utc_start": 1000, "utc_end": 100, "prompt": "0.00000066", "completion": "0.00000198"},
            {"utc_start": 100, "utc_end": 400, "prompt": "0.00000132", "completion": "0.00000396"}
        ]);
        let prices = Prices {
            prompt: usd("0.00000066"),
            completion: usd("0.00000198"),
            ..Prices::default()
        }
        .with_overrides(&overrides)
        .unwrap();
        let usage = Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 1_000_000,
            ..Usage::default()
        };
        let total = |minute| price(&usage, &prices, minute).unwrap().total;
        let (list, peak) = (usd("2.64"), usd("5.28"));
        assert_eq!(total(None), list); // time unknown: list price
        assert_eq!(total(Some(59)), list); // 00:59, inside 10:00–01:00 (wraps midnight)
        assert_eq!(total(Some(60)), peak); // 01:00, start inclusive
        assert_eq!(total(Some(239)), peak);
        assert_eq!(total(Some(240)), usd("2.64")); // 04:00: end exclusive, no window → list
        assert_eq!(total(Some(600)), list);
        let bad = serde_json::json!([{"utc_start": 1060, "utc_end": 100, "prompt": "1"}]);
        assert!(Prices::default().with_overrides(&bad).is_err());
    }
}
