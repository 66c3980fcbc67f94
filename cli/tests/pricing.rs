//! `llm-cost pricing import|diff|show` and `price --explain` as a user runs them.

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
    // Tiers, 1-hour cache writes, audio and the per-search price survive the import.
    let entry = |id: &str| {
        doc["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["id"] == id)
            .unwrap()["pricing"]
            .clone()
    };
    assert_eq!(gpt4o["pricing"]["prompt_priority"], "0.00000425");
    assert_eq!(gpt4o["pricing"]["completion_batch"], "0.000005");
    let gpt5 = entry("gpt-5");
    assert_eq!(gpt5["prompt_flex"], "0.000000625");
    assert_eq!(gpt5["web_search"], "0.01");
    assert_eq!(
        entry("claude-sonnet-4-5")["input_cache_write_1h"],
        "0.000006"
    );
    let audio = entry("gpt-audio");
    assert_eq!(
        (&audio["audio"], &audio["audio_output"]),
        (&json!("0.000032"), &json!("0.000064"))
    );
}

#[test]
fn diff_shows_tier_audio_and_search_prices() {
    let dir = std::env::temp_dir().join(format!("llm-cost-diff-tiers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let write = |name: &str, pricing: Value| {
        let path = dir.join(name);
        let doc = json!({"snapshot_date": "2026-11-01", "data": [{"id": "openai/gpt-5", "pricing": pricing}]});
        std::fs::write(&path, doc.to_string()).unwrap();
        path.display().to_string()
    };
    let old = write(
        "old.json",
        json!({"prompt": "0.00000125", "completion": "0.00001"}),
    );
    let new = write(
        "new.json",
        json!({"prompt": "0.00000125", "completion": "0.00001", "prompt_flex": "0.000000625",
               "audio": "0.00004", "web_search": "0.01", "input_cache_write_1h": "0.0000025"}),
    );
    let (ok, out, stderr) = llm_cost(&["pricing", "diff", &old, &new]);
    assert!(ok, "{stderr}");
    for line in [
        "~ openai/gpt-5 audio none -> 0.00004",
        "~ openai/gpt-5 input_cache_write_1h none -> 0.0000025",
        "~ openai/gpt-5 prompt_flex none -> 0.000000625",
        "~ openai/gpt-5 web_search none -> 0.01",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
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

fn config_file(name: &str, json: &str) -> String {
    let dir = std::env::temp_dir().join(format!("llm-cost-pricing-show-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, json).unwrap();
    path.display().to_string()
}

#[test]
fn pricing_show_prints_the_merged_prices_of_an_alias_and_where_each_comes_from() {
    let config = config_file(
        "show.json",
        r#"{"models":{"anthropic/claude-sonnet-4.6":{"prompt":"0.001"}}}"#,
    );
    let (ok, out, err) = llm_cost(&[
        "pricing",
        "show",
        "anthropic/claude-4.6-sonnet-20260217",
        "--config",
        &config,
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("priced as        anthropic/claude-sonnet-4.6 (table entry with `models.anthropic/claude-sonnet-4.6` for prompt)"),
        "{out}"
    );
    assert!(
        out.contains("  prompt              0.001         from `models`\n"),
        "{out}"
    );
    assert!(out.contains("  completion          0.000015\n"), "{out}"); // the table's
    assert!(out.contains("+cfg-"), "{out}");
    let (ok, _, err) = llm_cost(&["pricing", "show", "acme/unknown-1"]);
    assert!(!ok);
    assert!(err.contains("no price for model `acme/unknown-1`"), "{err}");
}

#[test]
fn pricing_show_picks_the_tier_and_the_time_window_in_effect() {
    let (ok, out, err) = llm_cost(&[
        "pricing",
        "show",
        "claude-sonnet-4-5",
        "--prompt-tokens",
        "300000",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("priced as        anthropic/claude-sonnet-4.5 (table entry)"),
        "{out}"
    );
    assert!(
        out.contains("in effect        long-context tier from 200000 prompt tokens"),
        "{out}"
    );
    assert!(out.contains("  prompt              0.000006\n"), "{out}");
    let (ok, out, err) = llm_cost(&[
        "pricing",
        "show",
        "deepseek/deepseek-v4-pro-0813",
        "--at",
        "2026-11-25T02:00:00Z",
    ]);
    assert!(ok, "{err}");
    assert!(
        out.contains("in effect        time window 01:00-04:00 UTC"),
        "{out}"
    );
    assert!(out.contains("  prompt              0.00000132\n"), "{out}");
}

#[test]
fn price_explain_names_the_entry_and_the_price_of_each_component() {
    let config = config_file(
        "explain.json",
        r#"{"models":{"anthropic/claude-sonnet-4.6":{"prompt":"0.001"}}}"#,
    );
    let recording =
        root().join("fixtures/recordings/openrouter-cache-all-settings-real-api-0.json");
    let (ok, out, err) = llm_cost(&[
        "price",
        "--explain",
        "--config",
        &config,
        recording.to_str().unwrap(),
    ]);
    assert!(ok, "{err}");
    assert_eq!(
        out.lines().count(),
        1,
        "standard output stays one record: {out}"
    );
    let record: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(record["cost_usd"], "0.01357875");
    for line in [
        "explain: model `anthropic/claude-4.6-sonnet-20260217` priced as `anthropic/claude-sonnet-4.6` (table entry with `models.anthropic/claude-sonnet-4.6` for prompt), list prices, ",
        "explain:   prompt      0.003         at 0.001 per token (`prompt`, from `models`)",
        "explain:   cache_write 0.00963375    at 0.00000375 per token (`input_cache_write`)",
        "explain:   completion  0.000945      at 0.000015 per token (`completion`)",
        "explain:   total       0.01357875",
    ] {
        assert!(err.contains(line), "{line}\n{err}");
    }
}
