//! `llm-cost pricing import|diff|show`: keep the price table current, see what applies.
//!
//! `import` turns an OpenRouter `/api/v1/models` dump or LiteLLM's price file into the bundled
//! snapshot format (OpenRouter shape, models sorted by id, priced keys only, canonical decimals,
//! with date and source), so refreshes diff cleanly. `diff` lists what changed between two tables;
//! `show` prints the prices one model would be charged (`explain`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use llm_cost_core::price_doc::{self, DocFormat};
use llm_cost_core::pricing::{ModelEntry, Prices, PRICE_KEYS};
use llm_cost_core::PriceTable;
use serde_json::{json, Map, Value};

/// `llm-cost pricing …`
#[derive(Subcommand)]
pub enum PricingCommand {
    /// Convert an OpenRouter or LiteLLM price file into the bundled snapshot format.
    Import(ImportArgs),
    /// List models added, removed and re-priced between two price files.
    Diff(DiffArgs),
    /// Print the prices a call of MODEL would be charged (after `models` overrides, tiers and
    /// time windows), the table entry and where each price comes from.
    Show(ShowArgs),
    /// Download a price document (OpenRouter, LiteLLM or a snapshot) and write the snapshot format.
    Fetch(FetchArgs),
}

/// Arguments of `llm-cost pricing show`.
#[derive(Args)]
pub struct ShowArgs {
    /// The model as a client or upstream names it (any id, slug or alias the table accepts).
    #[arg(value_name = "MODEL")]
    model: String,
    /// Meter configuration whose `models` apply (the Envoy `plugin_config` JSON).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Price table replacing the bundled one.
    #[arg(long, value_name = "FILE")]
    pricing: Option<PathBuf>,
    /// The time of the call (RFC 3339 UTC): picks a time-of-day window. Default: list prices.
    #[arg(long, value_name = "TIME", value_parser = crate::price::parse_time)]
    at: Option<u64>,
    /// Prompt tokens of the call: picks a long-context tier.
    #[arg(long, value_name = "N", default_value_t = 0)]
    prompt_tokens: u64,
    /// The provider answering (completes bare names); default: OpenAI, Anthropic, Gemini in turn.
    #[arg(long, value_enum)]
    provider: Option<crate::price::ProviderArg>,
}

/// Arguments of `llm-cost pricing fetch`.
#[derive(Args)]
pub struct FetchArgs {
    /// `https://` (or `http://`) URL of the document, e.g. https://openrouter.ai/api/v1/models.
    #[arg(value_name = "URL")]
    url: String,
    /// Its shape; default: detected (OpenRouter `{"data": [...]}` or a LiteLLM object).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Trust the CA certificate(s) in this PEM file instead of the public roots.
    #[arg(long, value_name = "FILE")]
    ca_cert: Option<PathBuf>,
}

/// `--format`: the configuration's `pricing.source.format` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    Openrouter,
    Litellm,
    Snapshot,
}

impl FormatArg {
    fn doc_format(self) -> DocFormat {
        match self {
            FormatArg::Openrouter => DocFormat::OpenRouter,
            FormatArg::Litellm => DocFormat::LiteLlm,
            FormatArg::Snapshot => DocFormat::Snapshot,
        }
    }
}

/// Arguments of `llm-cost pricing import`.
#[derive(Args)]
pub struct ImportArgs {
    /// OpenRouter `/api/v1/models` dump or LiteLLM `model_prices_and_context_window.json`.
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Snapshot date (YYYY-MM-DD); default: the file's `snapshot_date`, else today (UTC).
    #[arg(long)]
    date: Option<String>,
    /// Where the prices came from; default: the file's `source`, else its name.
    #[arg(long)]
    source: Option<String>,
    /// Write here instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// Arguments of `llm-cost pricing diff`.
#[derive(Args)]
pub struct DiffArgs {
    /// The older price file (any accepted shape).
    #[arg(value_name = "OLD")]
    old: PathBuf,
    /// The newer price file (any accepted shape).
    #[arg(value_name = "NEW")]
    new: PathBuf,
}

/// Runs a `pricing` subcommand; the error is a message for the user.
pub fn run(command: &PricingCommand) -> Result<(), String> {
    match command {
        PricingCommand::Import(args) => import(args),
        PricingCommand::Fetch(args) => fetch(args),
        PricingCommand::Diff(args) => {
            let old = load(&args.old)?;
            let new = load(&args.new)?;
            print!("{}", diff(&old.entries(), &new.entries()));
            Ok(())
        }
        PricingCommand::Show(args) => {
            let config =
                crate::price::load_config(args.config.as_deref(), args.pricing.as_deref())?;
            let provider = args.provider.map(crate::price::ProviderArg::provider);
            let text =
                crate::explain::show(&config, &args.model, provider, args.at, args.prompt_tokens)?;
            print!("{text}");
            Ok(())
        }
    }
}

fn load(path: &PathBuf) -> Result<PriceTable, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    PriceTable::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// Downloads, checks (the filter's checks: parses, a priced model, no absurd price) and writes
/// the snapshot, dated today, with the URL as its source.
fn fetch(args: &FetchArgs) -> Result<(), String> {
    let bytes = crate::fetch::download(&args.url, args.ca_cert.as_deref())?;
    let table = match args.format {
        Some(format) => price_doc::parse(format.doc_format(), &bytes, "fetched"),
        None => PriceTable::from_json(&bytes).map_err(price_doc::Rejection::from),
    }
    .map_err(|e| format!("{}: {e}", args.url))?;
    let entries = table.entries();
    price_doc::check_prices(&entries).map_err(|e| format!("{}: {e}", args.url))?;
    let text = snapshot_json(&entries, &today_utc(), &args.url);
    eprintln!("{}: {} models", args.url, entries.len());
    write_out(args.out.as_deref(), &text)
}

fn import(args: &ImportArgs) -> Result<(), String> {
    let bytes = std::fs::read(&args.file)
        .map_err(|e| format!("cannot read {}: {e}", args.file.display()))?;
    let table =
        PriceTable::from_json(&bytes).map_err(|e| format!("{}: {e}", args.file.display()))?;
    let original: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    let date = args
        .date
        .clone()
        .or_else(|| original["snapshot_date"].as_str().map(str::to_owned))
        .unwrap_or_else(today_utc);
    let source = args
        .source
        .clone()
        .or_else(|| original["source"].as_str().map(str::to_owned))
        .unwrap_or_else(|| args.file.display().to_string());
    let text = snapshot_json(&table.entries(), &date, &source);
    write_out(args.out.as_deref(), &text)
}

/// Writes `text` to `out`, or to stdout without one (`pricing fetch` and `pricing import`).
fn write_out(out: Option<&std::path::Path>, text: &str) -> Result<(), String> {
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The snapshot format: OpenRouter's shape, one model per line block, keys sorted.
pub fn snapshot_json(entries: &[ModelEntry], date: &str, source: &str) -> String {
    let data: Vec<Value> = entries
        .iter()
        .map(|m| {
            let mut pricing: Map<String, Value> = prices_of(&m.prices)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v)))
                .collect();
            // Long-context tiers and time windows, as a JSON list (OpenRouter's feed has
            // Python-style text).
            let entry = |prices: &Prices, conditions: &[(&str, u64)]| {
                let mut e: Map<String, Value> = prices_of(prices)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), Value::String(v)))
                    .collect();
                for (key, value) in conditions {
                    e.insert((*key).into(), json!(value));
                }
                Value::Object(e)
            };
            let tiers = m
                .prices
                .long_context
                .iter()
                .map(|(min, tier)| entry(tier, &[("min_prompt_tokens", *min)]));
            let windows = m.prices.time_of_day.iter().map(|w| {
                let conditions = [("utc_start", hhmm(w.start)), ("utc_end", hhmm(w.end))];
                entry(&w.prices, &conditions)
            });
            let overrides: Vec<Value> = tiers.chain(windows).collect();
            if !overrides.is_empty() {
                pricing.insert("overrides".into(), Value::Array(overrides));
            }
            json!({
                "canonical_slug": m.canonical_slug,
                "id": m.id,
                "pricing": Value::Object(pricing),
            })
        })
        .collect();
    let doc = json!({ "data": data, "snapshot_date": date, "source": source });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Every known price (prompt and completion always, any other the source named), by key.
/// Decimal text without trailing zeros.
fn prices_of(prices: &Prices) -> BTreeMap<&'static str, String> {
    PRICE_KEYS
        .iter()
        .filter_map(|key| Some((*key, prices.known(key)?.to_decimal_string())))
        .collect()
}

/// `+ id` added, `- id` removed, `~ id key old -> new` re-priced; sorted by id.
pub fn diff(old_entries: &[ModelEntry], new_entries: &[ModelEntry]) -> String {
    let old = old_entries;
    let new = new_entries;
    let old: BTreeMap<&str, BTreeMap<String, String>> = old
        .iter()
        .map(|m| (m.id.as_str(), all_prices_of(m)))
        .collect();
    let new: BTreeMap<&str, BTreeMap<String, String>> = new
        .iter()
        .map(|m| (m.id.as_str(), all_prices_of(m)))
        .collect();
    let mut out = String::new();
    let ids: std::collections::BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    for id in ids {
        match (old.get(id), new.get(id)) {
            (None, Some(_)) => {
                let _ = writeln!(out, "+ {id}");
            }
            (Some(_), None) => {
                let _ = writeln!(out, "- {id}");
            }
            (Some(a), Some(b)) if a != b => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let (x, y) = (a.get(key), b.get(key));
                    if x != y {
                        // An absent price is unknown, not free: `none`.
                        let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "none".into());
                        let _ = writeln!(out, "~ {id} {key} {} -> {}", show(x), show(y));
                    }
                }
            }
            _ => {}
        }
    }
    // The counts are the core's (the same summary the Envoy filter logs on a live-price change).
    let summary = price_doc::DiffSummary::between(old_entries, new_entries);
    let _ = writeln!(out, "{summary}");
    out
}

/// Minutes after midnight → OpenRouter's `HHMM` number.
fn hhmm(minutes: u16) -> u64 {
    u64::from(minutes / 60 * 100 + minutes % 60)
}

/// Base prices by key, each long-context tier's as `<key> from <N> prompt tokens`, and each time
/// window's as `<key> 01:00-04:00 UTC`.
fn all_prices_of(model: &ModelEntry) -> BTreeMap<String, String> {
    let mut all: BTreeMap<String, String> = prices_of(&model.prices)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    for (min, tier) in &model.prices.long_context {
        for (key, value) in prices_of(tier) {
            all.insert(format!("{key} from {min} prompt tokens"), value);
        }
    }
    let clock = |minutes: u16| format!("{:02}:{:02}", minutes / 60, minutes % 60);
    for window in &model.prices.time_of_day {
        let (start, end) = (clock(window.start), clock(window.end));
        for (key, value) in prices_of(&window.prices) {
            all.insert(format!("{key} {start}-{end} UTC"), value);
        }
    }
    all
}

fn today_utc() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    llm_cost_core::time::rfc3339_millis(ms)[..10].to_owned()
}
