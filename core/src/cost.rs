//! The cost of one call: usage × prices, exact, with a per-component breakdown.
//!
//! The prices are the entry's as they stood for the call: its time-of-day window or long-context
//! tier (`Prices::in_effect`), then the service tier that served it (`Prices::for_tier`; a tier
//! the entry does not price leaves the call unpriced). Token subsets are split so that nothing is
//! counted twice:
//!
//! - input: `cached` and `cache_write` ⊂ prompt; `uncached = prompt − cached − cache_write`
//!   (when negative: `prompt − cached`, never below 0); `cache_write_1h` ⊂ `cache_write` (the rest
//!   is the 5-minute write); `audio_in` then `image_in` ⊂ uncached, the rest is text;
//! - output: `audio_out` then `image_out` ⊂ completion, then `reasoning` ⊂ what is left, the rest
//!   is text.
//!
//! `cost = text_in·prompt + cached·input_cache_read + cache_write_5m·input_cache_write
//!       + cache_write_1h·input_cache_write_1h + audio_in·audio + image_in·(image, else prompt)
//!       + text_out·completion + reasoning·(internal_reasoning, or completion if 0)
//!       + audio_out·audio_output + image_out·image_output + request
//!       + web_search_requests·web_search + audio_seconds·audio_second
//!       + input_characters·input_character`
//!
//! (`audio_seconds` is the reported duration in milliseconds / 1000: whisper-1 transcriptions;
//! `input_characters` a speech request's text: tts-1.)
//!
//! Every component with a non-zero count needs a known price ([`Prices::has`]): one without makes
//! [`CostError::Unpriced`] name it, never a silent $0. This reproduces OpenRouter's `usage.cost`
//! exactly where no other fee (e.g. the `:online` plugin) applies.

use crate::error_code::ErrorCode;
use crate::money::{MoneyError, Usd};
use crate::pricing::Prices;
use crate::service_tier::ServiceTier;
use crate::usage::Usage;

/// Cost per component; `total` is their sum.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Breakdown {
    /// Uncached text input tokens.
    pub prompt: Usd,
    /// Cached input tokens read.
    pub cached: Usd,
    /// Input tokens written to the cache (the 5-minute write).
    pub cache_write: Usd,
    /// Input tokens written to the 1-hour cache.
    pub cache_write_1h: Usd,
    /// Uncached audio input tokens.
    pub audio_in: Usd,
    /// Uncached image input tokens.
    pub image_in: Usd,
    /// Text output tokens that are not reasoning.
    pub completion: Usd,
    /// Reasoning tokens.
    pub reasoning: Usd,
    /// Audio output tokens.
    pub audio_out: Usd,
    /// Image output tokens.
    pub image_out: Usd,
    /// Per-request fee.
    pub request: Usd,
    /// Web searches the upstream reported, at the per-search price.
    pub web_search: Usd,
    /// Input audio duration, at the per-second price.
    pub audio_duration: Usd,
    /// Input characters, at the per-character price.
    pub input_characters: Usd,
    /// Sum of the above.
    pub total: Usd,
    /// A price used came from the entry's supplement ([`Prices::supplement`]): `priced_as` names
    /// its source.
    pub supplemented: bool,
}

/// A billed part of a call that needs a price of its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Component {
    /// Cached input tokens (`input_cache_read`).
    Cached,
    /// 5-minute cache writes (`input_cache_write`).
    CacheWrite,
    /// 1-hour cache writes (`input_cache_write_1h`).
    CacheWrite1h,
    /// Audio input tokens (`audio`).
    AudioIn,
    /// Audio output tokens (`audio_output`).
    AudioOut,
    /// Image output tokens (`image_output`).
    ImageOut,
    /// Web searches (`web_search`).
    WebSearch,
    /// The service tier that served the call (`<key>_<tier>` prices).
    ServiceTier,
    /// Input audio duration (`audio_second`).
    AudioDuration,
    /// Input characters (`input_character`).
    InputCharacters,
}

impl Component {
    /// The record's `error` for this component without a price.
    pub fn error_code(self) -> ErrorCode {
        match self {
            Component::Cached => ErrorCode::UnpricedCached,
            Component::CacheWrite => ErrorCode::UnpricedCacheWrite,
            Component::CacheWrite1h => ErrorCode::UnpricedCacheWrite1h,
            Component::AudioIn => ErrorCode::UnpricedAudioIn,
            Component::AudioOut => ErrorCode::UnpricedAudioOut,
            Component::ImageOut => ErrorCode::UnpricedImageOut,
            Component::WebSearch => ErrorCode::UnpricedWebSearch,
            Component::ServiceTier => ErrorCode::UnpricedServiceTier,
            Component::AudioDuration => ErrorCode::UnpricedAudioDuration,
            Component::InputCharacters => ErrorCode::UnpricedInputCharacters,
        }
    }
}

/// Why a call has no cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CostError {
    /// A billed component has no known price: the record is `unpriced`, naming it.
    Unpriced(Component),
    /// Absurd token counts or prices (`cost_overflow`).
    Overflow(MoneyError),
}

impl From<MoneyError> for CostError {
    fn from(e: MoneyError) -> Self {
        CostError::Overflow(e)
    }
}

impl CostError {
    /// The record's `error`.
    pub fn error_code(&self) -> ErrorCode {
        match *self {
            CostError::Unpriced(component) => component.error_code(),
            CostError::Overflow(_) => ErrorCode::CostOverflow,
        }
    }
}

/// `n` units at the price `key`; zero units need no price, more need a known one.
fn units(prices: &Prices, key: &str, n: u64, component: Component) -> Result<Usd, CostError> {
    if n == 0 {
        return Ok(Usd::ZERO);
    }
    let price = prices.known(key).ok_or(CostError::Unpriced(component))?;
    Ok(price.checked_mul(n)?)
}

/// Prices `usage` for a call made at `minute_of_day` (minutes after midnight UTC; `None`: list
/// prices, no time-of-day window). Fails on overflow (absurd token counts or prices) and on a
/// billed component without a price.
pub fn price(
    usage: &Usage,
    prices: &Prices,
    minute_of_day: Option<u16>,
) -> Result<Breakdown, CostError> {
    let tier = usage.service_tier.unwrap_or_default();
    // Time-of-day windows are list-price facts: a call at another tier is priced by its tier.
    let minute = if tier == ServiceTier::Standard {
        minute_of_day
    } else {
        None
    };
    let conditional = prices.in_effect(usage.prompt_tokens, minute);
    let tiered;
    let prices = if tier == ServiceTier::Standard {
        conditional
    } else {
        tiered = conditional
            .for_tier(tier)
            .ok_or(CostError::Unpriced(Component::ServiceTier))?;
        &tiered
    };
    let after_cache_read = usage.prompt_tokens.saturating_sub(usage.cached_tokens);
    let uncached = match after_cache_read.checked_sub(usage.cache_write_tokens) {
        Some(n) => n,
        None => after_cache_read,
    };
    let write_1h = usage.cache_write_1h_tokens.min(usage.cache_write_tokens);
    let write_5m = usage.cache_write_tokens - write_1h;
    let audio_in = usage.audio_prompt_tokens.min(uncached);
    let image_in = usage.image_prompt_tokens.min(uncached - audio_in);
    let text_in = uncached - audio_in - image_in;
    let audio_out = usage.audio_completion_tokens.min(usage.completion_tokens);
    let image_out = usage
        .image_completion_tokens
        .min(usage.completion_tokens - audio_out);
    let reasoning = usage
        .reasoning_tokens
        .min(usage.completion_tokens - audio_out - image_out);
    let text_out = usage.completion_tokens - audio_out - image_out - reasoning;
    let reasoning_price = if prices.internal_reasoning == Usd::ZERO {
        prices.completion
    } else {
        prices.internal_reasoning
    };
    // Image input tokens cost the input price unless the entry prices them apart.
    let image_key = if prices.has("image") {
        "image"
    } else {
        "prompt"
    };
    let mut b = Breakdown {
        prompt: prices.prompt.checked_mul(text_in)?,
        cached: units(
            prices,
            "input_cache_read",
            usage.cached_tokens,
            Component::Cached,
        )?,
        cache_write: units(prices, "input_cache_write", write_5m, Component::CacheWrite)?,
        cache_write_1h: units(
            prices,
            "input_cache_write_1h",
            write_1h,
            Component::CacheWrite1h,
        )?,
        audio_in: units(prices, "audio", audio_in, Component::AudioIn)?,
        image_in: prices.get(image_key).checked_mul(image_in)?,
        completion: prices.completion.checked_mul(text_out)?,
        reasoning: reasoning_price.checked_mul(reasoning)?,
        audio_out: units(prices, "audio_output", audio_out, Component::AudioOut)?,
        image_out: units(prices, "image_output", image_out, Component::ImageOut)?,
        request: prices.request,
        web_search: units(
            prices,
            "web_search",
            usage.web_search_requests,
            Component::WebSearch,
        )?,
        audio_duration: match usage.audio_duration_ms {
            0 => Usd::ZERO,
            ms => prices
                .known("audio_second")
                .ok_or(CostError::Unpriced(Component::AudioDuration))?
                .scaled(ms, 1000)?,
        },
        input_characters: units(
            prices,
            "input_character",
            usage.input_characters,
            Component::InputCharacters,
        )?,
        total: Usd::ZERO,
        supplemented: false,
    };
    // Which prices the call used: a component with units, or the per-request fee.
    let used = [
        ("prompt", text_in),
        ("input_cache_read", usage.cached_tokens),
        ("input_cache_write", write_5m),
        ("input_cache_write_1h", write_1h),
        ("audio", audio_in),
        (image_key, image_in),
        ("completion", text_out),
        (
            if prices.internal_reasoning == Usd::ZERO {
                "completion"
            } else {
                "internal_reasoning"
            },
            reasoning,
        ),
        ("audio_output", audio_out),
        ("image_output", image_out),
        ("request", 1),
        ("web_search", usage.web_search_requests),
        ("audio_second", usage.audio_duration_ms),
        ("input_character", usage.input_characters),
    ];
    b.supplemented = prices.supplement.as_ref().is_some_and(|s| {
        used.iter()
            .any(|(key, n)| *n > 0 && s.keys.contains(key) && prices.get(key) != Usd::ZERO)
    });
    b.total = [
        b.prompt,
        b.cached,
        b.cache_write,
        b.cache_write_1h,
        b.audio_in,
        b.image_in,
        b.completion,
        b.reasoning,
        b.audio_out,
        b.image_out,
        b.request,
        b.web_search,
        b.audio_duration,
        b.input_characters,
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
    fn duration_and_characters_are_priced_per_second_and_per_character() {
        let mut whisper = Prices::default();
        whisper.set("audio_second", usd("0.0001"));
        let usage = Usage {
            audio_duration_ms: 9_500,
            ..Usage::default()
        };
        let b = price(&usage, &whisper, None).unwrap();
        assert_eq!(b.audio_duration.to_decimal_string(), "0.00095");
        assert_eq!(b.total, b.audio_duration);
        let mut tts = Prices::default();
        tts.set("input_character", usd("0.000015"));
        let usage = Usage {
            input_characters: 12,
            ..Usage::default()
        };
        assert_eq!(
            price(&usage, &tts, None).unwrap().total.to_decimal_string(),
            "0.00018"
        );
        // No price for the part billed: unpriced, named.
        assert_eq!(
            price(&usage, &whisper, None),
            Err(CostError::Unpriced(Component::InputCharacters))
        );
        assert_eq!(
            Component::InputCharacters.error_code(),
            ErrorCode::UnpricedInputCharacters
        );
        let usage = Usage {
            audio_duration_ms: 1,
            ..Usage::default()
        };
        assert_eq!(
            price(&usage, &tts, None),
            Err(CostError::Unpriced(Component::AudioDuration))
        );
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

    #[test]
    fn a_billed_component_without_a_price_is_unpriced_never_free() {
        let text_only = Prices {
            prompt: usd("0.0000025"),
            completion: usd("0.00001"),
            ..Prices::default()
        };
        let cases = [
            (
                Usage {
                    prompt_tokens: 10,
                    audio_prompt_tokens: 5,
                    ..Usage::default()
                },
                Component::AudioIn,
            ),
            (
                Usage {
                    completion_tokens: 10,
                    audio_completion_tokens: 5,
                    ..Usage::default()
                },
                Component::AudioOut,
            ),
            (
                Usage {
                    completion_tokens: 10,
                    image_completion_tokens: 5,
                    ..Usage::default()
                },
                Component::ImageOut,
            ),
            (
                Usage {
                    prompt_tokens: 10,
                    cached_tokens: 5,
                    ..Usage::default()
                },
                Component::Cached,
            ),
            (
                Usage {
                    prompt_tokens: 10,
                    cache_write_tokens: 5,
                    ..Usage::default()
                },
                Component::CacheWrite,
            ),
            (
                Usage {
                    web_search_requests: 1,
                    ..Usage::default()
                },
                Component::WebSearch,
            ),
        ];
        for (usage, component) in cases {
            assert_eq!(
                price(&usage, &text_only, None),
                Err(CostError::Unpriced(component)),
                "{component:?}"
            );
        }
        // An explicit zero is a price (free), and no tokens need no price.
        let mut free_audio = text_only.clone();
        free_audio.set("audio", Usd::ZERO);
        let audio = Usage {
            prompt_tokens: 10,
            audio_prompt_tokens: 5,
            ..Usage::default()
        };
        assert_eq!(
            price(&audio, &free_audio, None).unwrap().total,
            usd("0.0000125")
        );
        assert!(price(
            &Usage {
                prompt_tokens: 10,
                ..Usage::default()
            },
            &text_only,
            None
        )
        .is_ok());
        assert_eq!(
            Component::AudioIn.error_code().as_str(),
            "unpriced_audio_in"
        );
    }

    #[test]
    fn one_hour_cache_writes_cost_the_one_hour_price_and_the_rest_five_minutes() {
        // Anthropic: 5-minute writes 1.25x input, 1-hour writes 2x input.
        let mut prices = sonnet();
        prices.set("input_cache_write_1h", usd("0.000006"));
        let usage = Usage {
            prompt_tokens: 1000,
            cache_write_tokens: 600,
            cache_write_1h_tokens: 400,
            completion_tokens: 10,
            ..Usage::default()
        };
        let b = price(&usage, &prices, None).unwrap();
        assert_eq!(b.cache_write, usd("0.00000375").checked_mul(200).unwrap());
        assert_eq!(b.cache_write_1h, usd("0.000006").checked_mul(400).unwrap());
        assert_eq!(b.prompt, usd("0.000003").checked_mul(400).unwrap());
        // Without a 1-hour price, 1-hour writes are unpriced, not 5-minute ones.
        assert_eq!(
            price(&usage, &sonnet(), None),
            Err(CostError::Unpriced(Component::CacheWrite1h))
        );
    }

    #[test]
    fn audio_and_image_tokens_are_subsets_priced_once_at_their_own_price() {
        // gpt-audio: text $2.50/$10, audio $32/$64 per million.
        let mut prices = Prices {
            prompt: usd("0.0000025"),
            completion: usd("0.00001"),
            ..Prices::default()
        };
        prices.set("audio", usd("0.000032"));
        prices.set("audio_output", usd("0.000064"));
        prices.set("image_output", usd("0.00003"));
        let usage = Usage {
            prompt_tokens: 100,
            audio_prompt_tokens: 60,
            image_prompt_tokens: 30,
            completion_tokens: 50,
            audio_completion_tokens: 40,
            image_completion_tokens: 5,
            reasoning_tokens: 20,
            ..Usage::default()
        };
        let b = price(&usage, &prices, None).unwrap();
        assert_eq!(b.audio_in, usd("0.000032").checked_mul(60).unwrap());
        // No `image` price: image input tokens cost the input price.
        assert_eq!(b.image_in, usd("0.0000025").checked_mul(30).unwrap());
        assert_eq!(b.prompt, usd("0.0000025").checked_mul(10).unwrap());
        assert_eq!(b.audio_out, usd("0.000064").checked_mul(40).unwrap());
        assert_eq!(b.image_out, usd("0.00003").checked_mul(5).unwrap());
        // Reasoning is clamped to what audio and image leave of the completion.
        assert_eq!(b.reasoning, usd("0.00001").checked_mul(5).unwrap());
        assert_eq!(b.completion, Usd::ZERO);
        // Subsets larger than their total are clamped: nothing is counted twice.
        let absurd = Usage {
            prompt_tokens: 10,
            audio_prompt_tokens: 1000,
            completion_tokens: 10,
            audio_completion_tokens: 1000,
            ..Usage::default()
        };
        let b = price(&absurd, &prices, None).unwrap();
        assert_eq!(b.audio_in, usd("0.00032"));
        assert_eq!(b.audio_out, usd("0.00064"));
        assert_eq!(b.prompt.checked_add(b.completion).unwrap(), Usd::ZERO);
    }

    #[test]
    fn the_tier_that_served_the_call_prices_it() {
        // gpt-5: flex and batch half price, priority double (LiteLLM `_flex` / `_priority`).
        let mut prices = Prices {
            prompt: usd("0.00000125"),
            completion: usd("0.00001"),
            input_cache_read: usd("0.000000125"),
            web_search: usd("0.01"),
            ..Prices::default()
        };
        for (key, value) in [
            ("prompt_flex", "0.000000625"),
            ("completion_flex", "0.000005"),
            ("input_cache_read_flex", "0.0000000625"),
            ("prompt_priority", "0.0000025"),
            ("completion_priority", "0.00002"),
        ] {
            prices.set(key, usd(value));
        }
        let at = |tier| Usage {
            prompt_tokens: 1_000_000,
            completion_tokens: 1_000_000,
            web_search_requests: 1,
            service_tier: tier,
            ..Usage::default()
        };
        let total = |tier| price(&at(tier), &prices, None).map(|b| b.total);
        assert_eq!(total(None), Ok(usd("11.26")));
        assert_eq!(total(Some(ServiceTier::Standard)), Ok(usd("11.26")));
        assert_eq!(total(Some(ServiceTier::Flex)), Ok(usd("5.635")));
        assert_eq!(total(Some(ServiceTier::Priority)), Ok(usd("22.51")));
        for unpriced in [ServiceTier::Batch, ServiceTier::Scale, ServiceTier::Unknown] {
            assert_eq!(
                total(Some(unpriced)),
                Err(CostError::Unpriced(Component::ServiceTier))
            );
        }
        // A component the tier does not price is unknown at that tier (not the list price).
        let cached = Usage {
            prompt_tokens: 10,
            cached_tokens: 5,
            service_tier: Some(ServiceTier::Priority),
            ..Usage::default()
        };
        assert_eq!(
            price(&cached, &prices, None),
            Err(CostError::Unpriced(Component::Cached))
        );
    }

    #[test]
    fn a_long_prompt_at_a_tier_needs_the_tiers_long_context_price() {
        // gpt-5.4-style: from 272k prompt tokens the whole call costs the long-context price,
        // cache reads included; a flex call there costs the flex long-context price.
        let overrides = serde_json::json!([{
            "min_prompt_tokens": 272001, "prompt": "0.000005", "input_cache_read": "0.0000005",
            "prompt_flex": "0.0000025", "completion_flex": "0.00001125"
        }]);
        let mut base = Prices {
            prompt: usd("0.0000025"),
            completion: usd("0.000015"),
            input_cache_read: usd("0.00000025"),
            ..Prices::default()
        };
        base.set("prompt_flex", usd("0.00000125"));
        base.set("completion_flex", usd("0.0000075"));
        let prices = base.with_overrides(&overrides).unwrap();
        let usage = |prompt_tokens, tier| Usage {
            prompt_tokens,
            cached_tokens: 100_000,
            completion_tokens: 1000,
            service_tier: tier,
            ..Usage::default()
        };
        let b = price(&usage(272_001, None), &prices, None).unwrap();
        assert_eq!(b.cached, usd("0.05")); // the tier's cache price, not the base's 0.025
        assert_eq!(b.prompt, usd("0.000005").checked_mul(172_001).unwrap());
        let flex = price(&usage(272_000, Some(ServiceTier::Flex)), &prices, None);
        assert_eq!(flex, Err(CostError::Unpriced(Component::Cached)));
        let mut flex_prices = prices.clone();
        flex_prices.set("input_cache_read_flex", usd("0.000000125"));
        let b = price(&usage(200_000, Some(ServiceTier::Flex)), &flex_prices, None).unwrap();
        assert_eq!(b.prompt, usd("0.00000125").checked_mul(100_000).unwrap());
        // Above the threshold, the long-context entry names no flex cache price: unknown.
        assert_eq!(
            price(&usage(300_000, Some(ServiceTier::Flex)), &flex_prices, None),
            Err(CostError::Unpriced(Component::Cached))
        );
    }
}
