//! `llm-cost report`: spend totals and breakdowns over NDJSON cost records.
//!
//! Streams its input line by line (memory grows with the number of distinct models, days, keys,
//! providers and statuses, never with the number of lines), sums money exactly (decimal strings
//! into `Usd`, no floats), and reports malformed lines by count and line number without stopping.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};

use clap::{Args, ValueEnum};
use llm_cost_core::Usd;
use serde::Deserialize;
use serde_json::json;

/// Arguments of `llm-cost report`.
#[derive(Args)]
pub struct ReportArgs {
    /// NDJSON files of cost records; `-` or none for standard input.
    #[arg(value_name = "LOGFILE")]
    files: Vec<String>,
    /// How many keys to list by cost.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    format: Output,
    /// Shorthand for `--format json`.
    #[arg(long)]
    json: bool,
    /// Shorthand for `--format csv`.
    #[arg(long)]
    csv: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

/// The record fields a report reads (everything else is ignored).
#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    cost_status: Option<String>,
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
    #[serde(default)]
    cost_usd: Option<String>,
    #[serde(default)]
    upstream_cost_usd: Option<String>,
}

/// Sums for one group.
#[derive(Clone, Copy, Default)]
struct Totals {
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: Usd,
    upstream_cost: Usd,
}

impl Totals {
    /// These totals plus one record; `None` when a sum does not fit (absurd counts or costs).
    fn plus(&self, r: &Record, cost: Usd, upstream: Usd) -> Option<Totals> {
        Some(Totals {
            calls: self.calls.checked_add(1)?,
            prompt_tokens: self
                .prompt_tokens
                .checked_add(r.prompt_tokens.unwrap_or(0))?,
            completion_tokens: self
                .completion_tokens
                .checked_add(r.completion_tokens.unwrap_or(0))?,
            cost: self.cost.checked_add(cost).ok()?,
            upstream_cost: self.upstream_cost.checked_add(upstream).ok()?,
        })
    }
}

/// The dimensions a report breaks spend down by.
const DIMENSIONS: [&str; 5] = ["model", "day", "key_id", "provider", "status"];

#[derive(Default)]
struct Report {
    total: Totals,
    by: BTreeMap<&'static str, BTreeMap<String, Totals>>,
    lines: u64,
    malformed: u64,
    malformed_lines: Vec<(String, u64)>,
    last_day: Option<String>,
}

const MALFORMED_LISTED: usize = 20;

impl Report {
    fn line(&mut self, source: &str, number: u64, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.lines += 1;
        // A line whose numbers would overflow the totals is malformed: never a wrapped sum.
        let parsed = serde_json::from_str::<Record>(line).ok().and_then(|r| {
            let cost = money(r.cost_usd.as_deref())?;
            let upstream = money(r.upstream_cost_usd.as_deref())?;
            let total = self.total.plus(&r, cost, upstream)?;
            Some((r, cost, upstream, total))
        });
        let Some((record, cost, upstream, total)) = parsed else {
            self.malformed += 1;
            if self.malformed_lines.len() < MALFORMED_LISTED {
                self.malformed_lines.push((source.to_owned(), number));
            }
            return;
        };
        self.total = total;
        let day = record
            .ts
            .as_deref()
            .and_then(|t| t.get(..10))
            .unwrap_or("unknown")
            .to_owned();
        if self.last_day.as_deref().is_none_or(|d| day.as_str() > d) && day != "unknown" {
            self.last_day = Some(day.clone());
        }
        let keys = [
            record.model.clone().unwrap_or_else(|| "unknown".into()),
            day,
            record.key_id.clone().unwrap_or_else(|| "none".into()),
            record.provider.clone().unwrap_or_else(|| "unknown".into()),
            record
                .cost_status
                .clone()
                .unwrap_or_else(|| "unknown".into()),
        ];
        for (dimension, key) in DIMENSIONS.into_iter().zip(keys) {
            let group = self
                .by
                .entry(dimension)
                .or_default()
                .entry(key)
                .or_default();
            // A group's sums never exceed the total's, which fit.
            if let Some(sum) = group.plus(&record, cost, upstream) {
                *group = sum;
            }
        }
    }

    /// Month-to-date cost of the latest month, plus its average daily cost × the days left.
    fn projection(&self) -> Option<(String, Usd, Usd)> {
        let last = self.last_day.as_deref()?;
        let month = &last[..7];
        let days = self.by.get("day")?;
        let (mut to_date, mut seen_days) = (Usd::ZERO, 0u64);
        for (day, totals) in days.range(format!("{month}-01")..=last.to_owned()) {
            if day.starts_with(month) {
                to_date = to_date.checked_add(totals.cost).ok()?;
                seen_days += 1;
            }
        }
        let day_of_month: u64 = last[8..10].parse().ok()?;
        let remaining = days_in_month(month)?.saturating_sub(day_of_month);
        // Run-rate: cost so far over the days elapsed in the month (days without calls count).
        let projected = to_date
            .checked_add(
                to_date
                    .scaled(remaining, day_of_month.max(seen_days))
                    .ok()?,
            )
            .ok()?;
        Some((month.to_owned(), to_date, projected))
    }
}

/// `None` for a present but unusable amount (makes the line malformed); zero when absent.
fn money(text: Option<&str>) -> Option<Usd> {
    match text {
        None => Some(Usd::ZERO),
        Some(t) => Usd::parse(t).ok(),
    }
}

fn days_in_month(month: &str) -> Option<u64> {
    let year: u64 = month.get(..4)?.parse().ok()?;
    let m: u64 = month.get(5..7)?.parse().ok()?;
    let leap = (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400);
    Some(match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    })
}

/// Runs `llm-cost report`; the error is a message for the user.
pub fn run(args: &ReportArgs) -> Result<(), String> {
    let mut report = Report::default();
    let files = if args.files.is_empty() {
        vec!["-".to_owned()]
    } else {
        args.files.clone()
    };
    for name in &files {
        let input: Box<dyn Read> = if name == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(name).map_err(|e| format!("cannot read {name}: {e}"))?)
        };
        for (i, line) in BufReader::new(input).split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("cannot read {name}: {e}"))?;
            report.line(name, i as u64 + 1, &String::from_utf8_lossy(&line));
        }
    }
    let format = if args.json {
        Output::Json
    } else if args.csv {
        Output::Csv
    } else {
        args.format
    };
    print!(
        "{}",
        match format {
            Output::Table => table(&report, args.top),
            Output::Json => json_report(&report, args.top),
            Output::Csv => csv(&report),
        }
    );
    if report.malformed > 0 {
        let listed: Vec<String> = report
            .malformed_lines
            .iter()
            .map(|(f, n)| format!("{f}:{n}"))
            .collect();
        eprintln!(
            "llm-cost: {} malformed line(s) skipped (first: {})",
            report.malformed,
            listed.join(", ")
        );
    }
    Ok(())
}

fn top_keys(report: &Report, n: usize) -> Vec<(&String, &Totals)> {
    let mut keys: Vec<_> = report
        .by
        .get("key_id")
        .map(|m| m.iter().collect())
        .unwrap_or_default();
    keys.sort_by(|a, b| b.1.cost.cmp(&a.1.cost).then(a.0.cmp(b.0)));
    keys.truncate(n);
    keys
}

fn table(report: &Report, top: usize) -> String {
    let mut out = String::new();
    let t = &report.total;
    let _ = writeln!(
        out,
        "{} calls, {} prompt + {} completion tokens, cost {} USD (upstream reported {} USD)",
        t.calls, t.prompt_tokens, t.completion_tokens, t.cost, t.upstream_cost
    );
    if let Some((month, to_date, projected)) = report.projection() {
        let _ = writeln!(
            out,
            "{month}: {to_date} USD so far, projected {projected} USD by month end"
        );
    }
    let row = |out: &mut String, key: &str, t: &Totals| {
        let _ = writeln!(
            out,
            "  {key:<48} {:>8} {:>12} {:>12} {:>20}",
            t.calls, t.prompt_tokens, t.completion_tokens, t.cost
        );
    };
    for dimension in DIMENSIONS {
        let _ = writeln!(out, "\nby {dimension}:");
        let _ = writeln!(
            out,
            "  {:<48} {:>8} {:>12} {:>12} {:>20}",
            dimension, "calls", "prompt", "completion", "cost_usd"
        );
        for (key, totals) in report.by.get(dimension).into_iter().flatten() {
            row(&mut out, key, totals);
        }
    }
    let _ = writeln!(out, "\ntop {top} keys by cost:");
    for (key, totals) in top_keys(report, top) {
        row(&mut out, key, totals);
    }
    if report.malformed > 0 {
        let _ = writeln!(out, "\n{} malformed line(s) skipped", report.malformed);
    }
    out
}

fn totals_json(t: &Totals) -> serde_json::Value {
    json!({
        "calls": t.calls,
        "prompt_tokens": t.prompt_tokens,
        "completion_tokens": t.completion_tokens,
        "cost_usd": t.cost.to_decimal_string(),
        "upstream_cost_usd": t.upstream_cost.to_decimal_string(),
    })
}

fn json_report(report: &Report, top: usize) -> String {
    let mut by = serde_json::Map::new();
    for (dimension, groups) in &report.by {
        let groups: serde_json::Map<_, _> = groups
            .iter()
            .map(|(k, t)| (k.clone(), totals_json(t)))
            .collect();
        by.insert((*dimension).to_owned(), groups.into());
    }
    let top: Vec<_> = top_keys(report, top)
        .into_iter()
        .map(
            |(k, t)| json!({"key_id": k, "cost_usd": t.cost.to_decimal_string(), "calls": t.calls}),
        )
        .collect();
    let projection = report.projection().map(|(month, to_date, projected)| {
        json!({"month": month, "to_date_usd": to_date.to_decimal_string(), "projected_usd": projected.to_decimal_string()})
    });
    let doc = json!({
        "total": totals_json(&report.total),
        "by": by,
        "top_keys": top,
        "projection": projection,
        "lines": report.lines,
        "malformed_lines": report.malformed,
        "malformed_at": report.malformed_lines.iter().map(|(f, n)| format!("{f}:{n}")).collect::<Vec<_>>(),
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

fn csv(report: &Report) -> String {
    let mut out = String::from(
        "dimension,key,calls,prompt_tokens,completion_tokens,cost_usd,upstream_cost_usd\n",
    );
    let mut line = |dimension: &str, key: &str, t: &Totals| {
        let key = if key.contains([',', '"']) {
            format!("\"{}\"", key.replace('"', "\"\""))
        } else {
            key.to_owned()
        };
        let _ = writeln!(
            out,
            "{dimension},{key},{},{},{},{},{}",
            t.calls, t.prompt_tokens, t.completion_tokens, t.cost, t.upstream_cost
        );
    };
    line("total", "all", &report.total);
    for (dimension, groups) in &report.by {
        for (key, totals) in groups {
            line(dimension, key, totals);
        }
    }
    out
}
