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
    assert_eq!(report["total"]["calls"], 49);
    assert_eq!(report["total"]["cost_usd"], expected.to_decimal_string());
    let by_model: Usd = report["by"]["model"]
        .as_object()
        .unwrap()
        .values()
        .map(|t| Usd::parse(t["cost_usd"].as_str().unwrap()).unwrap())
        .fold(Usd::ZERO, |a, b| a.checked_add(b).unwrap());
    assert_eq!(by_model, expected, "breakdown sums to the total");
    assert_eq!(report["by"]["provider"]["gemini"]["calls"], 6);
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
    assert!(csv.contains("\ntotal,all,10,0,0,10,0\n"), "{csv}");
}

#[test]
fn unreadable_file_fails_with_a_message() {
    let (ok, _, err) = llm_cost(&["report", "/no/such/log.ndjson"], b"");
    assert!(!ok);
    assert!(err.contains("cannot read /no/such/log.ndjson"));
}
