//! Every wire format's usage extractor on arbitrary bytes: never panics; any usage it reports is
//! priced without a wrap (overflow is an error, not a small number), with list prices and at
//! every hour of the day.
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_cost_core::pricing::Prices;
use llm_cost_core::usage::{Format, Report};
use llm_cost_core::Usd;

fuzz_target!(|data: &[u8]| {
    let prices = Prices {
        prompt: Usd::parse("0.000003").unwrap(),
        completion: Usd::parse("0.000015").unwrap(),
        input_cache_read: Usd::parse("0.0000003").unwrap(),
        ..Prices::default()
    };
    for format in [
        Format::Chat,
        Format::Responses,
        Format::Anthropic,
        Format::Gemini,
        Format::Embeddings,
        Format::GeminiEmbeddings,
        Format::Images,
    ] {
        let _ = format.worth_parsing(data);
        if let Ok(facts) = format.parse(data) {
            let usage = match facts.usage {
                Some(Report::Complete(u)) => u,
                Some(Report::Anthropic(c)) => match c.normalise() {
                    Some(u) => u,
                    None => continue,
                },
                Some(Report::Overflow) | None => continue,
            };
            // Subsets never exceed what they are part of once priced (reasoning is clamped).
            for minute in [None, Some(0), Some(719), Some(1439)] {
                if let Ok(b) = llm_cost_core::cost::price(&usage, &prices, minute) {
                    assert!(b.total >= b.prompt && b.total >= b.completion);
                }
            }
        }
    }
});
