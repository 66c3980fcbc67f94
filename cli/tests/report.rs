//! `llm-cost report` over NDJSON cost records.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use llm_cost_core::Usd;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn llm_cost(args: &[&str], stdin: &[u8]) -> (bool, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

/// The records the CLI prints for every recording: real records, as a collector would store them.
fn records() -> String {
    let mut out = String::new();
    let mut names: Vec<_> = std::fs::read_dir(root().join("fixtures/recordings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().ends_with(".meta.json"))
        .collect();
    names.sort();
    for path in names {
        let (ok, line, err) = llm_cost(&["price", path.to_str().unwrap()], b"");
        assert!(ok, "{err}");
        out.push_str(&line);
    }
    out
}

#[test]
fn totals_are_the_exact_sum_of_the_records() {
    let records = records();
    let expected = records
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["cost_usd"]
                .as_str()
                .map(str::to_owned)
        })
        .fold(Usd::ZERO, |sum, c| {
            sum.checked_add(Usd::parse(&c).unwrap()).unwrap()
        });
    let (ok, out, _) = llm_cost(&["report", "--json", "-"], records.as_bytes());
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["calls"], 56);
    assert_eq!(report["total"]["cost_usd"], expected.to_decimal_string());
    let by_model: Usd = report["by"]["model"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| Usd::parse(t["cost_usd"].as_str().unwrap()).unwrap())
        .fold(Usd::ZERO, |a, b| a.checked_add(b).unwrap());
    assert_eq!(by_model, expected, "breakdown sums to the total");
    assert_eq!(report["by"]["provider"]["gemini"]["calls"], 8);
    assert_eq!(report["malformed_lines"], 0);
}

#[test]
fn malformed_lines_are_counted_with_their_numbers_and_skipped() {
    let input = "{\"cost_usd\":\"0.5\",\"model\":\"m\"}\nnot json\n\n{\"cost_usd\":\"lots\"}\n{\"cost_usd\":\"0.25\",\"model\":\"m\"}\n";
    let (ok, out, err) = llm_cost(&["report", "--json"], input.as_bytes());
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["cost_usd"], "0.75");
    assert_eq!(report["malformed_lines"], 2);
    assert_eq!(report["malformed_at"], serde_json::json!(["-:2", "-:4"]));
    assert!(
        err.contains("2 malformed line(s) skipped (first: -:2, -:4)"),
        "{err}"
    );
}

/// Sums that do not fit (absurd token counts or costs in a log line) make that line malformed:
/// never a wrapped total, never a cost silently left out.
#[test]
fn a_line_whose_counts_or_cost_overflow_the_totals_is_malformed() {
    let max = u64::MAX;
    let huge = "200000000"; // 2e8 USD fits in a Usd, twice that does not
    let input = format!(
        "{{\"prompt_tokens\":{max},\"cost_usd\":\"0.5\"}}\n{{\"prompt_tokens\":2,\"cost_usd\":\"0.5\"}}\n\
         {{\"completion_tokens\":{max}}}\n{{\"completion_tokens\":1}}\n\
         {{\"cost_usd\":\"{huge}\"}}\n{{\"cost_usd\":\"{huge}\"}}\n"
    );
    let (ok, out, _) = llm_cost(&["report", "--json"], input.as_bytes());
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["prompt_tokens"], max);
    assert_eq!(report["total"]["completion_tokens"], max);
    assert_eq!(
        report["malformed_at"],
        serde_json::json!(["-:2", "-:4", "-:6"])
    );
    assert_eq!(report["total"]["calls"], 3);
}

#[test]
fn month_end_projection_follows_the_daily_run_rate() {
    // 1 USD a day on the first ten days of November: 10 so far, 30 by the 30th.
    let input: String = (1..=10)
        .map(|d| format!("{{\"ts\":\"2026-11-{d:02}T12:00:00.000Z\",\"cost_usd\":\"1\",\"key_id\":\"k{}\"}}\n", d % 3))
        .collect();
    let (_, out, _) = llm_cost(&["report", "--json"], input.as_bytes());
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["projection"]["month"], "2026-11");
    assert_eq!(report["projection"]["to_date_usd"], "10");
    assert_eq!(report["projection"]["projected_usd"], "30");
    assert_eq!(report["top_keys"][0]["key_id"], "k1"); // days 1, 4, 7, 10
    let (_, table, _) = llm_cost(&["report", "--top", "2"], input.as_bytes());
    assert!(
        table.contains("2026-11: 10 USD so far, projected 30 USD by month end"),
        "{table}"
    );
    let (_, csv, _) = llm_cost(&["report", "--csv"], input.as_bytes());
    assert!(csv.starts_with("dimension,key,calls,"));
    // No record carried an upstream cost: an empty field (n/a), not 0.
    assert!(csv.contains("\ntotal,all,10,0,0,10,\n"), "{csv}");
}

#[test]
fn unreadable_file_fails_with_a_message() {
    let (ok, _, err) = llm_cost(&["report", "/no/such/log.ndjson"], b"");
    assert!(!ok);
    assert!(err.contains("cannot read /no/such/log.ndjson"));
}

/// Records of two teams and three features over three days of November 2026.
fn attributed_records() -> String {
    let mut out = String::new();
    for (day, team, feature, cost) in [
        (1, "search", "summarize", "1.5"),
        (1, "search", "chat", "0.25"),
        (2, "ads", "chat", "2"),
        (3, "ads", "extract", "0.125"),
        (3, "search", "summarize", "1"),
    ] {
        let line = serde_json::json!({
            "ts": format!("2026-11-{day:02}T10:00:00.000Z"),
            "model": "m",
            "cost_usd": cost,
            "attributes": {"team": team, "feature": feature},
        });
        out.push_str(&format!("{line}\n"));
    }
    out.push_str("{\"ts\":\"2026-11-03T11:00:00.000Z\",\"model\":\"m\",\"cost_usd\":\"0.5\",\"attributes\":{}}\n");
    out
}

#[test]
fn by_attribute_sums_each_group_exactly_in_every_format() {
    let input = attributed_records();
    let (ok, out, err) = llm_cost(
        &["report", "--by", "team", "--by", "feature", "--json"],
        input.as_bytes(),
    );
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let by = &report["by"];
    assert_eq!(by["team"]["search"]["cost_usd"], "2.75");
    assert_eq!(by["team"]["ads"]["cost_usd"], "2.125");
    assert_eq!(by["team"]["none"]["cost_usd"], "0.5");
    assert_eq!(by["feature"]["summarize"]["cost_usd"], "2.5");
    assert_eq!(by["feature"]["chat"]["calls"], 2);
    assert_eq!(by["feature"]["extract"]["cost_usd"], "0.125");
    // built-in dimensions stay in the JSON
    assert_eq!(by["model"]["m"]["cost_usd"], "5.375");
    // top-N and month-end projection per group: search spent 2.75 in 3 of 30 days → 27.5.
    assert_eq!(report["top"]["team"][0]["value"], "search");
    assert_eq!(report["top"]["team"][0]["projected_usd"], "27.5");
    assert_eq!(by["team"]["search"]["projected_usd"], "27.5");
    assert_eq!(report["projection"]["projected_usd"], "53.75");

    let (_, csv, _) = llm_cost(&["report", "--by", "team", "--csv"], input.as_bytes());
    assert!(csv.starts_with("dimension,key,calls,prompt_tokens,completion_tokens,cost_usd,upstream_cost_usd,month_end_usd\n"), "{csv}");
    assert!(csv.contains("\nteam,search,3,0,0,2.75,,27.5\n"), "{csv}");
    assert!(!csv.contains("\nmodel,"), "only the --by dimensions: {csv}");

    let (_, table, _) = llm_cost(&["report", "--by", "team", "--top", "1"], input.as_bytes());
    assert!(table.contains("by team:"), "{table}");
    assert!(table.contains("top 1 team by cost:"), "{table}");
    assert!(!table.contains("by model:"), "{table}");
}

#[test]
fn where_keeps_only_matching_records() {
    let input = attributed_records();
    let (ok, out, _) = llm_cost(
        &[
            "report",
            "--where",
            "team=search",
            "--by",
            "feature",
            "--json",
        ],
        input.as_bytes(),
    );
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["cost_usd"], "2.75");
    assert_eq!(report["filtered_out"], 3);
    assert_eq!(report["by"]["feature"]["summarize"]["cost_usd"], "2.5");
    assert!(report["by"]["feature"].get("extract").is_none());
    let (_, out, _) = llm_cost(
        &[
            "report",
            "--where",
            "team=ads",
            "--where",
            "feature=chat",
            "--json",
        ],
        input.as_bytes(),
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["cost_usd"], "2");
    // No input: the argument is refused before stdin is read (a write would hit a closed pipe).
    let (ok, _, err) = llm_cost(&["report", "--by", "cost_usd"], b"");
    assert!(!ok);
    assert!(err.contains("not a dimension"), "{err}");
}

/// "upstream reported 0 USD" only when an upstream said 0 (an OpenRouter BYOK call); calls that
/// report no upstream cost at all (OpenAI, Anthropic, Gemini) give n/a.
#[test]
fn upstream_cost_is_na_unless_a_call_reported_one() {
    let none = "{\"cost_usd\":\"0.5\"}\n{\"cost_usd\":\"0.25\",\"upstream_cost_usd\":null}\n";
    let (ok, out, _) = llm_cost(&["report", "--json"], none.as_bytes());
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["upstream_cost_usd"], Value::Null);
    assert_eq!(report["total"]["upstream_reported_calls"], 0);
    let (_, table, _) = llm_cost(&["report"], none.as_bytes());
    assert!(
        table.starts_with(
            "2 calls, 0 prompt + 0 completion tokens, cost 0.75 USD (upstream reported n/a)\n"
        ),
        "{table}"
    );
    let (_, csv, _) = llm_cost(&["report", "--csv"], none.as_bytes());
    assert!(csv.contains("\ntotal,all,2,0,0,0.75,\n"), "{csv}");

    let some = format!("{none}{{\"cost_usd\":\"0.125\",\"upstream_cost_usd\":\"0\"}}\n");
    let (_, out, _) = llm_cost(&["report", "--json"], some.as_bytes());
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["upstream_cost_usd"], "0");
    assert_eq!(report["total"]["upstream_reported_calls"], 1);
    let (_, table, _) = llm_cost(&["report"], some.as_bytes());
    assert!(
        table.contains("cost 0.875 USD (upstream reported 0 USD for 1 of 3 calls)\n"),
        "{table}"
    );
    let all = "{\"cost_usd\":\"0.5\",\"upstream_cost_usd\":\"0.5\"}\n";
    let (_, table, _) = llm_cost(&["report"], all.as_bytes());
    assert!(table.contains("(upstream reported 0.5 USD)\n"), "{table}");
}

/// The record of a call refused for a spent budget (what the Envoy filter writes with its 429).
fn refused_record(model_requested: &str) -> String {
    serde_json::json!({
        "ts": "2026-11-02T10:00:00.000Z",
        "model_requested": model_requested,
        "model": model_requested, // nothing answered: the record's model is the requested one
        "status_code": 429,
        "cost_usd": null,
        "cost_status": "no_usage",
        "error": "budget_exceeded",
        "priced_as": null,
        "key_id": "3f2a9c1b7e44",
    })
    .to_string()
}

#[test]
fn budget_refusals_are_refused_calls_of_the_requested_model() {
    let input = format!(
        "{}\n{}\n{{\"model\":\"openai/gpt-4o-2024-08-06\",\"priced_as\":\"openai/gpt-4o\",\"cost_status\":\"exact\",\"cost_usd\":\"1\"}}\n\
         {{\"model\":\"openai/gpt-4o\",\"cost_status\":\"no_usage\",\"error\":\"upstream_unreachable\"}}\n",
        refused_record("openai/gpt-4o"),
        refused_record("openai/gpt-4o")
    );
    let (ok, out, _) = llm_cost(
        &["report", "--by", "answered_model", "--json"],
        input.as_bytes(),
    );
    assert!(ok);
    let report: Value = serde_json::from_str(&out).unwrap();
    let by = &report["by"];
    assert_eq!(by["status"]["refused"]["calls"], 2);
    assert_eq!(
        by["status"]["no_usage"]["calls"], 1,
        "an unreachable upstream is not a refusal"
    );
    assert_eq!(by["model"]["openai/gpt-4o"]["calls"], 4);
    assert!(by["model"].get("unknown").is_none(), "{}", by["model"]);
    assert_eq!(by["answered_model"]["openai/gpt-4o"]["calls"], 3);
    assert_eq!(by["answered_model"]["openai/gpt-4o-2024-08-06"]["calls"], 1);
    let (_, out, _) = llm_cost(
        &[
            "report",
            "--where",
            "status=refused",
            "--by",
            "key_id",
            "--json",
        ],
        input.as_bytes(),
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["by"]["key_id"]["3f2a9c1b7e44"]["calls"], 2);
    let (_, table, _) = llm_cost(&["report"], input.as_bytes());
    assert!(table.contains("\n  refused "), "{table}");
}

/// `model` groups by the price-table id (the Prometheus `model` label); `answered_model` by the
/// response's `model`, which for dated or provider-specific answers is another name.
#[test]
fn model_is_the_price_table_id_and_answered_model_the_response_model() {
    let records = records();
    let (ok, out, err) = llm_cost(
        &[
            "report",
            "--by",
            "model",
            "--by",
            "answered_model",
            "--json",
            "-",
        ],
        records.as_bytes(),
    );
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let by = &report["by"];
    let mut differ = 0;
    for line in records.lines() {
        let r: Value = serde_json::from_str(line).unwrap();
        let answered = r["model"].as_str().unwrap_or("unknown");
        let table_id = r["priced_as"].as_str().unwrap_or(answered);
        assert!(by["model"].get(table_id).is_some(), "{table_id}");
        assert!(by["answered_model"].get(answered).is_some(), "{answered}");
        differ += usize::from(table_id != answered);
    }
    assert!(
        differ > 0,
        "some recording answers with a name other than its table id"
    );
    let sum = |d: &str| -> u64 {
        by[d]
            .as_object()
            .unwrap()
            .values()
            .map(|t| t["calls"].as_u64().unwrap())
            .sum()
    };
    assert_eq!(sum("model"), 56);
    assert_eq!(sum("answered_model"), 56);
}

#[test]
fn since_is_inclusive_and_until_exclusive() {
    let input: String = (1..=5)
        .map(|d| format!("{{\"ts\":\"2026-11-{d:02}T00:00:00.000Z\",\"cost_usd\":\"{d}\"}}\n"))
        .chain(["{\"cost_usd\":\"100\"}\n".to_owned()])
        .collect();
    let (ok, out, err) = llm_cost(
        &[
            "report",
            "--since",
            "2026-11-02",
            "--until",
            "2026-11-04",
            "--json",
        ],
        input.as_bytes(),
    );
    assert!(ok, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["cost_usd"], "5", "days 2 and 3");
    assert_eq!(
        report["filtered_out"], 4,
        "days 1, 4, 5 and the line without ts"
    );
    assert_eq!(report["since"], "2026-11-02T00:00:00.000Z");
    assert_eq!(report["until"], "2026-11-04T00:00:00.000Z");
    let (_, out, _) = llm_cost(
        &["report", "--since", "2026-11-04T00:00:00Z", "--json"],
        input.as_bytes(),
    );
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total"]["cost_usd"], "9");
    assert_eq!(report["until"], Value::Null);
    let (_, table, _) = llm_cost(
        &["report", "--until", "2026-11-02T00:00:00.001Z"],
        input.as_bytes(),
    );
    assert!(
        table.contains("cost 3 USD")
            && table.contains(
                "where until 2026-11-02T00:00:00.001Z (exclusive) (4 other record(s) left out)"
            ),
        "{table}"
    );
    for bad in ["2026-11-31", "last week", "2026-11-01T00:00:00+02:00"] {
        let (ok, _, err) = llm_cost(&["report", "--since", bad], b"");
        assert!(!ok && err.contains("RFC 3339"), "{bad}: {err}");
    }
}
