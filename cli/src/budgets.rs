//! `llm-cost budgets status`: spend, limit and remaining per budget rule and value, from a
//! collector's running totals (`GET /v1/spend`) and the filter's own configuration.
//!
//! The rules are read with the core's parser (the same validation the filter applies), the spend
//! comes from the collector, one query per period the rules use. Every value with its own limit
//! is listed, and every value the collector has spend for on a rule with a default limit. A value
//! is `over` when its spend has reached its limit: the filter refuses it (`enforce`) or marks its
//! records (`shadow`). Not here: the filter's in-flight reservations (they live in Envoy).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use llm_cost_core::budget::{Mode, Rule};
use llm_cost_core::{MeterConfig, Usd};
use serde_json::{json, Value};

/// Largest spend answer read from a collector.
const MAX_ANSWER_BYTES: u64 = 64 << 20;
/// One query, connect to last byte.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `llm-cost budgets …`.
#[derive(Subcommand)]
pub enum BudgetsCommand {
    /// Spend, limit and remaining per budget rule, value and period, from a collector.
    Status(StatusArgs),
}

/// Arguments of `llm-cost budgets status`.
#[derive(Args)]
pub struct StatusArgs {
    /// The collector's base URL (`http://127.0.0.1:9000`): `GET /v1/spend` is asked there.
    #[arg(long, value_name = "URL")]
    collector: String,
    /// The filter's configuration (the `plugin_config` JSON) whose `budgets` to report.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    /// The collector's `--spend-token`; default: the environment variable `LLM_COST_SPEND_TOKEN`.
    #[arg(long, value_name = "TOKEN")]
    spend_token: Option<String>,
    /// One JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

/// Runs `llm-cost budgets …`; the error is a message for the user.
pub fn run(command: &BudgetsCommand) -> Result<(), String> {
    match command {
        BudgetsCommand::Status(args) => status(args),
    }
}

/// One line of the report.
struct Row {
    rule: usize,
    dimension: String,
    value: String,
    period: &'static str,
    mode: &'static str,
    spent: Usd,
    limit: Usd,
}

impl Row {
    fn over(&self) -> bool {
        self.spent >= self.limit
    }

    fn json(&self) -> Value {
        json!({
            "rule": self.rule,
            "dimension": self.dimension,
            "value": self.value,
            "period": self.period,
            "mode": self.mode,
            "spent_usd": self.spent.to_decimal_string(),
            "limit_usd": self.limit.to_decimal_string(),
            "remaining_usd": self.limit.saturating_sub(self.spent).to_decimal_string(),
            "status": if self.over() { "over" } else { "under" },
        })
    }
}

/// The collector's spend in one period: (dimension, value) → spend.
type Spend = BTreeMap<(String, String), Usd>;

fn status(args: &StatusArgs) -> Result<(), String> {
    let path = &args.config;
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let config = MeterConfig::from_json(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if config.budgets.is_empty() {
        return Err(format!("{}: no budget rules (`budgets`)", path.display()));
    }
    let token = args
        .spend_token
        .clone()
        .or_else(|| std::env::var("LLM_COST_SPEND_TOKEN").ok())
        .filter(|t| !t.is_empty());
    let mut by_period: BTreeMap<&'static str, Spend> = BTreeMap::new();
    for rule in &config.budgets.rules {
        let period = rule.period.as_str();
        if !by_period.contains_key(period) {
            let spend = fetch(&args.collector, period, token.as_deref())?;
            by_period.insert(period, spend);
        }
    }
    let mut rows = Vec::new();
    for (i, rule) in config.budgets.rules.iter().enumerate() {
        let spend = by_period
            .get(rule.period.as_str())
            .cloned()
            .unwrap_or_default();
        rows.extend(rows_of(i, rule, &spend));
    }
    if args.json {
        let rows: Vec<Value> = rows.iter().map(Row::json).collect();
        println!("{}", json!({"collector": args.collector, "budgets": rows}));
    } else {
        print!("{}", table(&rows));
    }
    Ok(())
}

/// The rows of one rule: its own limits, then every other value with spend under a default.
fn rows_of(index: usize, rule: &Rule, spend: &Spend) -> Vec<Row> {
    let dimension = rule.dimension.as_str();
    let mut values: Vec<String> = rule.limits.keys().cloned().collect();
    if rule.default_limit.is_some() {
        for (d, v) in spend.keys() {
            if d == dimension && !rule.limits.contains_key(v) {
                values.push(v.clone());
            }
        }
    }
    values
        .into_iter()
        .filter_map(|value| {
            let limit = rule.limit_for(&value)?;
            let spent = spend
                .get(&(dimension.to_owned(), value.clone()))
                .copied()
                .unwrap_or(Usd::ZERO);
            Some(Row {
                rule: index,
                dimension: dimension.to_owned(),
                value,
                period: rule.period.as_str(),
                mode: match rule.mode {
                    Mode::Enforce => "enforce",
                    Mode::Shadow => "shadow",
                },
                spent,
                limit,
            })
        })
        .collect()
}

/// `GET URL/v1/spend?period=P`, parsed.
fn fetch(collector: &str, period: &str, token: Option<&str>) -> Result<Spend, String> {
    let url = format!(
        "{}/v1/spend?period={period}",
        collector.trim_end_matches('/')
    );
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut request = agent.get(&url).header("accept", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().map_err(|e| match e {
        ureq::Error::StatusCode(401) => {
            format!("{url}: 401: the collector wants its spend token (--spend-token or LLM_COST_SPEND_TOKEN)")
        }
        e => format!("{url}: {e}"),
    })?;
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_ANSWER_BYTES)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))?;
    parse_spend(&body).ok_or_else(|| format!("{url}: not a spend answer"))
}

/// The `spend` list of a `GET /v1/spend` answer; `None` if it is not one.
fn parse_spend(body: &[u8]) -> Option<Spend> {
    let answer: Value = serde_json::from_slice(body).ok()?;
    let mut out = Spend::new();
    for entry in answer.get("spend")?.as_array()? {
        let text = |name: &str| entry.get(name).and_then(Value::as_str);
        let spent = Usd::parse(text("spent_usd")?).ok()?;
        out.insert(
            (text("dimension")?.to_owned(), text("value")?.to_owned()),
            spent,
        );
    }
    Some(out)
}

/// The rows as an aligned table with a header line.
fn table(rows: &[Row]) -> String {
    let mut lines = vec![[
        "RULE",
        "DIMENSION",
        "VALUE",
        "PERIOD",
        "MODE",
        "SPENT_USD",
        "LIMIT_USD",
        "REMAINING_USD",
        "STATUS",
    ]
    .map(str::to_owned)];
    for row in rows {
        let j = row.json();
        let s = |name: &str| j[name].as_str().unwrap_or("").to_owned();
        lines.push([
            row.rule.to_string(),
            s("dimension"),
            s("value"),
            s("period"),
            s("mode"),
            s("spent_usd"),
            s("limit_usd"),
            s("remaining_usd"),
            s("status"),
        ]);
    }
    let mut widths = [0usize; 9];
    for line in &lines {
        for (w, cell) in widths.iter_mut().zip(line) {
            *w = (*w).max(cell.len());
        }
    }
    let mut out = String::new();
    for line in &lines {
        let cells: Vec<String> = line
            .iter()
            .zip(widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> MeterConfig {
        MeterConfig::from_json(json.as_bytes()).unwrap()
    }

    #[test]
    fn rows_list_own_limits_and_spenders_under_the_default() {
        let config = config(
            r#"{"attribution":{"dimensions":{"team":{"from":["header:x-team"]}}},
                "budgets":{"rules":[{"dimension":"team","limits_usd":{"search":"500","idle":"5"},"default_limit_usd":"100","period":"month","mode":"shadow"}]}}"#,
        );
        let spend = parse_spend(
            br#"{"spend":[{"dimension":"team","value":"search","spent_usd":"500.0000001"},
                          {"dimension":"team","value":"ads","spent_usd":"0.25"},
                          {"dimension":"key_id","value":"3f2a9c1b7e44","spent_usd":"9"}]}"#,
        )
        .unwrap();
        let rows: Vec<Value> = rows_of(0, &config.budgets.rules[0], &spend)
            .iter()
            .map(Row::json)
            .collect();
        assert_eq!(
            rows,
            [
                json!({"rule":0,"dimension":"team","value":"idle","period":"month","mode":"shadow","spent_usd":"0","limit_usd":"5","remaining_usd":"5","status":"under"}),
                json!({"rule":0,"dimension":"team","value":"search","period":"month","mode":"shadow","spent_usd":"500.0000001","limit_usd":"500","remaining_usd":"0","status":"over"}),
                json!({"rule":0,"dimension":"team","value":"ads","period":"month","mode":"shadow","spent_usd":"0.25","limit_usd":"100","remaining_usd":"99.75","status":"under"}),
            ]
        );
    }

    #[test]
    fn without_a_default_only_configured_values_are_listed() {
        let config = config(r#"{"budgets":{"period":"day","limits_usd":{"3f2a9c1b7e44":"1"}}}"#);
        let spend = parse_spend(
            br#"{"spend":[{"dimension":"key_id","value":"aaaaaaaaaaaa","spent_usd":"3"}]}"#,
        )
        .unwrap();
        let rows = rows_of(0, &config.budgets.rules[0], &spend);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].value, "3f2a9c1b7e44");
        assert_eq!(
            table(&rows),
            "RULE  DIMENSION  VALUE         PERIOD  MODE     SPENT_USD  LIMIT_USD  REMAINING_USD  STATUS\n\
             0     key_id     3f2a9c1b7e44  day     enforce  0          1          1              under\n"
        );
    }

    #[test]
    fn a_malformed_answer_is_refused() {
        assert!(parse_spend(b"{}").is_none());
        assert!(
            parse_spend(br#"{"spend":[{"dimension":"team","value":"a","spent_usd":"-1"}]}"#)
                .is_none()
        );
    }
}
