//! Service tiers: the processing tier that served a call, as the response reports it.
//!
//! Providers bill some tiers apart: OpenAI's `service_tier` (`default`, `flex`, `priority`,
//! `scale`) on chat completions and Responses, Anthropic's `usage.service_tier` (`standard`,
//! `priority`, `batch`). The tier that was *served* prices the call (a request asking for `flex`
//! or `priority` may be served at `default`), so only the response's field is read. Prices per
//! tier are the `<key>_flex`, `<key>_priority` and `<key>_batch` price keys (`pricing`); a tier
//! without prices makes the record `unpriced` (`unpriced_service_tier`), never the standard price.
//!
//! This module owns the names; the arithmetic is `cost`'s.

/// The tier that served a call (the record's `service_tier`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServiceTier {
    /// List prices: OpenAI `default` (and `auto`, which a response only echoes when the upstream
    /// did not say), Anthropic `standard`.
    #[default]
    Standard,
    /// OpenAI flex processing (discounted, slower).
    Flex,
    /// OpenAI and Anthropic priority processing (dearer).
    Priority,
    /// Anthropic's Message Batches API (discounted); OpenAI's Batch API prices.
    Batch,
    /// OpenAI Scale Tier: billed through prepaid units, no per-token price.
    Scale,
    /// A value this build does not know: never priced as standard.
    Unknown,
}

impl ServiceTier {
    /// The tier an OpenAI or Anthropic response names (`service_tier`; case as sent).
    pub fn from_wire(name: &str) -> ServiceTier {
        match name {
            "default" | "standard" | "auto" => ServiceTier::Standard,
            "flex" => ServiceTier::Flex,
            "priority" => ServiceTier::Priority,
            "batch" => ServiceTier::Batch,
            "scale" => ServiceTier::Scale,
            _ => ServiceTier::Unknown,
        }
    }

    /// The record's name: `standard`, `flex`, `priority`, `batch`, `scale` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
            ServiceTier::Batch => "batch",
            ServiceTier::Scale => "scale",
            ServiceTier::Unknown => "unknown",
        }
    }

    /// The price-key suffix of a tier billed at prices of its own (`prompt_flex`); `None` for
    /// standard (the base keys) and for tiers no table prices (scale, unknown).
    pub fn key_suffix(self) -> Option<&'static str> {
        match self {
            ServiceTier::Flex => Some("flex"),
            ServiceTier::Priority => Some("priority"),
            ServiceTier::Batch => Some("batch"),
            ServiceTier::Standard | ServiceTier::Scale | ServiceTier::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_and_anthropic_names_map_to_one_tier_each() {
        for (wire, tier) in [
            ("default", ServiceTier::Standard),
            ("standard", ServiceTier::Standard),
            ("auto", ServiceTier::Standard),
            ("flex", ServiceTier::Flex),
            ("priority", ServiceTier::Priority),
            ("batch", ServiceTier::Batch),
            ("scale", ServiceTier::Scale),
            ("turbo", ServiceTier::Unknown),
        ] {
            assert_eq!(ServiceTier::from_wire(wire), tier, "{wire}");
        }
        assert_eq!(ServiceTier::Flex.key_suffix(), Some("flex"));
        assert_eq!(ServiceTier::Scale.key_suffix(), None);
        let suffixes: alloc::vec::Vec<&str> =
            [ServiceTier::Batch, ServiceTier::Flex, ServiceTier::Priority]
                .iter()
                .filter_map(|t| t.key_suffix())
                .collect();
        assert_eq!(suffixes, crate::pricing::SERVICE_TIER_SUFFIXES);
    }
}
