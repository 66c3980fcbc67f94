//! Where in a JSON text an error happened, as a field path (`collector.timeout_ms`,
//! `routes[0].provider`), for configuration errors that name the field.
//!
//! serde_json reports a line and column; a single forward scan up to that point recovers the path
//! of keys and indices. Far smaller in the `.wasm` than wrapping every deserializer to track it.

use alloc::{format, string::String, vec::Vec};

enum Frame<'a> {
    Object(Option<&'a [u8]>),
    Array(usize),
}

/// The path of the value being read at `line`/`column` (1-based, as serde_json reports them);
/// empty at the top level.
pub fn path_at(text: &[u8], line: usize, column: usize) -> String {
    let line_start = text
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(line.saturating_sub(2))
        .map_or(0, |(i, _)| if line > 1 { i + 1 } else { 0 });
    let end = line_start.saturating_add(column).min(text.len());
    let mut frames: Vec<Frame<'_>> = Vec::new();
    let (mut in_string, mut escaped, mut expect_key) = (false, false, false);
    let (mut string_start, mut string_is_key) = (0, false);
    for (i, &b) in text[..end].iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
                if let (true, Some(Frame::Object(key))) = (string_is_key, frames.last_mut()) {
                    *key = Some(&text[string_start..i]);
                }
            }
            continue;
        }
        match b {
            b'"' => {
                in_string = true;
                string_start = i + 1;
                string_is_key = expect_key && matches!(frames.last(), Some(Frame::Object(_)));
            }
            b'{' => {
                frames.push(Frame::Object(None));
                expect_key = true;
            }
            b'[' => {
                frames.push(Frame::Array(0));
                expect_key = false;
            }
            b'}' | b']' => {
                frames.pop();
                expect_key = false;
            }
            b',' => match frames.last_mut() {
                Some(Frame::Array(index)) => *index += 1,
                Some(Frame::Object(_)) => expect_key = true,
                None => {}
            },
            b':' => expect_key = false,
            _ => {}
        }
    }
    let mut path = String::new();
    for frame in &frames {
        match frame {
            Frame::Object(Some(key)) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&String::from_utf8_lossy(key));
            }
            Frame::Object(None) => {}
            Frame::Array(index) => path.push_str(&format!("[{index}]")),
        }
    }
    path
}

#[cfg(test)]
mod tests {
    use super::path_at;
    use alloc::string::String;

    fn path_of_error(json: &str) -> String {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Route {
            host: u32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Doc {
            a: Option<Inner>,
            routes: Option<alloc::vec::Vec<Route>>,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            b: u32,
        }
        let e = serde_json::from_str::<Doc>(json).unwrap_err();
        path_at(json.as_bytes(), e.line(), e.column())
    }

    #[test]
    fn finds_nested_keys_and_indices_at_serde_errors() {
        assert_eq!(path_of_error(r#"{"a": {"b": "x"}}"#), "a.b");
        assert_eq!(
            path_of_error("{\n  \"routes\": [\n    {\"host\": 1},\n    {\"host\": \"h\"}\n  ]\n}"),
            "routes[1].host"
        );
        assert_eq!(
            path_of_error(r#"{"a": {"b": 1}, "routes": [{"host": -1}]}"#),
            "routes[0].host"
        );
        // Strings with braces, commas and escaped quotes do not confuse the scan.
        assert_eq!(path_of_error(r#"{"a": {"b\",{": 1, "b": "}],"}}"#), "a.b");
    }

    #[test]
    fn top_level_and_out_of_range_positions_are_harmless() {
        assert_eq!(path_at(b"", 0, 0), "");
        assert_eq!(path_at(b"{\"a\":1}", 99, 99), "");
        assert_eq!(path_at(b"[1,2", 1, 4), "[1]");
    }
}
