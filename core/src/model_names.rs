//! Which price-table entry a model name means.
//!
//! Rules, tried in order until one finds an entry (each has a test below):
//! 1. the name exactly, as a table id or OpenRouter `canonical_slug`
//!    (`anthropic/claude-4.6-sonnet-20260217` → `anthropic/claude-sonnet-4.6`);
//! 2. with the provider's OpenRouter prefix added when it has none (`gpt-4o` on OpenAI →
//!    `openai/gpt-4o`; Anthropic → `anthropic/`, Gemini → `google/`);
//! 3. with its prefix removed (`openai/gpt-4o` → `gpt-4o`, for tables keyed by bare names);
//! 4. with a date suffix removed (`-2024-08-06`, `-20250929`), then rules 1–3 again;
//! 5. for Claude names, dashed versions dotted (`claude-sonnet-4-5` → `claude-sonnet-4.5`),
//!    then rules 1–3 again.
//!
//! Variant suffixes such as `:free` are never removed: a free variant is not the paid model.

use alloc::{format, string::String, vec::Vec};

use crate::pricing::{PriceTable, Priced};
use crate::provider::Provider;

/// Finds the entry for `model` in `table` by the rules above.
pub fn resolve(table: &PriceTable, model: &str, provider: Provider) -> Option<Priced> {
    candidates(model, provider)
        .iter()
        .find_map(|name| table.get(name))
}

/// Every name `model` may be listed under, in the order tried.
pub fn candidates(model: &str, provider: Provider) -> Vec<String> {
    let mut bases: Vec<String> = Vec::new();
    bases.push(model.into());
    if let Some(undated) = strip_date_suffix(model) {
        bases.push(undated.into());
    }
    for base in bases.clone() {
        if let Some(dotted) = dot_claude_version(&base) {
            bases.push(dotted);
        }
    }
    let mut names = Vec::new();
    for base in &bases {
        names.push(base.clone());
        match base.split_once('/') {
            None => {
                if let Some(prefix) = provider.openrouter_prefix() {
                    names.push(format!("{prefix}/{base}"));
                }
            }
            Some((_, bare)) => names.push(bare.into()),
        }
    }
    names.dedup();
    names
}

/// `gpt-4o-2024-08-06` → `gpt-4o`; `claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`.
fn strip_date_suffix(model: &str) -> Option<&str> {
    let bytes = model.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    let n = bytes.len();
    // -YYYY-MM-DD
    if n > 11 {
        let tail = &bytes[n - 11..];
        if tail[0] == b'-'
            && digits(&tail[1..5])
            && tail[5] == b'-'
            && digits(&tail[6..8])
            && tail[8] == b'-'
            && digits(&tail[9..11])
        {
            return Some(&model[..n - 11]);
        }
    }
    // -YYYYMMDD
    if n > 9 {
        let tail = &bytes[n - 9..];
        if tail[0] == b'-' && digits(&tail[1..]) && (tail[1] == b'2' || tail[1] == b'1') {
            return Some(&model[..n - 9]);
        }
    }
    None
}

/// `claude-sonnet-4-5` → `claude-sonnet-4.5`, `claude-3-5-haiku` → `claude-3.5-haiku`.
fn dot_claude_version(model: &str) -> Option<String> {
    let bare_start = model.rfind('/').map_or(0, |i| i + 1);
    if !model[bare_start..].starts_with("claude-") {
        return None;
    }
    let bytes = model.as_bytes();
    let mut out = String::with_capacity(model.len());
    let mut changed = false;
    for (i, c) in model.char_indices() {
        let single_digit = |j: usize| {
            bytes.get(j).is_some_and(u8::is_ascii_digit)
                && !bytes.get(j + 1).is_some_and(u8::is_ascii_digit)
                && (j == 0 || !bytes[j - 1].is_ascii_digit())
        };
        if c == '-' && i > 0 && single_digit(i - 1) && single_digit(i + 1) {
            out.push('.');
            changed = true;
        } else {
            out.push(c);
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(model: &str, provider: Provider) -> Option<String> {
        resolve(&PriceTable::bundled(), model, provider).map(|p| p.id)
    }

    #[test]
    fn rule1_exact_id_and_canonical_slug() {
        assert_eq!(
            resolved("openai/gpt-4o", Provider::OpenRouter).as_deref(),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            resolved("anthropic/claude-4.6-sonnet-20260217", Provider::OpenRouter).as_deref(),
            Some("anthropic/claude-sonnet-4.6")
        );
    }

    #[test]
    fn rule2_provider_prefix_is_added() {
        assert_eq!(
            resolved("gpt-4o", Provider::OpenAi).as_deref(),
            Some("openai/gpt-4o")
        );
        assert_eq!(
            resolved("gemini-2.5-flash", Provider::Gemini).as_deref(),
            Some("google/gemini-2.5-flash")
        );
    }

    #[test]
    fn rule3_prefix_is_removed_for_bare_tables() {
        let json =
            br#"{"gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05}}"#;
        let table = PriceTable::from_json(json).unwrap();
        let priced = resolve(&table, "openai/gpt-4o", Provider::OpenRouter).unwrap();
        assert_eq!(priced.id, "gpt-4o");
    }

    #[test]
    fn rule4_date_suffixes_are_removed() {
        // A dated id the table lists itself wins over the alias.
        assert_eq!(
            resolved("gpt-4o-2024-08-06", Provider::OpenAi).as_deref(),
            Some("openai/gpt-4o-2024-08-06")
        );
        assert_eq!(
            resolved("gpt-5-mini-2025-08-07", Provider::OpenAi).as_deref(),
            Some("openai/gpt-5-mini")
        );
        assert_eq!(
            strip_date_suffix("claude-sonnet-4-5-20250929"),
            Some("claude-sonnet-4-5")
        );
        assert_eq!(strip_date_suffix("gpt-4o"), None);
        assert_eq!(strip_date_suffix("o1-mini-2024-09-12"), Some("o1-mini"));
    }

    #[test]
    fn rule5_claude_dashed_versions_are_dotted() {
        assert_eq!(
            dot_claude_version("claude-sonnet-4-5").as_deref(),
            Some("claude-sonnet-4.5")
        );
        assert_eq!(
            dot_claude_version("claude-3-5-haiku").as_deref(),
            Some("claude-3.5-haiku")
        );
        assert_eq!(dot_claude_version("gpt-4-1"), None);
        assert_eq!(
            resolved("claude-sonnet-4-5-20250929", Provider::Anthropic).as_deref(),
            Some("anthropic/claude-sonnet-4.5")
        );
    }

    #[test]
    fn free_variants_are_never_priced_as_the_paid_model() {
        assert_eq!(
            resolved("minimax/minimax-m2:free", Provider::OpenRouter),
            None
        );
    }
}
