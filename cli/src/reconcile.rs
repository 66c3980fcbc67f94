//! `llm-cost reconcile`: what we metered (cost records) against what the providers billed
//! (`llm-cost billing fetch` rows), per group of day, provider, model and optionally key.
//!
//! Each group gets both sums, the difference (billed − metered) and its percent of the bill, and
//! a status: `match` (equal to the last digit), `within` / `outside` the `--tolerance`,
//! `unmetered` (billed, never metered: traffic that bypassed the gateway) or `unbilled` (metered,
//! not on the bill). Within a group, billed spend of a key we never saw is listed by key when
//! the provider's key identifier is our `key_id`'s hash (OpenRouter). Model names are compared by
//! the price-table entry they resolve to (the core's `model_names`), so `gpt-4o-2024-08-06` on
//! the bill and `openai/gpt-4o` in a record are one model. Money is exact (`Usd`); the percent
//! is rounded to 4 decimals, the tolerance test is exact. Exit status 1 when any group is
//! outside the tolerance.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;
use llm_cost_core::{model_names, PriceTable, Provider, Usd};
use serde::Deserialize;
use serde_json::json;

use crate::billing::row::{parse_day, BillingRow};

/// Arguments of `llm-cost reconcile`.
#[derive(Args)]
pub struct ReconcileArgs {
    /// NDJSON rows written by `llm-cost billing fetch` (repeat for several providers).
    #[arg(long = "billing", value_name = "FILE", required = true)]
    billing: Vec<PathBuf>,
    /// Group by these, comma-separated: day, provider, model, key.
    #[arg(long, value_delimiter = ',', default_value = "day,provider,model", value_parser = parse_dimension)]
    by: Vec<Dimension>,
    /// Largest difference, in percent of the bill, a group may show and still pass (e.g. 0.5).
    #[arg(long, default_value = "0", value_parser = parse_tolerance)]
    tolerance: Tolerance,
    /// First UTC day compared (default: the first day of the billing rows).
    #[arg(long, value_parser = parse_day)]
    since: Option<String>,
    /// Last UTC day compared (default: the last day of the billing rows).
    #[arg(long, value_parser = parse_day)]
    until: Option<String>,
    /// JSON output.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// CSV output.
    #[arg(long)]
    csv: bool,
    /// NDJSON cost records (`llm-cost collect` files); `-` for standard input.
    #[arg(value_name = "RECORDS", required = true)]
    records: Vec<String>,
}

/// What a group is keyed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// UTC day.
    Day,
    /// `openrouter`, `openai`, `anthropic`.
    Provider,
    /// The price-table entry the model resolves to (else the name as given).
    Model,
    /// Our `key_id`, where the provider reports keys by its hash (OpenRouter); `-` for
    /// providers whose key ids are their own (OpenAI `key_…`, Anthropic `apikey_…`).
    Key,
}

impl Dimension {
    fn name(self) -> &'static str {
        match self {
            Dimension::Day => "day",
            Dimension::Provider => "provider",
            Dimension::Model => "model",
            Dimension::Key => "key",
        }
    }
}

fn parse_dimension(text: &str) -> Result<Dimension, String> {
    match text.trim() {
        "day" => Ok(Dimension::Day),
        "provider" => Ok(Dimension::Provider),
        "model" => Ok(Dimension::Model),
        "key" | "key_id" => Ok(Dimension::Key),
        other => Err(format!("{other:?}: group by day, provider, model or key")),
    }
}

/// `--tolerance`: a percent with at most 4 decimals, held as percent × 10⁴.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tolerance(u128);

fn parse_tolerance(text: &str) -> Result<Tolerance, String> {
    let bad = || format!("{text:?}: a percent from 0 to 100 with at most 4 decimals (e.g. 0.5)");
    let value = Usd::parse(text.trim().trim_end_matches('%')).map_err(|_| bad())?;
    let e4 = Usd::parse("0.0001").map_err(|_| bad())?.units();
    if value.units() % e4 != 0 || value.units() / e4 > 1_000_000 {
        return Err(bad());
    }
    Ok(Tolerance(value.units() / e4))
}

impl std::fmt::Display for Tolerance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", percent_text(self.0))
    }
}

/// The record fields reconcile reads.
#[derive(Deserialize)]
struct Record {
    #[serde(default)]
    ts: Option<String>,
    #[serde(default)]
    provider: Option<String>,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    model_requested: Option<String>,
    #[serde(default)]
    priced_as: Option<String>,
    #[serde(default)]
    key_id: Option<String>,
    #[serde(default)]
    cost_usd: Option<String>,
}

/// The two sides of one group.
#[derive(Default)]
struct Group {
    metered_calls: u64,
    metered: Usd,
    billed_requests: Option<u64>,
    billed: Usd,
    /// Billing rows in the group (a group with none is `unbilled` when it cost something).
    billed_rows: u64,
    /// `key_id`s of the metered calls.
    metered_keys: BTreeSet<String>,
    /// Billed spend per joinable `key_id`.
    billed_keys: BTreeMap<String, Usd>,
    /// Billed spend no key is known for (the provider did not say, or it cannot be joined).
    billed_unkeyed: Usd,
}

/// How a group compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Equal to the last digit.
    Match,
    /// Different, within the tolerance.
    Within,
    /// Different beyond the tolerance.
    Outside,
    /// Billed, never metered.
    Unmetered,
    /// Metered, not on the bill.
    Unbilled,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::Match => "match",
            Status::Within => "within",
            Status::Outside => "outside",
            Status::Unmetered => "unmetered",
            Status::Unbilled => "unbilled",
        }
    }

    /// Does this status fail the run?
    pub fn fails(self) -> bool {
        matches!(self, Status::Outside | Status::Unmetered | Status::Unbilled)
    }
}

/// One compared group, ready to print.
struct Line<'a> {
    key: &'a [String],
    group: &'a Group,
    /// billed − metered: (negative?, magnitude).
    difference: (bool, Usd),
    /// |difference| in percent of the bill (of the metered sum when nothing was billed) × 10⁴.
    percent_e4: Option<u128>,
    status: Status,
    /// Joinable keys billed in this group that no metered call carried, with their spend.
    unmetered_keys: Vec<(&'a String, Usd)>,
    /// Calls we metered that the bill does not count: beyond its request count, or all of
    /// them when the group has no billing row; `None` when the provider counts no requests.
    unbilled_calls: Option<u64>,
}

/// The whole comparison.
#[derive(Default)]
struct Reconciliation {
    by: Vec<Dimension>,
    groups: BTreeMap<Vec<String>, Group>,
    providers: BTreeSet<String>,
    /// Providers whose key identifiers are our `key_id`s (some row has one): only their
    /// groups are split by key; the others' `key` is `-` on both sides.
    keyed: BTreeSet<String>,
    since: String,
    until: String,
    billing_rows: u64,
    record_lines: u64,
    malformed: Vec<String>,
    malformed_count: u64,
    /// Records of other providers or days (not on these bills).
    out_of_scope: u64,
}

const MALFORMED_LISTED: usize = 20;

/// The `key` of a group whose provider's key ids cannot be joined to our `key_id`s.
const NOT_JOINABLE: &str = "-";

/// Runs `llm-cost reconcile`; `Ok(true)` when every group is within the tolerance.
pub fn run(args: &ReconcileArgs) -> Result<bool, String> {
    let table = PriceTable::bundled();
    let mut rows = Vec::new();
    for path in &args.billing {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let row: BillingRow = serde_json::from_str(line)
                .map_err(|e| format!("{}:{}: not a billing row: {e}", path.display(), i + 1))?;
            crate::billing::row::day_start(&row.day).ok_or_else(|| {
                format!(
                    "{}:{}: day {:?} is not YYYY-MM-DD",
                    path.display(),
                    i + 1,
                    row.day
                )
            })?;
            rows.push(row);
        }
    }
    let mut rec = Reconciliation {
        by: dedup(&args.by),
        ..Reconciliation::default()
    };
    rec.providers = rows.iter().map(|r| r.provider.clone()).collect();
    rec.keyed = rows
        .iter()
        .filter(|r| r.key_id.is_some())
        .map(|r| r.provider.clone())
        .collect();
    rec.since = args
        .since
        .clone()
        .or_else(|| rows.iter().map(|r| r.day.clone()).min())
        .unwrap_or_default();
    rec.until = args
        .until
        .clone()
        .or_else(|| rows.iter().map(|r| r.day.clone()).max())
        .unwrap_or_default();
    for row in &rows {
        if row.day < rec.since || row.day > rec.until {
            continue;
        }
        rec.bill(&table, row)?;
    }
    crate::report::each_line(&args.records, |name, n, line| {
        rec.meter(&table, name, n, line)
    })?;
    let lines = rec.lines(args.tolerance);
    let ok = lines.iter().all(|l| !l.status.fails());
    let out = if args.json {
        json_report(&rec, &lines, args.tolerance, ok)
    } else if args.csv {
        csv_report(&rec, &lines)
    } else {
        table_report(&rec, &lines, args.tolerance, ok)
    };
    print!("{out}");
    if rec.malformed_count > 0 {
        eprintln!(
            "llm-cost: {} malformed record line(s) skipped (first: {})",
            rec.malformed_count,
            rec.malformed.join(", ")
        );
    }
    Ok(ok)
}

fn dedup(by: &[Dimension]) -> Vec<Dimension> {
    let mut out = Vec::new();
    for d in by {
        if !out.contains(d) {
            out.push(*d);
        }
    }
    out
}

/// The price-table entry `model` resolves to for `provider`, else `model` itself.
fn canonical_model(table: &PriceTable, provider: &str, model: &str) -> String {
    let provider = Provider::from_name(provider).unwrap_or(Provider::Unknown);
    model_names::resolve(table, model, provider).map_or_else(|| model.to_owned(), |p| p.id)
}

impl Reconciliation {
    fn key_of(&self, day: &str, provider: &str, model: &str, key: &str) -> Vec<String> {
        self.by
            .iter()
            .map(|d| match d {
                Dimension::Day => day.to_owned(),
                Dimension::Provider => provider.to_owned(),
                Dimension::Model => model.to_owned(),
                Dimension::Key if self.keyed.contains(provider) => key.to_owned(),
                Dimension::Key => NOT_JOINABLE.to_owned(),
            })
            .collect()
    }

    fn bill(&mut self, table: &PriceTable, row: &BillingRow) -> Result<(), String> {
        self.billing_rows += 1;
        let model = match (&row.model, &row.line_item) {
            (Some(m), _) => canonical_model(table, &row.provider, m),
            (None, Some(item)) => item.clone(),
            (None, None) => "none".to_owned(),
        };
        let key = row
            .key_id
            .clone()
            .or(row.api_key.clone())
            .unwrap_or_else(|| "none".to_owned());
        let cost = match row.cost_usd.as_deref() {
            Some(c) => Usd::parse(c).map_err(|e| format!("billing row cost {c:?}: {e}"))?,
            None => Usd::ZERO,
        };
        let group_key = self.key_of(&row.day, &row.provider, &model, &key);
        let group = self.groups.entry(group_key).or_default();
        group.billed_rows += 1;
        group.billed = group
            .billed
            .checked_add(cost)
            .map_err(|_| "billed sum does not fit".to_owned())?;
        if let Some(n) = row.requests {
            group.billed_requests = Some(group.billed_requests.unwrap_or(0).saturating_add(n));
        }
        match &row.key_id {
            Some(id) => {
                let spent = group.billed_keys.entry(id.clone()).or_default();
                *spent = spent.saturating_add(cost);
            }
            None => group.billed_unkeyed = group.billed_unkeyed.saturating_add(cost),
        }
        Ok(())
    }

    fn meter(&mut self, table: &PriceTable, source: &str, number: u64, line: &str) {
        if line.trim().is_empty() {
            return;
        }
        self.record_lines += 1;
        let parsed = serde_json::from_str::<Record>(line).ok().and_then(|r| {
            let cost = match r.cost_usd.as_deref() {
                Some(c) => Usd::parse(c).ok()?,
                None => Usd::ZERO,
            };
            Some((r, cost))
        });
        let Some((record, cost)) = parsed else {
            self.malformed_count += 1;
            if self.malformed.len() < MALFORMED_LISTED {
                self.malformed.push(format!("{source}:{number}"));
            }
            return;
        };
        let day = record
            .ts
            .as_deref()
            .and_then(|t| t.get(..10))
            .unwrap_or("unknown")
            .to_owned();
        let provider = record
            .provider
            .clone()
            .unwrap_or_else(|| "unknown".to_owned());
        if !self.providers.contains(&provider) || day < self.since || day > self.until {
            self.out_of_scope += 1;
            return;
        }
        // The same resolution as the bill's model names (priced_as only when the name is gone).
        let model = match (&record.model, &record.model_requested, &record.priced_as) {
            (Some(m), _, _) | (None, Some(m), _) => canonical_model(table, &provider, m),
            (None, None, Some(p)) => p.clone(),
            (None, None, None) => "unknown".to_owned(),
        };
        let key = record.key_id.clone().unwrap_or_else(|| "none".to_owned());
        let group_key = self.key_of(&day, &provider, &model, &key);
        let group = self.groups.entry(group_key).or_default();
        let (Ok(metered), Some(calls)) = (
            group.metered.checked_add(cost),
            group.metered_calls.checked_add(1),
        ) else {
            self.malformed_count += 1;
            return;
        };
        group.metered = metered;
        group.metered_calls = calls;
        if let Some(id) = record.key_id {
            group.metered_keys.insert(id);
        }
    }

    fn lines(&self, tolerance: Tolerance) -> Vec<Line<'_>> {
        self.groups
            .iter()
            .map(|(key, group)| {
                let difference = if group.billed >= group.metered {
                    (false, group.billed.saturating_sub(group.metered))
                } else {
                    (true, group.metered.saturating_sub(group.billed))
                };
                let base = if group.billed > Usd::ZERO {
                    group.billed
                } else {
                    group.metered
                };
                let percent_e4 = ratio_e4(difference.1, base);
                let status = if difference.1 == Usd::ZERO {
                    Status::Match
                } else if group.metered_calls == 0 {
                    Status::Unmetered
                } else if group.billed_rows == 0 {
                    Status::Unbilled
                } else if within(difference.1, base, tolerance) {
                    Status::Within
                } else {
                    Status::Outside
                };
                let unmetered_keys = group
                    .billed_keys
                    .iter()
                    .filter(|(id, spent)| **spent > Usd::ZERO && !group.metered_keys.contains(*id))
                    .map(|(id, spent)| (id, *spent))
                    .collect();
                let unbilled_calls = match group.billed_requests {
                    Some(n) => Some(group.metered_calls.saturating_sub(n)),
                    None if group.billed_rows == 0 => Some(group.metered_calls),
                    None => None,
                };
                Line {
                    key,
                    group,
                    difference,
                    percent_e4,
                    status,
                    unmetered_keys,
                    unbilled_calls,
                }
            })
            .collect()
    }
}

/// `a` and `b` divided by the same power of ten until `a × m` and `b × n` fit in a `u128`
/// (only digits far below a micro-dollar are dropped).
fn common_scale(a: u128, m: u128, b: u128, n: u128) -> (u128, u128) {
    let (mut a, mut b) = (a, b);
    while a.checked_mul(m).is_none() || b.checked_mul(n).is_none() {
        a /= 10;
        b /= 10;
    }
    (a, b)
}

/// `part / whole` in percent × 10⁴, rounded half up; `None` when `whole` is zero.
fn ratio_e4(part: Usd, whole: Usd) -> Option<u128> {
    if whole == Usd::ZERO {
        return None;
    }
    let (p, w) = common_scale(part.units(), 1_000_000, whole.units(), 1);
    if w == 0 {
        return None;
    }
    let scaled = p * 1_000_000;
    Some(scaled / w + u128::from(scaled % w * 2 >= w))
}

/// `difference ≤ tolerance% × base`, exactly (up to the dropped sub-micro-dollar digits).
fn within(difference: Usd, base: Usd, tolerance: Tolerance) -> bool {
    let (d, b) = common_scale(
        difference.units(),
        1_000_000,
        base.units(),
        tolerance.0.max(1),
    );
    d * 1_000_000 <= b * tolerance.0
}

/// percent × 10⁴ as a decimal: `12345` → `1.2345`.
fn percent_text(e4: u128) -> String {
    Usd::from_units(e4 * 10u128.pow(llm_cost_core::money::SCALE - 4)).to_decimal_string()
}

fn signed(difference: (bool, Usd)) -> String {
    match difference {
        (_, d) if d == Usd::ZERO => "0".to_owned(),
        (true, d) => format!("-{d}"),
        (false, d) => format!("+{d}"),
    }
}

fn keys_text(keys: &[(&String, Usd)]) -> String {
    keys.iter()
        .map(|(k, u)| format!("{k}={u}"))
        .collect::<Vec<_>>()
        .join(";")
}

fn table_report(
    rec: &Reconciliation,
    lines: &[Line<'_>],
    tolerance: Tolerance,
    ok: bool,
) -> String {
    let mut out = String::new();
    let providers: Vec<&str> = rec.providers.iter().map(String::as_str).collect();
    let _ = writeln!(
        out,
        "{} to {}, {}: {} billing row(s), {} record(s) ({} on other providers or days), tolerance {tolerance}%",
        rec.since,
        rec.until,
        providers.join(", "),
        rec.billing_rows,
        rec.record_lines,
        rec.out_of_scope
    );
    let widths: Vec<usize> = rec
        .by
        .iter()
        .enumerate()
        .map(|(i, d)| {
            lines
                .iter()
                .map(|l| l.key[i].len())
                .max()
                .unwrap_or(0)
                .max(d.name().len())
        })
        .collect();
    for (d, w) in rec.by.iter().zip(&widths) {
        let _ = write!(out, "{:<w$}  ", d.name());
    }
    let _ = writeln!(
        out,
        "{:>7} {:>8} {:>22} {:>22} {:>23} {:>10}  status",
        "calls", "requests", "metered_usd", "billed_usd", "difference_usd", "percent"
    );
    for l in lines {
        for (v, w) in l.key.iter().zip(&widths) {
            let _ = write!(out, "{v:<w$}  ");
        }
        let requests = l
            .group
            .billed_requests
            .map_or("-".to_owned(), |n| n.to_string());
        let percent = l.percent_e4.map_or("-".to_owned(), percent_text);
        let _ = write!(
            out,
            "{:>7} {:>8} {:>22} {:>22} {:>23} {:>10}  {}",
            l.group.metered_calls,
            requests,
            l.group.metered.to_decimal_string(),
            l.group.billed.to_decimal_string(),
            signed(l.difference),
            percent,
            l.status.name()
        );
        if !l.unmetered_keys.is_empty() {
            let _ = write!(
                out,
                "  unmetered keys: {}",
                keys_text(&l.unmetered_keys).replace(';', ", ")
            );
        }
        if let Some(n) = l.unbilled_calls.filter(|n| *n > 0) {
            let _ = write!(out, "  {n} call(s) not on the bill");
        }
        let _ = writeln!(out);
    }
    let (unmetered, unbilled, outside) = summary(lines);
    let _ = writeln!(
        out,
        "\nunmetered (billed, never metered): {unmetered} USD; unbilled (metered, not billed): {unbilled} USD; \
{outside} group(s) outside ±{tolerance}%: {}",
        if ok { "OK" } else { "FAIL" }
    );
    if rec.malformed_count > 0 {
        let _ = writeln!(
            out,
            "{} malformed record line(s) skipped",
            rec.malformed_count
        );
    }
    out
}

/// (unmetered spend, unbilled spend, failing groups).
fn summary(lines: &[Line<'_>]) -> (Usd, Usd, usize) {
    let mut unmetered = Usd::ZERO;
    let mut unbilled = Usd::ZERO;
    for l in lines {
        match l.status {
            Status::Unmetered => unmetered = unmetered.saturating_add(l.group.billed),
            Status::Unbilled => unbilled = unbilled.saturating_add(l.group.metered),
            _ => {
                for (_, spent) in &l.unmetered_keys {
                    unmetered = unmetered.saturating_add(*spent);
                }
            }
        }
    }
    (
        unmetered,
        unbilled,
        lines.iter().filter(|l| l.status.fails()).count(),
    )
}

fn json_report(rec: &Reconciliation, lines: &[Line<'_>], tolerance: Tolerance, ok: bool) -> String {
    let groups: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            let mut g = serde_json::Map::new();
            for (d, v) in rec.by.iter().zip(l.key) {
                g.insert(d.name().to_owned(), json!(v));
            }
            g.insert("metered_calls".into(), json!(l.group.metered_calls));
            g.insert("billed_requests".into(), json!(l.group.billed_requests));
            g.insert(
                "metered_usd".into(),
                json!(l.group.metered.to_decimal_string()),
            );
            g.insert(
                "billed_usd".into(),
                json!(l.group.billed.to_decimal_string()),
            );
            g.insert("difference_usd".into(), json!(signed(l.difference)));
            g.insert(
                "difference_percent".into(),
                json!(l.percent_e4.map(percent_text)),
            );
            g.insert("status".into(), json!(l.status.name()));
            g.insert("unbilled_calls".into(), json!(l.unbilled_calls));
            g.insert(
                "unmetered_keys".into(),
                json!(l
                    .unmetered_keys
                    .iter()
                    .map(|(k, u)| json!({"key_id": k, "billed_usd": u.to_decimal_string()}))
                    .collect::<Vec<_>>()),
            );
            serde_json::Value::Object(g)
        })
        .collect();
    let (unmetered, unbilled, outside) = summary(lines);
    let (mut metered, mut billed) = (Usd::ZERO, Usd::ZERO);
    for l in lines {
        metered = metered.saturating_add(l.group.metered);
        billed = billed.saturating_add(l.group.billed);
    }
    let doc = json!({
        "since": rec.since,
        "until": rec.until,
        "providers": rec.providers,
        "by": rec.by.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "tolerance_percent": tolerance.to_string(),
        "metered_usd": metered.to_decimal_string(),
        "billed_usd": billed.to_decimal_string(),
        "unmetered_usd": unmetered.to_decimal_string(),
        "unbilled_usd": unbilled.to_decimal_string(),
        "groups_outside": outside,
        "ok": ok,
        "groups": groups,
        "billing_rows": rec.billing_rows,
        "record_lines": rec.record_lines,
        "records_out_of_scope": rec.out_of_scope,
        "malformed_lines": rec.malformed_count,
        "malformed_at": rec.malformed,
    });
    format!(
        "{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn csv_report(rec: &Reconciliation, lines: &[Line<'_>]) -> String {
    let mut out = String::new();
    for d in &rec.by {
        out.push_str(d.name());
        out.push(',');
    }
    out.push_str("metered_calls,billed_requests,metered_usd,billed_usd,difference_usd,difference_percent,status,unbilled_calls,unmetered_keys\n");
    for l in lines {
        for v in l.key {
            out.push_str(&csv_field(v));
            out.push(',');
        }
        let _ = writeln!(
            out,
            "{},{},{},{},{},{},{},{},{}",
            l.group.metered_calls,
            l.group
                .billed_requests
                .map(|n| n.to_string())
                .unwrap_or_default(),
            l.group.metered,
            l.group.billed,
            signed(l.difference),
            l.percent_e4.map(percent_text).unwrap_or_default(),
            l.status.name(),
            l.unbilled_calls.map(|n| n.to_string()).unwrap_or_default(),
            csv_field(&keys_text(&l.unmetered_keys)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(t: &str) -> Usd {
        Usd::parse(t).unwrap()
    }

    fn rec(by: &[Dimension]) -> Reconciliation {
        Reconciliation {
            by: by.to_vec(),
            providers: ["openrouter".to_owned()].into(),
            keyed: ["openrouter".to_owned()].into(),
            since: "2026-12-01".into(),
            until: "2026-12-31".into(),
            ..Reconciliation::default()
        }
    }

    fn bill_row(model: &str, hash: Option<&str>, cost: &str) -> BillingRow {
        BillingRow {
            provider: "openrouter".into(),
            day: "2026-12-02".into(),
            model: Some(model.into()),
            api_key: hash.map(str::to_owned),
            key_id: hash.map(|h| h[..12].to_owned()),
            requests: Some(1),
            cost_usd: Some(cost.into()),
            source: "GET /api/v1/activity".into(),
            ..BillingRow::default()
        }
    }

    fn record(model: &str, key: &str, cost: &str) -> String {
        format!(
            r#"{{"ts":"2026-12-02T10:00:00.000Z","provider":"openrouter","model":"{model}","key_id":"{key}","cost_usd":"{cost}"}}"#
        )
    }

    const OURS: &str = "1ab5b22bf73811aad5f69447acefea8d2bc8b5e9e1ad4227e99f9790f3b180d1";
    const BYPASS: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

    #[test]
    fn the_bypassed_key_is_the_only_difference_and_named() {
        let table = PriceTable::bundled();
        let mut r = rec(&[Dimension::Day, Dimension::Provider, Dimension::Model]);
        for row in [
            bill_row("openai/gpt-4o-mini", Some(OURS), "0.000123"),
            bill_row("openai/gpt-4o-mini", Some(BYPASS), "0.5"),
            bill_row("anthropic/claude-sonnet-4.5", Some(OURS), "0.01"),
        ] {
            r.bill(&table, &row).unwrap();
        }
        r.meter(
            &table,
            "f",
            1,
            &record("openai/gpt-4o-mini", "1ab5b22bf738", "0.0001"),
        );
        r.meter(
            &table,
            "f",
            2,
            &record("openai/gpt-4o-mini", "1ab5b22bf738", "0.000023"),
        );
        r.meter(
            &table,
            "f",
            3,
            &record("anthropic/claude-sonnet-4.5", "1ab5b22bf738", "0.01"),
        );
        let lines = r.lines(Tolerance(0));
        assert_eq!(lines.len(), 2);
        let mini = lines
            .iter()
            .find(|l| l.key[2] == "openai/gpt-4o-mini")
            .unwrap();
        assert_eq!(signed(mini.difference), "+0.5");
        assert_eq!(mini.status, Status::Outside);
        assert_eq!(
            mini.unmetered_keys,
            vec![(&"001122334455".to_owned(), usd("0.5"))]
        );
        let sonnet = lines
            .iter()
            .find(|l| l.key[2] != "openai/gpt-4o-mini")
            .unwrap();
        assert_eq!(sonnet.status, Status::Match);
        assert_eq!(summary(&lines), (usd("0.5"), Usd::ZERO, 1));

        let mut by_key = rec(&[
            Dimension::Day,
            Dimension::Provider,
            Dimension::Model,
            Dimension::Key,
        ]);
        by_key
            .bill(&table, &bill_row("openai/gpt-4o-mini", Some(BYPASS), "0.5"))
            .unwrap();
        by_key
            .bill(
                &table,
                &bill_row("openai/gpt-4o-mini", Some(OURS), "0.0001"),
            )
            .unwrap();
        by_key.meter(
            &table,
            "f",
            1,
            &record("openai/gpt-4o-mini", "1ab5b22bf738", "0.0001"),
        );
        let lines = by_key.lines(Tolerance(0));
        let statuses: Vec<_> = lines
            .iter()
            .map(|l| (l.key[3].as_str(), l.status))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("001122334455", Status::Unmetered),
                ("1ab5b22bf738", Status::Match)
            ]
        );
    }

    #[test]
    fn keys_split_groups_only_where_the_provider_key_is_our_hash() {
        let table = PriceTable::bundled();
        let mut r = rec(&[Dimension::Provider, Dimension::Key]);
        r.providers.insert("openai".into());
        r.keyed.insert("openrouter".into());
        let mut openai = bill_row("gpt-4o-mini", None, "0.2");
        openai.provider = "openai".into();
        openai.api_key = Some("key_abc".into());
        r.bill(&table, &openai).unwrap();
        r.meter(
            &table,
            "f",
            1,
            &record("gpt-4o-mini", "1ab5b22bf738", "0.2").replace("openrouter", "openai"),
        );
        let lines = r.lines(Tolerance(0));
        assert_eq!(lines.len(), 1);
        assert_eq!(
            (lines[0].key[1].as_str(), lines[0].status),
            ("-", Status::Match)
        );
    }

    #[test]
    fn model_names_meet_at_their_price_table_entry() {
        let table = PriceTable::bundled();
        // OpenAI's usage API says `gpt-4o-mini-2024-07-18`; an OpenAI response (and so the
        // record) says the same, an OpenRouter one `openai/gpt-4o-mini-2024-07-18`.
        let dated = canonical_model(&table, "openai", "gpt-4o-mini-2024-07-18");
        assert_eq!(
            dated,
            canonical_model(&table, "openrouter", "openai/gpt-4o-mini-2024-07-18")
        );
        assert!(dated.starts_with("openai/gpt-4o-mini"), "{dated}");
        assert_eq!(
            canonical_model(&table, "anthropic", "claude-sonnet-4-5"),
            "anthropic/claude-sonnet-4.5"
        );
        assert_eq!(
            canonical_model(&table, "openai", "web search tool calls"),
            "web search tool calls"
        );
    }

    #[test]
    fn tolerance_is_exact_and_unbilled_spend_fails() {
        let table = PriceTable::bundled();
        let mut r = rec(&[Dimension::Day]);
        r.bill(&table, &bill_row("openai/gpt-4o-mini", Some(OURS), "100"))
            .unwrap();
        r.meter(
            &table,
            "f",
            1,
            &record("openai/gpt-4o-mini", "1ab5b22bf738", "99.5"),
        );
        assert_eq!(
            r.lines(parse_tolerance("0.5").unwrap())[0].status,
            Status::Within
        );
        assert_eq!(
            r.lines(parse_tolerance("0.4999").unwrap())[0].status,
            Status::Outside
        );
        assert_eq!(r.lines(Tolerance(0))[0].percent_e4, Some(5_000));
        assert_eq!(percent_text(5_000), "0.5");

        let mut unbilled = rec(&[Dimension::Day]);
        unbilled.meter(&table, "f", 1, &record("openai/gpt-4o-mini", "k", "0.2"));
        unbilled.meter(
            &table,
            "f",
            2,
            &record("openai/gpt-4o-mini", "k", "not money"),
        );
        unbilled.meter(
            &table,
            "f",
            3,
            r#"{"ts":"2026-12-02T00:00:00Z","provider":"gemini","cost_usd":"1"}"#,
        );
        let lines = unbilled.lines(parse_tolerance("100").unwrap());
        assert_eq!(lines[0].status, Status::Unbilled);
        assert_eq!(lines[0].unbilled_calls, Some(1));
        assert!(lines[0].status.fails());
        assert_eq!((unbilled.malformed_count, unbilled.out_of_scope), (1, 1));
    }

    #[test]
    fn large_amounts_do_not_overflow_the_percent() {
        let big = usd("123456789.123456789");
        assert_eq!(ratio_e4(big, big), Some(1_000_000));
        assert!(within(usd("1"), big, Tolerance(1)));
        assert!(!within(usd("2000000"), big, Tolerance(1)));
        for bad in ["-1", "100.1", "0.00001", "x"] {
            assert!(parse_tolerance(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_tolerance("2%").unwrap(), Tolerance(20_000));
    }
}
