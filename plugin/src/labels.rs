//! Attribution metric labels with bounded cardinality: at most `max_label_values` distinct values
//! per label per Envoy process, the rest counted under `other`.
//!
//! The admitted values of a label live in Envoy shared data (one key per label, values one per
//! line, changed by compare-and-swap through `budget::update_shared`), so every worker VM of one
//! Envoy admits the same values. Each VM caches what it has seen admitted: a value already known
//! costs no host call, and once a label is full (values are never removed) nothing does.

use std::collections::{HashMap, HashSet};

use crate::budget;

/// The label value of a call without a value for the dimension.
pub const NONE: &str = "none";
/// The label value past `max_label_values`.
pub const OTHER: &str = "other";

/// One VM's view of the admitted label values.
#[derive(Debug, Default)]
pub struct LabelValues {
    admitted: HashMap<String, HashSet<String>>,
    full: HashSet<String>,
}

impl LabelValues {
    /// The value to count `value` under for `label`: itself while the label has room (or it was
    /// admitted before), [`OTHER`] past `max` values, [`NONE`] when the call had no value.
    pub fn admit(&mut self, label: &str, value: Option<&str>, max: usize) -> String {
        let Some(value) = value else {
            return NONE.to_owned();
        };
        if self
            .admitted
            .get(label)
            .is_some_and(|set| set.contains(value))
        {
            return value.to_owned();
        }
        if self.full.contains(label) {
            return OTHER.to_owned();
        }
        let key = format!("llm_cost.label_values.{label}");
        let mut seen: Vec<String> = Vec::new();
        let mut admitted = false;
        let stored = budget::update_shared(&key, |bytes| {
            let (next, is_in) = add_value(bytes, value, max);
            seen = values(next.as_deref().unwrap_or(bytes));
            admitted = is_in;
            next
        });
        let full = seen.len() >= max;
        let set = self.admitted.entry(label.to_owned()).or_default();
        set.extend(seen);
        if full {
            self.full.insert(label.to_owned());
        }
        if stored && admitted {
            value.to_owned()
        } else {
            OTHER.to_owned()
        }
    }
}

fn values(bytes: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(bytes)
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The stored list with `value` added if there is room: `(bytes to write, is value admitted)`;
/// nothing to write when it is already in or the list is full.
fn add_value(stored: &[u8], value: &str, max: usize) -> (Option<Vec<u8>>, bool) {
    let current = values(stored);
    if current.iter().any(|v| v == value) {
        return (None, true);
    }
    if current.len() >= max {
        return (None, false);
    }
    let mut next = stored.to_vec();
    if !next.is_empty() && !next.ends_with(b"\n") {
        next.push(b'\n');
    }
    next.extend_from_slice(value.as_bytes());
    next.push(b'\n');
    (Some(next), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_added_until_the_limit_then_refused() {
        let (next, ok) = add_value(b"", "search", 2);
        assert!(ok);
        let next = next.unwrap();
        assert_eq!(next, b"search\n");
        assert_eq!(add_value(&next, "search", 2), (None, true));
        let (next, ok) = add_value(&next, "ads", 2);
        assert!(ok);
        let next = next.unwrap();
        assert_eq!(values(&next), vec!["search", "ads"]);
        assert_eq!(add_value(&next, "third", 2), (None, false));
        assert_eq!(add_value(&next, "ads", 2), (None, true));
    }
}
