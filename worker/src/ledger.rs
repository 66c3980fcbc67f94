//! The budget Durable Object's protocol and its one step: what the Worker asks a key's ledger,
//! and what the ledger answers. The decisions are the core's ([`Ledger::admit`],
//! [`Ledger::settle`]); this module only moves them in and out of requests and storage.
//!
//! Pure code (no Worker runtime types): host-tested. The runtime half is `budget_object`.
//!
//! Protocol: the Worker POSTs `{"key_id": "<12 hex>"}` to `/admit` and `{"key_id": …, "cost_usd":
//! "<decimal>"}` to `/settle` on the object named [`object_name`]. The object answers `/admit`
//! with `204` (admitted: a reservation is held), `200` (no limit for this key: nothing held) or
//! `429` with the core's JSON error and headers (refused), and `/settle` with `204`. Anything
//! else — an error status, no answer, a thrown exception — is a store failure, and the call
//! passes unchecked (docs/WORKER.md).

use llm_cost_core::{Budgets, Ledger, Usd};
use serde_json::Value;

/// The storage key under which an object keeps its ledger (one object per budget key).
pub const STORAGE_KEY: &str = "ledger";

/// The Durable Object name of `key_id`'s ledger (the same key the filter uses in shared data).
pub fn object_name(key_id: &str) -> String {
    Budgets::storage_key(key_id)
}

/// What the Worker asks of a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Admit a call, holding the configured reservation.
    Admit,
    /// End an admitted call: drop its reservation, add its cost.
    Settle(Usd),
}

impl Op {
    /// The request path of this operation.
    pub fn path(&self) -> &'static str {
        match self {
            Op::Admit => "/admit",
            Op::Settle(_) => "/settle",
        }
    }

    /// The request body for `key_id`.
    pub fn body(&self, key_id: &str) -> String {
        let mut body = serde_json::Map::new();
        body.insert("key_id".into(), Value::String(key_id.to_owned()));
        if let Op::Settle(cost) = self {
            body.insert("cost_usd".into(), Value::String(cost.to_decimal_string()));
        }
        Value::Object(body).to_string()
    }

    /// Reads a request: its path and body. The error says what is wrong (answered with `400`).
    pub fn parse(path: &str, body: &[u8]) -> Result<(String, Op), String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
        let key_id = value
            .get("key_id")
            .and_then(Value::as_str)
            .filter(|k| !k.is_empty())
            .ok_or("body: `key_id` missing")?
            .to_owned();
        let op = match path {
            "/admit" => Op::Admit,
            "/settle" => {
                let text = value
                    .get("cost_usd")
                    .and_then(Value::as_str)
                    .ok_or("body: `cost_usd` missing")?;
                Op::Settle(Usd::parse(text).map_err(|e| format!("body: `cost_usd` is {e}"))?)
            }
            other => return Err(format!("no operation at {other}")),
        };
        Ok((key_id, op))
    }
}

/// The object's answer to one operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `204`, `200` or `429` (see the module header).
    pub status: u16,
    /// Response headers (the `429`'s content type and `retry-after`).
    pub headers: Vec<(&'static str, String)>,
    /// Response body (the `429`'s JSON error; empty otherwise).
    pub body: String,
}

impl Reply {
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }
}

/// Applies `op` for `key_id` to the stored ledger (`stored`: its hex text, if any). Returns the
/// text to store (`None`: leave storage as it is) and the answer.
pub fn apply(
    budgets: &Budgets,
    key_id: &str,
    op: &Op,
    stored: Option<&str>,
    now_unix_ms: u64,
) -> (Option<String>, Reply) {
    let ledger = Ledger::decode(&stored.map(from_hex).unwrap_or_default());
    match op {
        Op::Admit => {
            let Some(limit) = budgets.limit_for(key_id) else {
                return (None, Reply::empty(200));
            };
            match ledger.admit(budgets, limit, now_unix_ms) {
                Ok(next) => (Some(to_hex(&next.encode())), Reply::empty(204)),
                Err(rejection) => (
                    None,
                    Reply {
                        status: 429,
                        headers: rejection.headers(),
                        body: rejection.body_json(key_id),
                    },
                ),
            }
        }
        Op::Settle(cost) => {
            let next = ledger.settle(budgets, *cost, now_unix_ms);
            (Some(to_hex(&next.encode())), Reply::empty(204))
        }
    }
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex text to bytes; anything malformed is empty (a fresh ledger).
fn from_hex(text: &str) -> Vec<u8> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return Vec::new();
    }
    let nibble = |d: u8| (d as char).to_digit(16).map(|n| n as u8);
    let mut out = Vec::with_capacity(digits.len() / 2);
    for pair in digits.chunks(2) {
        match (nibble(pair[0]), nibble(pair[1])) {
            (Some(hi), Some(lo)) => out.push(hi << 4 | lo),
            _ => return Vec::new(),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_cost_core::MeterConfig;

    const NOW: u64 = 1_795_608_000_000; // 2026-11-25T12:00:00Z
    const KEY: &str = "0123456789ab";

    fn budgets(json: &str) -> Budgets {
        MeterConfig::from_json(format!(r#"{{"budgets": {json}}}"#).as_bytes())
            .expect("valid budgets")
            .budgets
    }

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    /// Runs `ops` in order against one stored ledger, as the object does; returns the statuses.
    fn run(b: &Budgets, ops: &[Op], stored: &mut Option<String>) -> Vec<u16> {
        ops.iter()
            .map(|op| {
                let (next, reply) = apply(b, KEY, op, stored.as_deref(), NOW);
                if next.is_some() {
                    *stored = next;
                }
                reply.status
            })
            .collect()
    }

    #[test]
    fn requests_round_trip_through_their_text() {
        for op in [
            Op::Admit,
            Op::Settle(usd("0.000123456789012345678901234567")),
        ] {
            assert_eq!(
                Op::parse(op.path(), op.body(KEY).as_bytes()),
                Ok((KEY.to_owned(), op.clone()))
            );
        }
        assert!(Op::parse("/admit", b"{}").is_err());
        assert!(Op::parse("/settle", br#"{"key_id":"k","cost_usd":"-1"}"#).is_err());
        assert!(Op::parse("/drop", br#"{"key_id":"k"}"#).is_err());
        assert!(Op::parse("/admit", b"not json").is_err());
    }

    #[test]
    fn admits_up_to_the_limit_then_answers_the_filters_429() {
        let b = budgets(r#"{"limits_usd": {"0123456789ab": "0.3"}, "reserve_usd": "0.1"}"#);
        let mut stored = None;
        let cost = Op::Settle(usd("0.1"));
        let statuses = run(
            &b,
            &[
                Op::Admit,
                cost.clone(),
                Op::Admit,
                cost.clone(),
                Op::Admit,
                cost,
            ],
            &mut stored,
        );
        assert_eq!(statuses, [204; 6]);
        let (next, refused) = apply(&b, KEY, &Op::Admit, stored.as_deref(), NOW);
        assert_eq!(next, None, "a refusal stores nothing");
        assert_eq!(refused.status, 429);
        let body: Value = serde_json::from_str(&refused.body).unwrap();
        assert_eq!(body["error"]["code"], "budget_exceeded");
        assert_eq!(body["error"]["spent_usd"], "0.3");
        assert_eq!(body["error"]["limit_usd"], "0.3");
        assert!(refused
            .headers
            .contains(&("content-type", "application/json".to_owned())));
    }

    #[test]
    fn concurrent_admissions_hold_one_reservation_each() {
        // 4.5 calls' worth of limit, each call reserving exactly its cost: 5 fit, whatever the
        // order of admissions and settlements, and the spend is the sum of the 5.
        let b = budgets(r#"{"default_limit_usd": "0.45", "reserve_usd": "0.1"}"#);
        let mut stored = None;
        let admits = run(&b, &vec![Op::Admit; 20], &mut stored);
        assert_eq!(admits.iter().filter(|s| **s == 204).count(), 5);
        run(&b, &vec![Op::Settle(usd("0.1")); 5], &mut stored);
        let ledger = Ledger::decode(&from_hex(stored.as_deref().unwrap()));
        assert_eq!((ledger.spent, ledger.reserved), (usd("0.5"), Usd::ZERO));
    }

    #[test]
    fn keys_without_a_limit_hold_nothing_and_bad_storage_is_a_fresh_ledger() {
        let b = budgets(r#"{"limits_usd": {"ffffffffffff": "1"}}"#);
        assert_eq!(
            apply(&b, KEY, &Op::Admit, None, NOW),
            (None, Reply::empty(200))
        );
        let b = budgets(r#"{"default_limit_usd": "1"}"#);
        for garbage in ["zz", "abc", ""] {
            let (next, reply) = apply(&b, KEY, &Op::Admit, Some(garbage), NOW);
            assert_eq!(reply.status, 204);
            let ledger = Ledger::decode(&from_hex(&next.unwrap()));
            assert_eq!(
                ledger.reserved,
                usd(llm_cost_core::budget::DEFAULT_RESERVE_USD)
            );
        }
        assert_eq!(object_name(KEY), "llm_cost.budget.0123456789ab");
    }
}
