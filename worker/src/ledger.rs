//! The budget Durable Object's protocol and its one step: what the Worker asks a ledger (one
//! per budget rule and value), and what the ledger answers. The decisions are the core's
//! ([`Ledger::admit`], [`Ledger::release`], [`Ledger::settle`]); this module only moves them in
//! and out of requests and storage.
//!
//! Pure code (no Worker runtime types): host-tested. The runtime half is `budget_object`.
//!
//! Protocol: the Worker POSTs `{"rule": <index>, "value": "<the call's value>"}` (and
//! `"cost_usd": "<decimal>"` to `/settle`) to `/admit`, `/release` or `/settle` on the object
//! named [`object_name`]. The object applies the operation to its stored ledger atomically and
//! answers `200` with the ledger as it was before and the clock it used (`{"ledger": "<hex>",
//! "now_ms": N}`); the Worker replays the same pure step on that ledger to learn the decision
//! (admitted, over a shadow rule, refused) or the thresholds crossed, with the core's own types.
//! Anything else — an error status, no answer, a thrown exception — is a store failure, and the
//! call passes unchecked (docs/WORKER.md).

use llm_cost_core::{Budgets, Charge, Decision, Ledger, Usd};
use serde_json::Value;

/// The storage key under which an object keeps its ledger (one object per ledger).
pub const STORAGE_KEY: &str = "ledger";

/// The Durable Object name of `charge`'s ledger (the key the filter uses in shared data).
pub fn object_name(budgets: &Budgets, charge: &Charge) -> String {
    budgets.storage_key(charge)
}

/// What the Worker asks of a ledger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Admit a call, holding the configured reservation (unless an enforced rule refuses).
    Admit,
    /// Drop an admitted call's reservation without a cost (another rule refused the call).
    Release,
    /// End an admitted call: drop its reservation, add its cost.
    Settle(Usd),
}

impl Op {
    /// The request path of this operation.
    pub fn path(&self) -> &'static str {
        match self {
            Op::Admit => "/admit",
            Op::Release => "/release",
            Op::Settle(_) => "/settle",
        }
    }

    /// The request body for `charge`.
    pub fn body(&self, charge: &Charge) -> String {
        let mut body = serde_json::Map::new();
        body.insert("rule".into(), Value::from(charge.rule as u64));
        body.insert("value".into(), Value::String(charge.value.clone()));
        if let Op::Settle(cost) = self {
            body.insert("cost_usd".into(), Value::String(cost.to_decimal_string()));
        }
        Value::Object(body).to_string()
    }

    /// Reads a request against `budgets`: the charge it is about (its limit from the object's
    /// own configuration) and the operation. The error says what is wrong (answered `400`).
    pub fn parse(budgets: &Budgets, path: &str, body: &[u8]) -> Result<(Charge, Op), String> {
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("body: {e}"))?;
        let rule = value
            .get("rule")
            .and_then(Value::as_u64)
            .and_then(|r| usize::try_from(r).ok())
            .ok_or("body: `rule` missing")?;
        let call_value = value
            .get("value")
            .and_then(Value::as_str)
            .ok_or("body: `value` missing")?;
        let limit = budgets
            .rules
            .get(rule)
            .and_then(|r| r.limit_for(call_value))
            .ok_or("no such rule, or no limit for this value")?;
        let charge = Charge {
            rule,
            value: call_value.to_owned(),
            limit,
        };
        let op = match path {
            "/admit" => Op::Admit,
            "/release" => Op::Release,
            "/settle" => {
                let text = value
                    .get("cost_usd")
                    .and_then(Value::as_str)
                    .ok_or("body: `cost_usd` missing")?;
                Op::Settle(Usd::parse(text).map_err(|e| format!("body: `cost_usd` is {e}"))?)
            }
            other => return Err(format!("no operation at {other}")),
        };
        Ok((charge, op))
    }
}

/// Applies `op` for `charge` to the stored ledger (`stored`: its hex text, if any) at
/// `now_unix_ms`. Returns the text to store (`None`: leave storage as it is) and the `200`
/// answer's body.
pub fn apply(
    budgets: &Budgets,
    charge: &Charge,
    op: &Op,
    stored: Option<&str>,
    now_unix_ms: u64,
) -> (Option<String>, String) {
    let before = Ledger::decode(&stored.map(from_hex).unwrap_or_default());
    let next = match op {
        Op::Admit => match before.admit(budgets, charge, now_unix_ms) {
            Decision::Admitted(next) | Decision::WouldExceed(next, _) => Some(next),
            Decision::Refused(_) => None,
        },
        Op::Release => Some(before.release(budgets, charge, now_unix_ms)),
        Op::Settle(cost) => Some(before.settle(budgets, charge, *cost, now_unix_ms).0),
    };
    let reply = serde_json::json!({"ledger": to_hex(&before.encode()), "now_ms": now_unix_ms});
    (next.map(|n| to_hex(&n.encode())), reply.to_string())
}

/// Reads the object's answer: the ledger before the operation, and the object's clock. Replaying
/// the operation on it (`Ledger::admit`, `Ledger::settle`) gives the object's decision.
pub fn parse_reply(body: &[u8]) -> Option<(Ledger, u64)> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let bytes = from_hex(value.get("ledger")?.as_str()?);
    if bytes.len() != llm_cost_core::budget::LEDGER_BYTES {
        return None;
    }
    Some((Ledger::decode(&bytes), value.get("now_ms")?.as_u64()?))
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

    fn charge(b: &Budgets, value: &str) -> Charge {
        let limit = b.rules[0].limit_for(value).expect("a limit");
        Charge {
            rule: 0,
            value: value.to_owned(),
            limit,
        }
    }

    /// Runs `op` as the object does and replays it as the Worker does: the decision of an admit.
    fn admit(b: &Budgets, c: &Charge, stored: &mut Option<String>) -> Decision {
        let (next, reply) = apply(b, c, &Op::Admit, stored.as_deref(), NOW);
        if next.is_some() {
            *stored = next;
        }
        let (before, now) = parse_reply(reply.as_bytes()).expect("a reply");
        before.admit(b, c, now)
    }

    fn run(b: &Budgets, c: &Charge, op: Op, stored: &mut Option<String>) {
        let (next, _) = apply(b, c, &op, stored.as_deref(), NOW);
        *stored = next.or(stored.take());
    }

    #[test]
    fn requests_round_trip_through_their_text() {
        let b = budgets(r#"{"limits_usd": {"0123456789ab": "1"}}"#);
        let c = charge(&b, KEY);
        for op in [
            Op::Admit,
            Op::Release,
            Op::Settle(usd("0.000123456789012345678901234567")),
        ] {
            assert_eq!(
                Op::parse(&b, op.path(), op.body(&c).as_bytes()),
                Ok((c.clone(), op.clone()))
            );
        }
        assert!(Op::parse(&b, "/admit", b"{}").is_err());
        assert!(Op::parse(&b, "/admit", br#"{"rule":0,"value":"ffffffffffff"}"#).is_err());
        assert!(Op::parse(&b, "/admit", br#"{"rule":7,"value":"0123456789ab"}"#).is_err());
        assert!(Op::parse(
            &b,
            "/settle",
            br#"{"rule":0,"value":"0123456789ab","cost_usd":"-1"}"#
        )
        .is_err());
        assert!(Op::parse(&b, "/drop", br#"{"rule":0,"value":"0123456789ab"}"#).is_err());
        assert!(parse_reply(b"{}").is_none());
    }

    #[test]
    fn admits_up_to_the_limit_then_the_replayed_decision_is_the_filters_429() {
        let b = budgets(r#"{"limits_usd": {"0123456789ab": "0.3"}, "reserve_usd": "0.1"}"#);
        let c = charge(&b, KEY);
        let mut stored = None;
        for _ in 0..3 {
            assert!(matches!(admit(&b, &c, &mut stored), Decision::Admitted(_)));
            run(&b, &c, Op::Settle(usd("0.1")), &mut stored);
        }
        let before = stored.clone();
        let Decision::Refused(rejection) = admit(&b, &c, &mut stored) else {
            panic!("over the limit");
        };
        assert_eq!(stored, before, "a refusal stores nothing");
        let body: Value = serde_json::from_str(&rejection.body_json()).unwrap();
        assert_eq!(body["error"]["code"], "budget_exceeded");
        assert_eq!(body["error"]["spent_usd"], "0.3");
    }

    #[test]
    fn concurrent_admissions_hold_one_reservation_each_and_releases_give_them_back() {
        let b = budgets(r#"{"default_limit_usd": "0.45", "reserve_usd": "0.1"}"#);
        let c = charge(&b, KEY);
        let mut stored = None;
        let admitted = (0..20)
            .filter(|_| matches!(admit(&b, &c, &mut stored), Decision::Admitted(_)))
            .count();
        assert_eq!(admitted, 5);
        run(&b, &c, Op::Release, &mut stored);
        for _ in 0..4 {
            run(&b, &c, Op::Settle(usd("0.1")), &mut stored);
        }
        let ledger = Ledger::decode(&from_hex(stored.as_deref().unwrap()));
        assert_eq!((ledger.spent, ledger.reserved), (usd("0.4"), Usd::ZERO));
    }

    #[test]
    fn a_shadow_rule_admits_over_its_limit_and_bad_storage_is_a_fresh_ledger() {
        let b = budgets(
            r#"{"rules": [{"dimension": "key_id", "default_limit_usd": "0.1", "mode": "shadow"}], "reserve_usd": "0.1"}"#,
        );
        let c = charge(&b, KEY);
        let mut stored = None;
        assert!(matches!(admit(&b, &c, &mut stored), Decision::Admitted(_)));
        assert!(matches!(
            admit(&b, &c, &mut stored),
            Decision::WouldExceed(..)
        ));
        for garbage in ["zz", "abc", ""] {
            let mut stored = Some(garbage.to_owned());
            assert!(matches!(admit(&b, &c, &mut stored), Decision::Admitted(_)));
        }
        assert_eq!(object_name(&b, &c), "llm_cost.budget.0.key_id.0123456789ab");
    }
}
