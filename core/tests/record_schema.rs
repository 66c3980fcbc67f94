//! The cost record's field names are a public API: the README's schema table and the serializer
//! must list the same fields, in the same order.

use std::rc::Rc;

use llm_cost_core::MeterConfig;

mod common;

fn readme_fields() -> Vec<String> {
    let readme = include_str!("../../README.md");
    let table = readme
        .split("## The cost record")
        .nth(1)
        .expect("README has a cost record section");
    table
        .lines()
        .skip_while(|line| !line.starts_with("| field |"))
        .skip(2)
        .take_while(|line| line.starts_with("| `"))
        .map(|line| line.split('`').nth(1).unwrap_or_default().to_owned())
        .collect()
}

fn serialized_fields() -> Vec<String> {
    let config = Rc::new(MeterConfig::default());
    let mut call = common::openrouter_json_call(&config, 0);
    let outcome = call.finish_json(
        br#"{"model":"openai/gpt-4o","usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
        1,
    );
    // serde_json keeps struct field order in the text; read the keys in order.
    let json = outcome.record_json;
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    let mut keys: Vec<(usize, String)> = value
        .as_object()
        .unwrap()
        .keys()
        .map(|k| (json.find(&format!("\"{k}\":")).unwrap(), k.clone()))
        .collect();
    keys.sort();
    keys.into_iter().map(|(_, k)| k).collect()
}

#[test]
fn readme_schema_table_and_serializer_agree() {
    assert_eq!(readme_fields(), serialized_fields());
}
