//! Turns `bundled.json` (OpenRouter `/api/v1/models` shape) into `$OUT_DIR/bundled.rs`: a compact,
//! id-sorted text table of price strings plus a content hash, so hosts never parse JSON for it.
//!
//! The content hash is computed over the same canonical text as `llm_cost_core::pricing::content_hash`
//! (sorted ids, the priced keys only, decimals without trailing zeros); a core test pins the two.

use std::{env, fmt::Write as _, fs, path::Path};

use sha2::{Digest, Sha256};

// `PRICE_KEYS` and `KEY_CODES`: the one definition, shared with the library.
include!("src/keys.rs");

/// `(price key, canonical decimal)` pairs: prompt and completion always, other keys when the
/// source names them (an explicit `"0"` is a price: free; an absent key is unknown).
type Prices = Vec<(&'static str, String)>;

/// Conditional prices of one model: long-context tiers and time-of-day windows.
#[derive(Default)]
struct Overrides {
    /// `(min_prompt_tokens, tier prices)`, ascending.
    tiers: Vec<(u64, Prices)>,
    /// `(start, end, window prices)`, minutes after midnight UTC.
    windows: Vec<(u16, u16, Prices)>,
}

/// `(id, canonical_slug, prices, overrides, supplement)` of one model; the supplement is the
/// source of the prices `supplement.json` added (`litellm:gpt-5`) and their keys.
type Model = (
    String,
    String,
    Prices,
    Overrides,
    Option<(String, Vec<&'static str>)>,
);

fn main() {
    println!("cargo:rerun-if-changed=bundled.json");
    println!("cargo:rerun-if-changed=supplement.json");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/keys.rs");
    let text = fs::read_to_string("bundled.json").expect("pricing-data/bundled.json is readable");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("bundled.json is JSON");
    let snapshot_date = doc["snapshot_date"]
        .as_str()
        .expect("bundled.json has snapshot_date");
    // Provider facts OpenRouter's listing lacks (service tiers, ...), from LiteLLM: see
    // `supplement.py`. A price the snapshot lists always wins.
    let supplement: serde_json::Value = serde_json::from_str(
        &fs::read_to_string("supplement.json").expect("pricing-data/supplement.json is readable"),
    )
    .expect("supplement.json is JSON");
    let mut models: Vec<Model> = Vec::new();
    for entry in doc["data"]
        .as_array()
        .expect("bundled.json has a data array")
    {
        let id = entry["id"]
            .as_str()
            .expect("every model has an id")
            .to_string();
        let slug = entry["canonical_slug"].as_str().unwrap_or("").to_string();
        let pricing = &entry["pricing"];
        let value = |key: &str| pricing[key].as_str().map(str::to_string);
        let added = &supplement["models"][&id];
        let merged =
            |key: &str| value(key).or_else(|| added["pricing"][key].as_str().map(str::to_string));
        // "-1" marks dynamic pricing (e.g. openrouter/auto): not a price we can apply.
        let Some(prices) = canonical_prices(merged) else {
            continue;
        };
        let overrides = overrides(&pricing["overrides"], value);
        let taken: Vec<&'static str> = PRICE_KEYS
            .into_iter()
            .filter(|key| value(key).is_none() && added["pricing"][key].is_string())
            .collect();
        let source = added["from"].as_str().map(|from| format!("litellm:{from}"));
        let supplement = source.filter(|_| !taken.is_empty()).map(|s| (s, taken));
        models.push((id, slug, prices, overrides, supplement));
    }
    // Models OpenRouter does not list at all (tts-1 speech, billed per character): the
    // supplement's own entries, every price from it. An OpenRouter entry of the same id wins
    // (it was pushed first; the sort is stable and `dedup_by` keeps the first).
    if let Some(entries) = supplement["entries"].as_object() {
        for (id, entry) in entries {
            let value = |key: &str| entry["pricing"][key].as_str().map(str::to_string);
            let Some(prices) = canonical_prices(value) else {
                continue;
            };
            let taken: Vec<&'static str> = PRICE_KEYS
                .into_iter()
                .filter(|key| value(key).is_some())
                .collect();
            let source = entry["from"].as_str().map(|from| format!("litellm:{from}"));
            let supplement = source.map(|s| (s, taken));
            models.push((
                id.clone(),
                id.clone(),
                prices,
                Overrides::default(),
                supplement,
            ));
        }
    }
    models.sort_by(|a, b| a.0.cmp(&b.0));
    models.dedup_by(|a, b| a.0 == b.0);

    let mut canonical = String::new();
    let canonical_prices_text = |out: &mut String, prices: &Prices| {
        for (key, value) in prices {
            let _ = write!(out, "\t{key}={value}");
        }
    };
    for (id, slug, prices, overrides, _) in &models {
        let _ = write!(canonical, "{id}\t{slug}");
        canonical_prices_text(&mut canonical, prices);
        for (min, tier) in &overrides.tiers {
            let _ = write!(canonical, "\t>{min}");
            canonical_prices_text(&mut canonical, tier);
        }
        for (start, end, window) in &overrides.windows {
            let _ = write!(canonical, "\t@{start}-{end}");
            canonical_prices_text(&mut canonical, window);
        }
        canonical.push('\n');
    }
    let hash = Sha256::digest(canonical.as_bytes());
    let hash_hex: String = hash.iter().take(4).map(|b| format!("{b:02x}")).collect();

    let mut out = String::new();
    let _ = writeln!(out, "/// Date of the bundled OpenRouter snapshot.");
    let _ = writeln!(out, "pub const SNAPSHOT_DATE: &str = {snapshot_date:?};");
    let _ = writeln!(
        out,
        "/// `openrouter-<date>+<first 8 hex of the content hash>`."
    );
    let _ = writeln!(
        out,
        "pub const PRICING_VERSION: &str = \"openrouter-{snapshot_date}+{hash_hex}\";"
    );
    // One line per model, `id \t slug \t prices`, sorted by id: far smaller in the .wasm than a
    // table of `&str` pairs (no pointer/length per price). The slug is `=` when equal to the id;
    // prices are `<key code><decimal>` separated by spaces (codes: `KEY_CODES`, in `PRICE_KEYS`'
    // order).
    let mut table = String::new();
    let mut line_starts = Vec::new();
    for (id, slug, prices, overrides, supplement) in &models {
        line_starts.push(table.len());
        let slug = if slug == id { "=" } else { slug.as_str() };
        let _ = write!(table, "{id}\t{slug}\t");
        write_prices(&mut table, prices);
        for (min, tier) in &overrides.tiers {
            let _ = write!(table, "|{min}:");
            write_prices(&mut table, tier);
        }
        for (start, end, window) in &overrides.windows {
            let _ = write!(table, "|@{start}-{end}:");
            write_prices(&mut table, window);
        }
        // `|+<source> <codes>`: the keys the supplement added (provenance, not prices).
        if let Some((source, keys)) = supplement {
            let _ = write!(table, "|+{source}");
            for key in keys {
                let _ = write!(
                    table,
                    " {}",
                    KEY_CODES[PRICE_KEYS
                        .iter()
                        .position(|k| k == key)
                        .expect("a price key")]
                );
            }
        }
        table.push('\n');
    }
    let _ = writeln!(
        out,
        "/// Every bundled model, one line each, sorted by id (see `build.rs`)."
    );
    let _ = writeln!(out, "static TABLE: &str = {table:?};");
    let _ = writeln!(out, "/// Byte offset of each line of `TABLE`.");
    let _ = writeln!(out, "static LINE_STARTS: &[u32] = &{line_starts:?};");
    let mut slugs: Vec<(&str, usize)> = models
        .iter()
        .enumerate()
        .filter(|(_, m)| !m.1.is_empty())
        .map(|(i, m)| (m.1.as_str(), i))
        .collect();
    // Several ids can share a slug (`x` and `x:batch`, `x:free`): the slug means the base model.
    slugs.sort_by_key(|(slug, i)| (*slug, models[*i].0.contains(':'), models[*i].0.len()));
    slugs.dedup_by(|a, b| a.0 == b.0);
    let by_slug: Vec<u16> = slugs
        .iter()
        .map(|(_, i)| u16::try_from(*i).expect("fewer than 65536 models"))
        .collect();
    let _ = writeln!(
        out,
        "/// Line numbers of the models with a canonical slug, sorted by slug."
    );
    let _ = writeln!(out, "static BY_SLUG: &[u16] = &{by_slug:?};");
    let dest = Path::new(&env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("bundled.rs");
    fs::write(dest, out).expect("OUT_DIR is writable");
}

/// `<key code><decimal>` per price, space-separated.
fn write_prices(table: &mut String, prices: &Prices) {
    for (n, (key, value)) in prices.iter().enumerate() {
        let code = KEY_CODES[PRICE_KEYS
            .iter()
            .position(|k| k == key)
            .expect("a price key")];
        let sep = if n == 0 { "" } else { " " };
        let _ = write!(table, "{sep}{code}{value}");
    }
}

/// Canonical prices from `value(key)` (`None`: the source does not name the key); `None` when a
/// price is not a non-negative decimal. Prompt and completion are always listed (absent: `0`,
/// the OpenRouter convention).
fn canonical_prices(value: impl Fn(&str) -> Option<String>) -> Option<Prices> {
    let mut prices = Vec::new();
    for key in PRICE_KEYS {
        let text = match value(key) {
            Some(text) => text,
            None if key == "prompt" || key == "completion" => "0".to_string(),
            None => continue,
        };
        prices.push((key, canonical_decimal(&text)?));
    }
    Some(prices)
}

/// Is `key` a service-tier price (`prompt_flex`, ...)? Conditional entries never inherit those
/// from the base prices: a tier's price at long context is its own fact, unknown unless named.
fn is_tier_key(key: &str) -> bool {
    SERVICE_TIER_SUFFIXES
        .iter()
        .any(|t| key.strip_suffix(t).is_some_and(|k| k.ends_with('_')))
}

/// OpenRouter `overrides` (Python-style text or a JSON list): entries with `min_prompt_tokens`
/// (long-context tiers, ascending) and with `utc_start`/`utc_end` (HHMM, as minutes after
/// midnight), each the base prices overlaid with the entry's.
fn overrides(overrides: &serde_json::Value, base: impl Fn(&str) -> Option<String>) -> Overrides {
    let list = match overrides {
        serde_json::Value::String(text) => {
            serde_json::from_str(&text.replace('\'', "\"")).expect("pricing overrides parse")
        }
        other => other.clone(),
    };
    let mut out = Overrides::default();
    for entry in list.as_array().into_iter().flatten() {
        let value = |key: &str| match &entry[key] {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Number(n) => Some(n.to_string()),
            _ if is_tier_key(key) => None,
            _ => base(key),
        };
        let prices = || canonical_prices(value).expect("override prices are decimals");
        let number = |key: &str| entry.get(key).and_then(|v| v.as_u64());
        if let (Some(start), Some(end)) = (number("utc_start"), number("utc_end")) {
            let minutes = |hhmm: u64| {
                assert!(
                    hhmm % 100 < 60 && (hhmm / 100 < 24 || hhmm == 2400),
                    "HHMM: {hhmm}"
                );
                (hhmm / 100 * 60 + hhmm % 100) as u16
            };
            out.windows.push((minutes(start), minutes(end), prices()));
        } else if let Some(min) = number("min_prompt_tokens") {
            out.tiers.push((min, prices()));
        }
    }
    out.tiers.sort_by_key(|(min, _)| *min);
    out
}

/// `"0.00000250"` → `"0.0000025"`, `"3.0"` → `"3"`; `None` for anything but a non-negative decimal.
fn canonical_decimal(value: &str) -> Option<String> {
    let value = value.trim();
    let (whole, frac) = value.split_once('.').unwrap_or((value, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return None;
    }
    let whole = whole.trim_start_matches('0');
    let whole = if whole.is_empty() { "0" } else { whole };
    let frac = frac.trim_end_matches('0');
    Some(if frac.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{frac}")
    })
}
