//! `llm-cost pricing import|diff` as a user runs them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn llm_cost(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_llm-cost"))
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

fn snapshot(name: &str) -> String {
    root()
        .join("pricing-data/snapshots")
        .join(name)
        .display()
        .to_string()
}

fn version_of(pricing_file: &str) -> String {
    let recording = root().join("fixtures/recordings/openrouter-stream-with-reasoning.sse");
    let (ok, stdout, stderr) = llm_cost(&[
        "price",
        "--pricing",
        pricing_file,
        recording.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    let record: Value = serde_json::from_str(&stdout).unwrap();
    record["pricing_version"].as_str().unwrap().to_owned()
}

#[test]
fn import_keeps_the_content_and_so_the_pricing_version() {
    let original = snapshot("openrouter-models-2026-02-27.json");
    let (ok, imported, stderr) = llm_cost(&["pricing", "import", &original]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(doc["snapshot_date"], "2026-02-27");
    let ids: Vec<&str> = doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "sorted by id");
    let path = std::env::temp_dir().join(format!("llm-cost-import-{}.json", std::process::id()));
    std::fs::write(&path, &imported).unwrap();
    assert_eq!(version_of(path.to_str().unwrap()), version_of(&original));
    // Importing the import changes nothing: the format is a fixed point.
    let (_, again, _) = llm_cost(&["pricing", "import", path.to_str().unwrap()]);
    assert_eq!(again, imported);
}

#[test]
fn litellm_imports_with_exact_decimals_and_a_date() {
    let (ok, imported, stderr) = llm_cost(&[
        "pricing",
        "import",
        "--date",
        "2026-11-01",
        &snapshot("litellm-model-prices-1.110.2.json"),
    ]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&imported).unwrap();
    assert_eq!(doc["snapshot_date"], "2026-11-01");
    let gpt4o = doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "gpt-4o")
        .unwrap();
    assert_eq!(gpt4o["pricing"]["prompt"], "0.0000025");
    assert_eq!(gpt4o["pricing"]["input_cache_read"], "0.00000125");
}

#[test]
fn diff_lists_added_removed_and_repriced_models() {
    let (ok, out, _) = llm_cost(&[
        "pricing",
        "diff",
        &snapshot("openrouter-models-2026-02-27.json"),
        &snapshot("openrouter-models-2026-03-07.json"),
    ]);
    assert!(ok);
    assert!(
        out.contains("~ inception/mercury completion 0.000001 -> 0.00000075"),
        "{out}"
    );
    let summary = out.lines().last().unwrap();
    assert!(summary.ends_with("re-priced"), "{summary}");
    let (_, same, _) = llm_cost(&[
        "pricing",
        "diff",
        &snapshot("openrouter-models-2026-03-07.json"),
        &snapshot("openrouter-models-2026-03-07.json"),
    ]);
    assert_eq!(same, "0 added, 0 removed, 0 re-priced\n");
}

#[test]
fn long_prompts_are_priced_at_the_long_context_tier_and_imports_keep_tiers() {
    // The bundled table: google/gemini-2.5-pro costs 0.00000125 / 0.00001 per token, and from
    // 200,000 prompt tokens 0.0000025 / 0.000015 for the whole call (OpenRouter `overrides`).
    let response = |prompt_tokens: u64| {
        format!(
            r#"{{"id":"x","model":"google/gemini-2.5-pro","choices":[],"usage":{{"prompt_tokens":{prompt_tokens},"completion_tokens":1000,"total_tokens":0}}}}"#
        )
    };
    let cost_of = |prompt_tokens: u64| {
        let path = std::env::temp_dir().join(format!(
            "llm-cost-tier-{prompt_tokens}-{}.json",
            std::process::id()
        ));
        std::fs::write(&path, response(prompt_tokens)).unwrap();
        let (ok, out, err) = llm_cost(&[
            "price",
            "--provider",
            "openrouter",
            "--path",
            "/api/v1/chat/completions",
            path.to_str().unwrap(),
        ]);
        assert!(ok, "{err}");
        let record: Value = serde_json::from_str(out.trim()).unwrap();
        record["cost_usd"].as_str().unwrap().to_owned()
    };
    assert_eq!(cost_of(199_999), "0.25999875"); // 199,999 × 0.00000125 + 1,000 × 0.00001
    assert_eq!(cost_of(200_000), "0.515"); // 200,000 × 0.0000025 + 1,000 × 0.000015

    let bundled = root().join("pricing-data/bundled.json");
    let (ok, imported, stderr) = llm_cost(&["pricing", "import", bundled.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&imported).unwrap();
    let pro = doc["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "google/gemini-2.5-pro")
        .unwrap();
    assert_eq!(pro["pricing"]["overrides"][0]["min_prompt_tokens"], 200_000);
    assert_eq!(pro["pricing"]["overrides"][0]["prompt"], "0.0000025");
    let path = std::env::temp_dir().join(format!("llm-cost-tiers-{}.json", std::process::id()));
    std::fs::write(&path, &imported).unwrap();
    assert_eq!(
        version_of(path.to_str().unwrap()),
        version_of(bundled.to_str().unwrap())
    );
}

#[test]
fn time_of_day_windows_survive_import_and_show_in_diff() {
    // DeepSeek V4 Pro in the bundled table: list price, doubled 01:00–04:00 and 06:00–10:00 UTC.
    let bundled = root().join("pricing-data/bundled.json");
    let (ok, imported, stderr) = llm_cost(&["pricing", "import", bundled.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let doc: Value = serde_json::from_str(&imported).unwrap();
    let model = |doc: &Value| {
        doc["data"]
            .as_array()
            .unwrap()
            .iter()
            .position(|m| m["id"] == "deepseek/deepseek-v4-pro")
            .unwrap()
    };
    let at = model(&doc);
    let windows = &doc["data"][at]["pricing"]["overrides"];
    assert_eq!(windows[1]["utc_start"], 100);
    assert_eq!(windows[1]["utc_end"], 400);
    assert_eq!(windows[1]["prompt"], "0.00000132");

    let mut changed = doc.clone();
    changed["data"][at]["pricing"]["overrides"][1]["prompt"] = json!("0.00000099");
    let dir = std::env::temp_dir();
    let old = dir.join(format!("llm-cost-windows-old-{}.json", std::process::id()));
    let new = dir.join(format!("llm-cost-windows-new-{}.json", std::process::id()));
    std::fs::write(&old, &imported).unwrap();
    std::fs::write(&new, serde_json::to_string(&changed).unwrap()).unwrap();
    let (_, out, stderr) = llm_cost(&[
        "pricing",
        "diff",
        old.to_str().unwrap(),
        new.to_str().unwrap(),
    ]);
    assert!(
        out.contains("prompt 01:00-04:00 UTC") && out.contains("0.00000099"),
        "{out}{stderr}"
    );
    assert!(out.contains("1 re-priced"), "{out}");
}

#[test]
fn price_at_a_time_uses_that_time_of_day_window() {
    let path = std::env::temp_dir().join(format!("llm-cost-at-{}.json", std::process::id()));
    std::fs::write(
        &path,
        r#"{"model":"deepseek/deepseek-v4-pro","usage":{"prompt_tokens":1000000,"completion_tokens":1000000}}"#,
    )
    .unwrap();
    let priced_at = |at: &str| {
        let (ok, out, err) = llm_cost(&["price", "--at", at, path.to_str().unwrap()]);
        assert!(ok, "{err}");
        let record: Value = serde_json::from_str(out.trim()).unwrap();
        assert!(record["ts"].as_str().unwrap().starts_with(&at[..16]));
        record["cost_usd"].as_str().unwrap().to_owned()
    };
    assert_eq!(priced_at("2026-11-25T00:59:59Z"), "2.64");
    assert_eq!(priced_at("2026-11-25T01:00:00Z"), "5.28"); // peak: 01:00–04:00 UTC
    assert_eq!(priced_at("2026-11-25T09:59:00Z"), "5.28"); // peak: 06:00–10:00 UTC
    assert_eq!(priced_at("2026-11-25T10:00:00Z"), "2.64");
    let (ok, _, err) = llm_cost(&[
        "price",
        "--at",
        "2026-11-25T01:00:00+08:00",
        path.to_str().unwrap(),
    ]);
    assert!(!ok && err.contains("RFC 3339 UTC"), "{err}");
}
