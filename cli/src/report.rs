//! `llm-cost report`: spend totals and breakdowns over NDJSON cost records.
//!
//! Streams its input line by line (memory grows with the number of distinct models, days, keys,
//! providers, statuses and `--by` values, never with the number of lines), sums money exactly
//! (decimal strings into `Usd`, no floats), and reports malformed lines by count and line number
//! without stopping. What a dimension's value is comes from `grouping`.
//!
//! The upstream's own cost is summed over the calls that reported one, and said to be `n/a`
//! (JSON `null`, an empty CSV field) where none did: a reported `0` (an OpenRouter BYOK call) and
//! "no upstream cost reported" (OpenAI, Anthropic, Gemini) are different facts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use llm_cost_core::time::rfc3339_millis;
use llm_cost_core::Usd;
use serde_json::json;

use crate::grouping::{self, Condition, Record, Window};
use crate::ledger::query::{GroupSums, Selection, Sums};
use crate::ledger::Ledger;

mod html;

/// Arguments of `llm-cost report`.
#[derive(Args)]
pub struct ReportArgs {
    /// NDJSON files of cost records; `-` or none for standard input.
    #[arg(value_name = "LOGFILE")]
    files: Vec<String>,
    /// How many keys (and values of each `--by` dimension) to list by cost.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// Group by this dimension (repeatable): a built-in one (model: the price-table id, as the
    /// Prometheus label; answered_model: the record's model, as answered; day, month, key_id, provider,
    /// status, host, endpoint) or an attribute (`team`, `feature`, ...). Default: model, day,
    /// key_id, provider, status.
    #[arg(long = "by", value_name = "DIM", value_parser = grouping::parse_dimension)]
    by: Vec<String>,
    /// Only records whose DIM is VALUE (repeatable; several values of one DIM: any of them).
    #[arg(long = "where", value_name = "DIM=VALUE", value_parser = grouping::parse_condition)]
    conditions: Vec<Condition>,
    /// Only calls that started at or after this UTC date (its midnight) or RFC 3339 time.
    #[arg(long, value_name = "TIME", value_parser = grouping::parse_bound)]
    since: Option<u64>,
    /// Only calls that started before this UTC date (its midnight) or RFC 3339 time (exclusive).
    #[arg(long, value_name = "TIME", value_parser = grouping::parse_bound)]
    until: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    format: Output,
    /// Shorthand for `--format json`.
    #[arg(long)]
    json: bool,
    /// Shorthand for `--format csv`.
    #[arg(long)]
    csv: bool,
    /// Read the records from this PostgreSQL ledger (`collect --postgres`) instead of files: the
    /// same report, summed by the database (`postgres://USER:PASS@HOST:PORT/DB?sslmode=require`).
    #[arg(long, value_name = "URL", conflicts_with = "files")]
    postgres: Option<String>,
    /// Also write the report as one self-contained HTML page (no network needed to view it) to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
    Csv,
}

/// Sums for one group.
#[derive(Clone, Copy, Default)]
struct Totals {
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    cost: Usd,
    upstream_cost: Usd,
    /// Calls whose record carried an upstream cost (`upstream_cost` sums theirs).
    upstream_calls: u64,
    /// Our computed cost of those calls (the other side of the upstream-vs-computed drift).
    cost_of_upstream_calls: Usd,
}

impl Totals {
    /// These totals plus one record; `None` when a sum does not fit (absurd counts or costs).
    fn plus(&self, r: &Record, cost: Usd, upstream: Option<Usd>) -> Option<Totals> {
        Some(Totals {
            calls: self.calls.checked_add(1)?,
            prompt_tokens: self
                .prompt_tokens
                .checked_add(r.prompt_tokens.unwrap_or(0))?,
            completion_tokens: self
                .completion_tokens
                .checked_add(r.completion_tokens.unwrap_or(0))?,
            cost: self.cost.checked_add(cost).ok()?,
            upstream_cost: self
                .upstream_cost
                .checked_add(upstream.unwrap_or(Usd::ZERO))
                .ok()?,
            upstream_calls: self.upstream_calls.checked_add(upstream.is_some().into())?,
            cost_of_upstream_calls: match upstream {
                Some(_) => self.cost_of_upstream_calls.checked_add(cost).ok()?,
                None => self.cost_of_upstream_calls,
            },
        })
    }

    /// These totals less `part` (a part of them: never below zero).
    fn minus(&self, part: &Totals) -> Totals {
        Totals {
            calls: self.calls.saturating_sub(part.calls),
            prompt_tokens: self.prompt_tokens.saturating_sub(part.prompt_tokens),
            completion_tokens: self
                .completion_tokens
                .saturating_sub(part.completion_tokens),
            cost: self.cost.saturating_sub(part.cost),
            upstream_cost: self.upstream_cost.saturating_sub(part.upstream_cost),
            upstream_calls: self.upstream_calls.saturating_sub(part.upstream_calls),
            cost_of_upstream_calls: self
                .cost_of_upstream_calls
                .saturating_sub(part.cost_of_upstream_calls),
        }
    }

    /// The totals PostgreSQL summed (`None` when a sum is not a count or amount that fits).
    fn from_sums(s: &GroupSums) -> Option<Totals> {
        Some(Totals {
            calls: u64::try_from(s.calls).ok()?,
            prompt_tokens: s.prompt_tokens.parse().ok()?,
            completion_tokens: s.completion_tokens.parse().ok()?,
            cost: Usd::parse(&s.cost_usd).ok()?,
            upstream_cost: Usd::parse(&s.upstream_cost_usd).ok()?,
            upstream_calls: u64::try_from(s.upstream_calls).ok()?,
            cost_of_upstream_calls: Usd::parse(&s.cost_of_upstream_calls).ok()?,
        })
    }

    /// The upstream's cost, `None` when no call reported one (`n/a`, not `0`).
    fn upstream(&self) -> Option<Usd> {
        (self.upstream_calls > 0).then_some(self.upstream_cost)
    }
}

#[derive(Default)]
struct Report {
    total: Totals,
    /// Dimension → value → sums: the default dimensions and every `--by` one.
    by: BTreeMap<String, BTreeMap<String, Totals>>,
    /// The `--by` dimensions, in order (empty: the default report).
    chosen: Vec<String>,
    conditions: Vec<Condition>,
    window: Window,
    /// Cost per day of the whole report (the month-end projection).
    days: BTreeMap<String, Usd>,
    /// `--by` dimension → value → cost per day (the projection per group).
    group_days: BTreeMap<String, BTreeMap<String, BTreeMap<String, Usd>>>,
    lines: u64,
    /// Well-formed lines left out by `--where`, `--since` or `--until`.
    filtered_out: u64,
    malformed: u64,
    malformed_lines: Vec<(String, u64)>,
    last_day: Option<String>,
    /// Group by every attribute seen as well (the HTML report), not only the `--by` ones.
    discover_attributes: bool,
    /// Attribute → value → sums, for attributes not among [`Report::dimensions`], of the records
    /// that have the attribute; [`Report::finish`] adds their `none` group and moves them to
    /// `discovered`.
    seen_attributes: BTreeMap<String, BTreeMap<String, Totals>>,
    /// Attribute → value → sums for the attributes seen that are not in `by` (HTML only: the
    /// table, JSON and CSV show the dimensions asked for).
    discovered: BTreeMap<String, BTreeMap<String, Totals>>,
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
            let upstream = match r.upstream_cost_usd.as_deref() {
                None => None,
                Some(text) => Some(Usd::parse(text).ok()?),
            };
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
        if !grouping::matches(&record, &self.conditions) || !self.window.contains(&record) {
            self.filtered_out += 1;
            return;
        }
        self.total = total;
        let day = record.day().to_owned();
        if self.last_day.as_deref().is_none_or(|d| day.as_str() > d) && day != "unknown" {
            self.last_day = Some(day.clone());
        }
        add_cost(self.days.entry(day.clone()).or_default(), cost);
        for dimension in self.dimensions() {
            let key = record.value(&dimension);
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
        if self.discover_attributes {
            let dimensions = self.dimensions();
            for name in record.attributes.keys() {
                let value = record.value(name);
                if value == grouping::NONE
                    || dimensions.contains(name)
                    || grouping::parse_dimension(name).as_deref() != Ok(name.as_str())
                {
                    continue;
                }
                let group = self
                    .seen_attributes
                    .entry(name.clone())
                    .or_default()
                    .entry(value)
                    .or_default();
                if let Some(sum) = group.plus(&record, cost, upstream) {
                    *group = sum;
                }
            }
        }
        for dimension in &self.chosen {
            let days = self
                .group_days
                .entry(dimension.clone())
                .or_default()
                .entry(record.value(dimension))
                .or_default();
            add_cost(days.entry(day.clone()).or_default(), cost);
        }
    }

    /// Moves the attributes seen into `by`, each with its `none` group (the records without it).
    fn finish(&mut self) {
        for (name, mut groups) in std::mem::take(&mut self.seen_attributes) {
            let mut with = Totals::default();
            for t in groups.values() {
                with = Totals {
                    calls: with.calls.saturating_add(t.calls),
                    prompt_tokens: with.prompt_tokens.saturating_add(t.prompt_tokens),
                    completion_tokens: with.completion_tokens.saturating_add(t.completion_tokens),
                    cost: with.cost.saturating_add(t.cost),
                    upstream_cost: with.upstream_cost.saturating_add(t.upstream_cost),
                    upstream_calls: with.upstream_calls.saturating_add(t.upstream_calls),
                    cost_of_upstream_calls: with
                        .cost_of_upstream_calls
                        .saturating_add(t.cost_of_upstream_calls),
                };
            }
            let none = self.total.minus(&with);
            if none.calls > 0 {
                groups.insert(grouping::NONE.to_owned(), none);
            }
            self.discovered.insert(name, groups);
        }
    }

    /// A report of the sums PostgreSQL computed (`report --postgres`).
    fn fill_from(&mut self, sums: &Sums) -> Result<(), String> {
        let bad =
            || "the ledger's sums do not fit a report (a count or amount too large)".to_owned();
        let count = |n: i64| u64::try_from(n).map_err(|_| bad());
        self.lines = count(sums.rows)?;
        self.malformed = count(sums.malformed)?;
        self.malformed_lines = sums
            .malformed_ids
            .iter()
            .map(|id| Ok(("llm_cost_records id".to_owned(), count(*id)?)))
            .collect::<Result<_, String>>()?;
        if let Some(total) = &sums.total {
            self.total = Totals::from_sums(total).ok_or_else(bad)?;
        }
        self.filtered_out = self
            .lines
            .saturating_sub(self.malformed)
            .saturating_sub(self.total.calls);
        for (day, cost) in &sums.days {
            self.days
                .insert(day.clone(), Usd::parse(cost).map_err(|_| bad())?);
        }
        self.last_day = self.days.keys().rev().find(|d| *d != "unknown").cloned();
        let asked = self.dimensions();
        for (dimension, groups) in &sums.by {
            let map = if asked.contains(dimension) {
                self.by.entry(dimension.clone()).or_default()
            } else {
                self.discovered.entry(dimension.clone()).or_default()
            };
            for (value, s) in groups {
                map.insert(value.clone(), Totals::from_sums(s).ok_or_else(bad)?);
            }
        }
        for (dimension, rows) in &sums.group_days {
            let map = self.group_days.entry(dimension.clone()).or_default();
            for (value, day, cost) in rows {
                map.entry(value.clone())
                    .or_default()
                    .insert(day.clone(), Usd::parse(cost).map_err(|_| bad())?);
            }
        }
        Ok(())
    }

    /// `--where`, `--since` and `--until` as the table's `where` line shows them.
    fn selection(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .conditions
            .iter()
            .map(|c| format!("{}={}", c.dimension, c.value))
            .collect();
        if let Some(since) = self.window.since {
            out.push(format!("since {}", rfc3339_millis(since)));
        }
        if let Some(until) = self.window.until {
            out.push(format!("until {} (exclusive)", rfc3339_millis(until)));
        }
        out
    }

    /// The dimensions summed: the default ones, then each `--by` one not among them.
    fn dimensions(&self) -> Vec<String> {
        let mut out: Vec<String> = grouping::DEFAULT.iter().map(|d| (*d).to_owned()).collect();
        for d in &self.chosen {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The `--by` dimensions, each once (those with per-day sums and projections).
    fn shown_chosen(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for d in &self.chosen {
            if !out.contains(d) {
                out.push(d.clone());
            }
        }
        out
    }

    /// The dimensions shown in the table and CSV: the `--by` ones, else the default ones.
    fn shown(&self) -> Vec<String> {
        if self.chosen.is_empty() {
            grouping::DEFAULT.iter().map(|d| (*d).to_owned()).collect()
        } else {
            self.shown_chosen()
        }
    }

    /// The `n` values of `dimension` that cost most, with each one's month-end projection.
    fn top_of(&self, dimension: &str, n: usize) -> Vec<(&String, &Totals, Option<Usd>)> {
        let mut values: Vec<_> = self
            .by
            .get(dimension)
            .map(|m| m.iter().collect())
            .unwrap_or_default();
        values.sort_by(|a: &(&String, &Totals), b| b.1.cost.cmp(&a.1.cost).then(a.0.cmp(b.0)));
        values.truncate(n);
        values
            .into_iter()
            .map(|(v, t)| (v, t, self.projected(dimension, v)))
            .collect()
    }

    /// The month-end projection of one `--by` group.
    fn projected(&self, dimension: &str, value: &str) -> Option<Usd> {
        let days = self.group_days.get(dimension)?.get(value)?;
        self.projection_of(days).map(|(_, _, projected)| projected)
    }

    /// Month-to-date cost of the latest month, plus its average daily cost × the days left.
    fn projection(&self) -> Option<(String, Usd, Usd)> {
        self.projection_of(&self.days)
    }

    /// [`Report::projection`] of one group's cost per day (the latest month of the whole report).
    fn projection_of(&self, days: &BTreeMap<String, Usd>) -> Option<(String, Usd, Usd)> {
        let last = self.last_day.as_deref()?;
        let month = &last[..7];
        let (mut to_date, mut seen_days) = (Usd::ZERO, 0u64);
        for (day, cost) in days.range(format!("{month}-01")..=last.to_owned()) {
            if day.starts_with(month) {
                to_date = to_date.checked_add(*cost).ok()?;
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

/// Adds `cost` to `sum` (a part of the total, which fits; unchanged on overflow all the same).
fn add_cost(sum: &mut Usd, cost: Usd) {
    *sum = sum.checked_add(cost).unwrap_or(*sum);
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
    let mut report = Report {
        chosen: args.by.clone(),
        conditions: args.conditions.clone(),
        window: Window {
            since: args.since,
            until: args.until,
        },
        discover_attributes: args.html.is_some(),
        ..Report::default()
    };
    if let Some(url) = &args.postgres {
        let ledger = Ledger::open(url)?;
        let sums = ledger.report(&Selection {
            conditions: &report.conditions,
            window: report.window,
            dimensions: report.dimensions(),
            per_day: report.shown_chosen(),
            discover_attributes: report.discover_attributes,
        })?;
        report.fill_from(&sums)?;
    } else {
        let files = if args.files.is_empty() {
            vec!["-".to_owned()]
        } else {
            args.files.clone()
        };
        each_line(&files, |name, n, line| report.line(name, n, line))?;
        report.finish();
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html::page(&report, args.top))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
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
    report
        .top_of("key_id", n)
        .into_iter()
        .map(|(k, t, _)| (k, t))
        .collect()
}

fn table(report: &Report, top: usize) -> String {
    let mut out = String::new();
    let t = &report.total;
    let upstream = match t.upstream() {
        None => "n/a".to_owned(),
        Some(usd) if t.upstream_calls == t.calls => format!("{usd} USD"),
        Some(usd) => format!("{usd} USD for {} of {} calls", t.upstream_calls, t.calls),
    };
    let _ = writeln!(
        out,
        "{} calls, {} prompt + {} completion tokens, cost {} USD (upstream reported {upstream})",
        t.calls, t.prompt_tokens, t.completion_tokens, t.cost
    );
    let selection = report.selection();
    if !selection.is_empty() {
        let _ = writeln!(
            out,
            "where {} ({} other record(s) left out)",
            selection.join(" "),
            report.filtered_out
        );
    }
    if let Some((month, to_date, projected)) = report.projection() {
        let _ = writeln!(
            out,
            "{month}: {to_date} USD so far, projected {projected} USD by month end"
        );
    }
    let chosen = !report.chosen.is_empty();
    let row = |out: &mut String, key: &str, t: &Totals, projected: Option<Option<Usd>>| {
        let _ = write!(
            out,
            "  {key:<48} {:>8} {:>12} {:>12} {:>20}",
            t.calls, t.prompt_tokens, t.completion_tokens, t.cost
        );
        let _ = match projected {
            Some(Some(p)) => writeln!(out, " {p:>20}"),
            Some(None) => writeln!(out, " {:>20}", "-"),
            None => writeln!(out),
        };
    };
    for dimension in report.shown() {
        let _ = writeln!(out, "\nby {dimension}:");
        let _ = write!(
            out,
            "  {:<48} {:>8} {:>12} {:>12} {:>20}",
            dimension, "calls", "prompt", "completion", "cost_usd"
        );
        let _ = writeln!(
            out,
            "{}",
            if chosen {
                format!(" {:>20}", "month_end_usd")
            } else {
                String::new()
            }
        );
        for (key, totals) in report.by.get(&dimension).into_iter().flatten() {
            let projected = chosen.then(|| report.projected(&dimension, key));
            row(&mut out, key, totals, projected);
        }
        if chosen {
            let _ = writeln!(out, "\ntop {top} {dimension} by cost:");
            for (key, totals, projected) in report.top_of(&dimension, top) {
                row(&mut out, key, totals, Some(projected));
            }
        }
    }
    if !chosen {
        let _ = writeln!(out, "\ntop {top} keys by cost:");
        for (key, totals) in top_keys(report, top) {
            row(&mut out, key, totals, None);
        }
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
        "upstream_cost_usd": t.upstream().map(|u| u.to_decimal_string()),
        "upstream_reported_calls": t.upstream_calls,
    })
}

fn json_report(report: &Report, top: usize) -> String {
    let mut by = serde_json::Map::new();
    for (dimension, groups) in &report.by {
        let chosen = report.chosen.contains(dimension);
        let groups: serde_json::Map<_, _> = groups
            .iter()
            .map(|(k, t)| {
                let mut totals = totals_json(t);
                if chosen {
                    totals["projected_usd"] = report
                        .projected(dimension, k)
                        .map(|p| p.to_decimal_string())
                        .into();
                }
                (k.clone(), totals)
            })
            .collect();
        by.insert(dimension.clone(), groups.into());
    }
    let top_keys: Vec<_> = top_keys(report, top)
        .into_iter()
        .map(
            |(k, t)| json!({"key_id": k, "cost_usd": t.cost.to_decimal_string(), "calls": t.calls}),
        )
        .collect();
    let mut top_by = serde_json::Map::new();
    for dimension in &report.chosen {
        let list: Vec<_> = report
            .top_of(dimension, top)
            .into_iter()
            .map(|(v, t, projected)| {
                json!({
                    "value": v,
                    "cost_usd": t.cost.to_decimal_string(),
                    "calls": t.calls,
                    "projected_usd": projected.map(|p| p.to_decimal_string()),
                })
            })
            .collect();
        top_by.insert(dimension.clone(), list.into());
    }
    let projection = report.projection().map(|(month, to_date, projected)| {
        json!({"month": month, "to_date_usd": to_date.to_decimal_string(), "projected_usd": projected.to_decimal_string()})
    });
    let conditions: Vec<String> = report
        .conditions
        .iter()
        .map(|c| format!("{}={}", c.dimension, c.value))
        .collect();
    let bound = |b: Option<u64>| b.map(rfc3339_millis);
    let doc = json!({
        "total": totals_json(&report.total),
        "by": by,
        "top_keys": top_keys,
        "top": top_by,
        "projection": projection,
        "where": conditions,
        "since": bound(report.window.since),
        "until": bound(report.window.until),
        "filtered_out": report.filtered_out,
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
    let chosen = !report.chosen.is_empty();
    let mut out = String::from(
        "dimension,key,calls,prompt_tokens,completion_tokens,cost_usd,upstream_cost_usd",
    );
    out.push_str(if chosen { ",month_end_usd\n" } else { "\n" });
    let mut line = |dimension: &str, key: &str, t: &Totals, projected: Option<Option<Usd>>| {
        let key = if key.contains([',', '"']) {
            format!("\"{}\"", key.replace('"', "\"\""))
        } else {
            key.to_owned()
        };
        // n/a (no call reported an upstream cost) is an empty field, not 0.
        let upstream = t.upstream().map(|u| u.to_decimal_string());
        let _ = write!(
            out,
            "{dimension},{key},{},{},{},{},{}",
            t.calls,
            t.prompt_tokens,
            t.completion_tokens,
            t.cost,
            upstream.unwrap_or_default()
        );
        let _ = match projected {
            Some(p) => writeln!(
                out,
                ",{}",
                p.map(|p| p.to_decimal_string()).unwrap_or_default()
            ),
            None => writeln!(out),
        };
    };
    let total_projection = chosen.then(|| report.projection().map(|(_, _, p)| p));
    line("total", "all", &report.total, total_projection);
    for dimension in report.shown() {
        for (key, totals) in report.by.get(&dimension).into_iter().flatten() {
            let projected = chosen.then(|| report.projected(&dimension, key));
            line(&dimension, key, totals, projected);
        }
    }
    out
}

/// Calls `f` with each NDJSON line of each file in `names` (`-` is stdin): the file's name, the
/// line's number from 1, and the line (invalid UTF-8 replaced, so the caller counts it malformed).
pub(crate) fn each_line(
    names: &[String],
    mut f: impl FnMut(&str, u64, &str),
) -> Result<(), String> {
    for name in names {
        let input: Box<dyn Read> = if name == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(name).map_err(|e| format!("cannot read {name}: {e}"))?)
        };
        for (i, line) in BufReader::new(input).split(b'\n').enumerate() {
            let line = line.map_err(|e| format!("cannot read {name}: {e}"))?;
            f(name, i as u64 + 1, &String::from_utf8_lossy(&line));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(calls: i64, prompt: &str, cost: &str, upstream: Option<&str>) -> GroupSums {
        GroupSums {
            calls,
            prompt_tokens: prompt.to_owned(),
            completion_tokens: "0".to_owned(),
            cost_usd: cost.to_owned(),
            upstream_cost_usd: upstream.unwrap_or("0").to_owned(),
            upstream_calls: i64::from(upstream.is_some()),
            cost_of_upstream_calls: if upstream.is_some() { cost } else { "0" }.to_owned(),
        }
    }

    #[test]
    fn ledger_sums_make_the_report_the_same_lines_make() {
        let lines = [
            r#"{"ts":"2026-11-02T10:00:00.000Z","model":"a","prompt_tokens":3,"cost_usd":"0.10","upstream_cost_usd":"0.2"}"#,
            r#"{"ts":"2026-11-04T10:00:00.000Z","model":"b","prompt_tokens":4,"cost_usd":"0.000000000000000000000000000001"}"#,
            r#"{"ts":"2026-11-04T11:00:00.000Z","model":"b","cost_usd":"1e5"}"#,
        ];
        let mut from_lines = Report {
            chosen: vec!["model".to_owned()],
            ..Report::default()
        };
        for (i, line) in lines.iter().enumerate() {
            from_lines.line("f", i as u64 + 1, line);
        }
        let mut from_sums = Report {
            chosen: vec!["model".to_owned()],
            ..Report::default()
        };
        let b = "0.000000000000000000000000000001";
        let mut by = vec![(
            "model".to_owned(),
            vec![
                ("a".to_owned(), sums(1, "3", "0.10", Some("0.2"))),
                ("b".to_owned(), sums(1, "4", b, None)),
            ],
        )];
        let days = |a: &str, b: &str| {
            vec![
                ("2026-11-02".to_owned(), a.to_owned()),
                ("2026-11-04".to_owned(), b.to_owned()),
            ]
        };
        by.push((
            "day".to_owned(),
            days("0.10", b)
                .into_iter()
                .map(|(d, c)| {
                    let (p, u) = if d.ends_with('2') {
                        ("3", Some("0.2"))
                    } else {
                        ("4", None)
                    };
                    (d, sums(1, p, &c, u))
                })
                .collect(),
        ));
        for (dimension, value) in [
            ("key_id", "none"),
            ("provider", "unknown"),
            ("status", "unknown"),
        ] {
            by.push((
                dimension.to_owned(),
                vec![(value.to_owned(), {
                    let mut s = sums(2, "7", "0.100000000000000000000000000001", Some("0.2"));
                    s.cost_of_upstream_calls = "0.10".to_owned();
                    s
                })],
            ));
        }
        let mut total = sums(2, "7", "0.100000000000000000000000000001", Some("0.2"));
        total.cost_of_upstream_calls = "0.10".to_owned();
        from_sums
            .fill_from(&Sums {
                rows: 3,
                malformed: 1,
                malformed_ids: vec![3],
                total: Some(total),
                by,
                days: days("0.10", b),
                group_days: vec![(
                    "model".to_owned(),
                    vec![
                        ("a".to_owned(), "2026-11-02".to_owned(), "0.10".to_owned()),
                        ("b".to_owned(), "2026-11-04".to_owned(), b.to_owned()),
                    ],
                )],
                attributes: vec![],
            })
            .unwrap();
        let mut expected: serde_json::Value =
            serde_json::from_str(&json_report(&from_lines, 10)).unwrap();
        let got: serde_json::Value = serde_json::from_str(&json_report(&from_sums, 10)).unwrap();
        assert_eq!(expected["malformed_at"], json!(["f:3"]));
        assert_eq!(got["malformed_at"], json!(["llm_cost_records id:3"]));
        expected["malformed_at"] = got["malformed_at"].clone();
        assert_eq!(got, expected);
        assert_eq!(table(&from_sums, 10), table(&from_lines, 10));
    }

    #[test]
    fn sums_that_do_not_fit_are_an_error_not_a_wrapped_number() {
        let mut r = Report::default();
        let mut s = sums(1, "18446744073709551616", "1", None);
        assert!(r
            .fill_from(&Sums {
                total: Some(s.clone()),
                ..Sums::default()
            })
            .is_err());
        s.prompt_tokens = "1".to_owned();
        s.cost_usd = "-1".to_owned();
        assert!(r
            .fill_from(&Sums {
                total: Some(s),
                ..Sums::default()
            })
            .is_err());
    }
}
