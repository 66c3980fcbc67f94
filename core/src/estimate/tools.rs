//! Function tools as OpenAI models see them: the request's JSON Schema definitions rendered into
//! the TypeScript-like `namespace functions { … }` block the model reads, which is far shorter
//! than the JSON (a 4.4 KB `tools` array can be a few hundred tokens).
//!
//! The rendering follows the format OpenAI's models were observed to use for function calling
//! (descriptions as `//` comments, parameters as an object type, `?` for optional ones); token
//! counts from it land within a few tokens of what the API reports. Tools that are not functions
//! (web search, provider server tools) are not rendered: their cost is the provider's secret.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use serde_json::{Map, Value};

/// Tokens OpenAI adds around the functions block (measured by the format's authors).
const FUNCTIONS_OVERHEAD: u64 = 9;

/// Tokens a system message shares with the functions block (not counted twice).
const SHARED_WITH_SYSTEM: u64 = 4;

/// Tokens a forced `tool_choice` adds beyond the function's name (`"none"` adds 1).
const FORCED_CHOICE: u64 = 4;

/// Prompt tokens of the request's function tools as an OpenAI model reads them (the rendered
/// block and its overhead) and of a forced `tool_choice`; 0 without function tools.
pub fn prompt_tokens(doc: &Value) -> u64 {
    let Some(block) = render(doc) else {
        return 0;
    };
    let has_system = super::has_instructions(doc);
    let choice = match &doc["tool_choice"] {
        Value::String(choice) if choice == "none" => 1,
        Value::Object(choice) => {
            let name = choice
                .get("function")
                .and_then(|function| function.get("name"))
                .or_else(|| choice.get("name"));
            name.and_then(Value::as_str)
                .map_or(0, |name| super::count_text(name) + FORCED_CHOICE)
        }
        _ => 0,
    };
    let shared = if has_system { SHARED_WITH_SYSTEM } else { 0 };
    (super::count_text(&block) + FUNCTIONS_OVERHEAD + choice).saturating_sub(shared)
}

/// Special tokens framing an assistant message that calls tools (fitted: 4 reproduces both the
/// single and the parallel call in the OpenAI recordings, see `core/tests/estimate.rs`).
const CALL_FRAME: u64 = 4;

/// Tokens a model spends on `calls` tool calls beyond their arguments, given the tokens of their
/// names (each counted as `.NAME`, as it follows `functions`). One call is addressed
/// ` to=functions.NAME`; several go through `multi_tool_use.parallel` as
/// `{"tool_uses":[{"recipient_name":"functions.NAME","parameters":ARGS},…]}`.
pub fn call_tokens(calls: u64, name_tokens: u64) -> u64 {
    let count = super::count_text;
    match calls {
        0 => 0,
        1 => count(" to=functions") + name_tokens + CALL_FRAME,
        _ => {
            let wrapper =
                count(" to=multi_tool_use.parallel") + count("{\"tool_uses\":[") + count("]}");
            let per_call =
                count("{\"recipient_name\":\"functions") + count("\",\"parameters\":") + 1;
            wrapper + calls * per_call + name_tokens + CALL_FRAME
        }
    }
}

/// The `namespace functions` block for the request's function tools, or `None` if it has none.
/// Reads chat `tools[].function`, Responses `tools[]` of type `function`, and legacy `functions`.
pub fn render(doc: &Value) -> Option<String> {
    let functions: Vec<&Value> = doc["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| match tool.get("function") {
            Some(function) => Some(function),
            None if tool["type"] == "function" => Some(tool),
            None => None,
        })
        .chain(doc["functions"].as_array().into_iter().flatten())
        .filter(|function| function["name"].is_string())
        .collect();
    if functions.is_empty() {
        return None;
    }
    let mut lines: Vec<String> = vec!["namespace functions {".into(), String::new()];
    for function in functions {
        let name = function["name"].as_str().unwrap_or_default();
        if let Some(description) = non_empty(&function["description"]) {
            lines.push(format!("// {description}"));
        }
        let parameters = &function["parameters"];
        match parameters["properties"].as_object() {
            Some(properties) if !properties.is_empty() => {
                lines.push(format!("type {name} = (_: {{"));
                lines.push(properties_block(parameters, properties, 0));
                lines.push("}) => any;".into());
            }
            _ => lines.push(format!("type {name} = () => any;")),
        }
        lines.push(String::new());
    }
    lines.push("} // namespace functions".into());
    Some(lines.join("\n"))
}

/// One line per property (`name: type,`, `name?: type,` when optional), indented by `indent`.
fn properties_block(schema: &Value, properties: &Map<String, Value>, indent: usize) -> String {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let pad = " ".repeat(indent);
    let mut lines = Vec::new();
    for (name, property) in properties {
        if indent < 2 {
            if let Some(description) = non_empty(&property["description"]) {
                lines.push(format!("{pad}// {description}"));
            }
        }
        let optional = if required.contains(&name.as_str()) {
            ""
        } else {
            "?"
        };
        lines.push(format!(
            "{pad}{name}{optional}: {},",
            type_of(property, indent)
        ));
    }
    lines.join("\n")
}

/// A property's type in the rendering: enums as unions, arrays as `T[]`, objects inline.
fn type_of(schema: &Value, indent: usize) -> String {
    let union = |values: &Vec<Value>| {
        values
            .iter()
            .map(|value| match value {
                Value::String(text) => format!("\"{text}\""),
                other => other.to_string(),
            })
            .collect::<Vec<_>>()
            .join(" | ")
    };
    match (schema["type"].as_str(), schema["enum"].as_array()) {
        (Some("string" | "number" | "integer"), Some(values)) => union(values),
        (Some("string"), None) => "string".into(),
        (Some("number" | "integer"), None) => "number".into(),
        (Some("boolean"), _) => "boolean".into(),
        (Some("null"), _) => "null".into(),
        (Some("array"), _) => match schema.get("items") {
            Some(items) => format!("{}[]", type_of(items, indent)),
            None => "any[]".into(),
        },
        (Some("object"), _) => {
            let empty = Map::new();
            let properties = schema["properties"].as_object().unwrap_or(&empty);
            format!(
                "{{\n{}\n}}",
                properties_block(schema, properties, indent + 2)
            )
        }
        _ => "any".into(),
    }
}

fn non_empty(value: &Value) -> Option<&str> {
    value.as_str().filter(|text| !text.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_chat_tools_as_a_functions_namespace() {
        let doc = json!({"tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather now.",
             "parameters": {"type": "object", "required": ["city"], "properties": {
                 "city": {"type": "string", "description": "City name"},
                 "unit": {"type": "string", "enum": ["c", "f"]},
                 "days": {"type": "array", "items": {"type": "integer"}},
                 "where": {"type": "object", "properties": {"lat": {"type": "number"}}}}}}},
            {"type": "function", "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}}},
            {"type": "openrouter:advisor", "parameters": {"model": "x"}}
        ]});
        // Properties come in key order (serde_json's map is sorted); the token count is the same.
        let expected = "namespace functions {\n\n// Weather now.\ntype get_weather = (_: {\n\
                        // City name\ncity: string,\ndays?: number[],\nunit?: \"c\" | \"f\",\n\
                        where?: {\n  lat?: number,\n},\n}) => any;\n\ntype ping = () => any;\n\n\
                        } // namespace functions";
        assert_eq!(render(&doc).as_deref(), Some(expected));
    }

    #[test]
    fn reads_responses_tools_and_legacy_functions() {
        let responses = json!({"tools": [{"type": "function", "name": "f", "parameters": {}}]});
        let legacy = json!({"functions": [{"name": "f"}]});
        let expected = "namespace functions {\n\ntype f = () => any;\n\n} // namespace functions";
        assert_eq!(render(&responses).as_deref(), Some(expected));
        assert_eq!(render(&legacy).as_deref(), Some(expected));
    }

    #[test]
    fn call_framing_matches_the_rendered_calls() {
        let count = super::super::count_text;
        let single = count(" to=functions.get_capital") + CALL_FRAME;
        assert_eq!(call_tokens(1, count(".get_capital")), single);
        let parallel = count(" to=multi_tool_use.parallel")
            + count(
                r#"{"tool_uses":[{"recipient_name":"functions.get_country","parameters":{}},{"recipient_name":"functions.get_product_name","parameters":{}}]}"#,
            )
            - 2 * count("{}")
            + CALL_FRAME;
        let names = count(".get_country") + count(".get_product_name");
        // Counting the pieces apart moves token boundaries: within a token per call.
        assert!(call_tokens(2, names).abs_diff(parallel) <= 2);
        assert_eq!(call_tokens(0, 0), 0);
    }

    #[test]
    fn no_function_tools_means_no_block() {
        assert_eq!(render(&json!({"tools": [{"type": "web_search"}]})), None);
        assert_eq!(render(&json!({"messages": []})), None);
    }
}
