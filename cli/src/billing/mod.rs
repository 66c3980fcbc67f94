//! `llm-cost billing fetch`: what the providers say they billed, read from their own usage and
//! cost APIs with an admin key, written as normalised NDJSON rows ([`row::BillingRow`]) that
//! `llm-cost reconcile` compares with the metered records.
//!
//! One module per provider (`openrouter`, `openai`, `anthropic`: which endpoints, which groups,
//! how their answers map to rows), the transport and retry policy in `http`, the row and exact
//! amount parsing in `row`. The admin key is read from the environment only and never printed.

mod anthropic;
pub mod http;
mod openai;
mod openrouter;
pub mod row;

use std::io::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use llm_cost_core::Usd;
use serde::Deserialize;

use http::{Client, FetchError, MAX_PAGES};
use row::BillingRow;

/// One page of an OpenAI or Anthropic admin report: time buckets (`B`, the provider's shape),
/// `has_more`, and the cursor to pass for the next page. Both APIs page this same way.
#[derive(Deserialize)]
struct Page<B> {
    data: Vec<B>,
    has_more: bool,
    #[serde(default)]
    next_page: Option<String>,
}

impl<B> Page<B> {
    /// The cursor of the next page, if there is one (an empty cursor ends the report too).
    fn next(&self) -> Option<String> {
        self.next_page
            .clone()
            .filter(|p| self.has_more && !p.is_empty())
    }
}

/// The query of an OpenAI or Anthropic admin report over a window of whole UTC days: its start and
/// end (each API names them its own way), daily buckets, up to 31 a page, grouped by `groups`.
fn report_window(
    start: (&str, String),
    end: (&str, String),
    groups: &[&str],
) -> Vec<(String, String)> {
    let mut q = vec![
        (start.0.to_owned(), start.1),
        (end.0.to_owned(), end.1),
        ("bucket_width".to_owned(), "1d".to_owned()),
        ("limit".to_owned(), "31".to_owned()),
    ];
    q.extend(
        groups
            .iter()
            .map(|g| ("group_by[]".to_owned(), (*g).to_owned())),
    );
    q
}

/// `llm-cost billing …`.
#[derive(Subcommand)]
pub enum BillingCommand {
    /// Read a provider's usage and cost reports into normalised NDJSON rows (admin key from the
    /// environment: OPENROUTER_MANAGEMENT_KEY, OPENAI_ADMIN_KEY, ANTHROPIC_ADMIN_KEY).
    Fetch(FetchArgs),
}

/// Arguments of `llm-cost billing fetch`.
#[derive(Args)]
pub struct FetchArgs {
    /// Whose bill to read.
    #[arg(long, value_enum)]
    provider: BillingProvider,
    /// First UTC day, YYYY-MM-DD.
    #[arg(long, value_parser = row::parse_day)]
    since: String,
    /// Last UTC day, inclusive (default: today, UTC).
    #[arg(long, value_parser = row::parse_day)]
    until: Option<String>,
    /// Write the rows here instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The provider's API origin (default https://openrouter.ai, https://api.openai.com,
    /// https://api.anthropic.com); plain http only to a loopback address.
    #[arg(long)]
    base_url: Option<String>,
    /// Seconds one request may take, connect to last byte.
    #[arg(long, default_value_t = http::REQUEST_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

/// The providers whose bills can be read.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BillingProvider {
    /// OpenRouter `/api/v1/activity` (management key).
    Openrouter,
    /// OpenAI `/v1/organization/costs` and `/usage/completions` (admin key, api.usage.read).
    Openai,
    /// Anthropic `/v1/organizations/cost_report` and `/usage_report/messages` (Admin API key).
    Anthropic,
}

impl BillingProvider {
    fn key_variable(self) -> &'static str {
        match self {
            BillingProvider::Openrouter => openrouter::KEY_VARIABLE,
            BillingProvider::Openai => openai::KEY_VARIABLE,
            BillingProvider::Anthropic => anthropic::KEY_VARIABLE,
        }
    }

    fn denied_hint(self) -> &'static str {
        match self {
            BillingProvider::Openrouter => openrouter::DENIED_HINT,
            BillingProvider::Openai => openai::DENIED_HINT,
            BillingProvider::Anthropic => anthropic::DENIED_HINT,
        }
    }

    fn default_base(self) -> &'static str {
        match self {
            BillingProvider::Openrouter => openrouter::DEFAULT_BASE,
            BillingProvider::Openai => openai::DEFAULT_BASE,
            BillingProvider::Anthropic => anthropic::DEFAULT_BASE,
        }
    }

    /// The headers that carry `key`.
    fn auth_headers(self, key: &str) -> Vec<(&'static str, String)> {
        match self {
            BillingProvider::Openrouter | BillingProvider::Openai => {
                vec![("authorization", format!("Bearer {key}"))]
            }
            BillingProvider::Anthropic => vec![
                ("x-api-key", key.to_owned()),
                ("anthropic-version", anthropic::VERSION.to_owned()),
            ],
        }
    }
}

/// Runs `llm-cost billing …`; the error is a message for the user (never holding the key).
pub fn run(command: &BillingCommand) -> Result<(), String> {
    match command {
        BillingCommand::Fetch(args) => fetch(args).map_err(|e| e.to_string()),
    }
}

fn fetch(args: &FetchArgs) -> Result<(), FetchError> {
    let provider = args.provider;
    let variable = provider.key_variable();
    let key = std::env::var(variable)
        .unwrap_or_default()
        .trim()
        .to_owned();
    if key.is_empty() {
        return Err(FetchError::MissingKey {
            variable,
            hint: provider.denied_hint(),
        });
    }
    let base = args.base_url.as_deref().unwrap_or(provider.default_base());
    check_base(base).map_err(|detail| FetchError::Transport {
        endpoint: base.to_owned(),
        detail,
    })?;
    let until = args.until.clone().unwrap_or_else(today);
    if until < args.since {
        return Err(FetchError::Usage(format!(
            "--until {until} is before --since {}",
            args.since
        )));
    }
    if provider == BillingProvider::Openrouter {
        let today_start = row::day_start(&today()).unwrap_or(0);
        let oldest = row::day_of_unix(today_start.saturating_sub(30 * 86_400));
        if args.since < oldest {
            eprintln!(
                "llm-cost: OpenRouter's activity covers only the last 30 completed UTC days (from {oldest})"
            );
        }
    }
    let timeout = std::time::Duration::from_secs(args.timeout);
    let mut client = Client::new(
        base,
        provider.auth_headers(&key),
        key,
        provider.denied_hint(),
        timeout,
    );
    let rows = match provider {
        BillingProvider::Openrouter => openrouter::fetch(&mut client, &args.since, &until)?,
        BillingProvider::Openai => openai::fetch(&mut client, &args.since, &until)?,
        BillingProvider::Anthropic => anthropic::fetch(&mut client, &args.since, &until)?,
    };
    let mut text = String::new();
    let mut billed = Usd::ZERO;
    for r in &rows {
        text.push_str(&serde_json::to_string(r).unwrap_or_default());
        text.push('\n');
        if let Some(cost) = r.cost_usd.as_deref().and_then(|c| Usd::parse(c).ok()) {
            billed = billed.saturating_add(cost);
        }
    }
    let write_error = |e: std::io::Error| FetchError::Transport {
        endpoint: args
            .out
            .as_ref()
            .map_or("stdout".into(), |p| p.display().to_string()),
        detail: e.to_string(),
    };
    match &args.out {
        Some(path) => std::fs::write(path, &text).map_err(write_error)?,
        None => std::io::stdout()
            .write_all(text.as_bytes())
            .map_err(write_error)?,
    }
    eprintln!(
        "llm-cost: {} rows from {base}, {} to {until}: {billed} USD billed ({} retr{})",
        rows.len(),
        args.since,
        client.retries,
        if client.retries == 1 { "y" } else { "ies" },
    );
    Ok(())
}

/// One page parsed: its rows and the next page's token (`None`: the last page).
type PageRows = Result<(Vec<BillingRow>, Option<String>), String>;

/// Follows `has_more` / `next_page` from `path` with `query`; `parse` turns one page into rows
/// and the next page's token.
fn paged(
    client: &mut Client,
    path: &str,
    query: Vec<(String, String)>,
    parse: fn(&[u8]) -> PageRows,
) -> Result<Vec<BillingRow>, FetchError> {
    let mut rows = Vec::new();
    let mut page: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut q = query.clone();
        if let Some(token) = &page {
            q.push(("page".to_owned(), token.clone()));
        }
        let body = client.get(path, &q)?;
        let (more, next) = parse(&body).map_err(|detail| FetchError::Malformed {
            endpoint: format!("GET {path}"),
            detail,
        })?;
        rows.extend(more);
        match next {
            Some(token) if page.as_deref() != Some(token.as_str()) => page = Some(token),
            Some(_) => {
                return Err(FetchError::Malformed {
                    endpoint: format!("GET {path}"),
                    detail: "next_page repeats the page just read".into(),
                })
            }
            None => return Ok(rows),
        }
    }
    Err(FetchError::TooManyPages {
        endpoint: format!("GET {path}"),
    })
}

/// An `https://` origin, or `http://` to loopback only: the admin key must not cross a network
/// in clear text.
fn check_base(base: &str) -> Result<(), String> {
    if base.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = base.strip_prefix("http://") else {
        return Err(
            "--base-url must start with https:// (or http:// to a loopback address)".into(),
        );
    };
    let host = rest.split(['/', '?']).next().unwrap_or("");
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(h, _)| h),
    };
    if host == "localhost" || host == "::1" || host.starts_with("127.") {
        Ok(())
    } else {
        Err(format!(
            "http:// to {host} would send the admin key in clear text: use https://"
        ))
    }
}

/// Today's UTC day from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    row::day_of_unix(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_only_travels_over_tls_or_loopback() {
        assert!(check_base("https://api.openai.com").is_ok());
        assert!(check_base("http://127.0.0.1:8080").is_ok());
        assert!(check_base("http://localhost:1/x").is_ok());
        assert!(check_base("http://[::1]:9").is_ok());
        assert!(check_base("http://api.openai.com").is_err());
        assert!(check_base("ftp://x").is_err());
    }

    #[test]
    fn each_provider_carries_the_key_in_its_own_header() {
        let h = BillingProvider::Anthropic.auth_headers("k");
        assert!(h.contains(&("x-api-key", "k".to_owned())));
        assert!(h.iter().any(|(n, _)| *n == "anthropic-version"));
        let h = BillingProvider::Openai.auth_headers("k");
        assert_eq!(h, vec![("authorization", "Bearer k".to_owned())]);
    }
}
