//! Budget ledgers in Envoy shared data. The core decides (`Budgets::charges`, `Ledger::admit`,
//! `Ledger::release`, `Ledger::settle`); this file only reads each rule's ledger bytes and
//! compare-and-swaps the new ones.
//!
//! Shared data is per Envoy process and `vm_id`: every worker thread of one Envoy sees the same
//! ledgers, other Envoys do not, and a restart starts from zero (docs/BUDGETS.md).

use llm_cost_core::budget::{threshold_marks, Mode, Period, THRESHOLDS_PERCENT};
use llm_cost_core::{BudgetMark, Budgets, Charge, CostRecord, Decision, Ledger, Rejection, Usd};
use proxy_wasm::hostcalls;

use crate::metrics::{label, PREFIX};
use proxy_wasm::types::{Bytes, Status};

/// Counter of calls a budget applied to while the collector's spend was not known
/// (`budgets.on_unknown_spend`: admitted against this Envoy's ledgers, or refused).
pub const SPEND_UNKNOWN: &str = "llmcost.budget_spend_unknown_total";

/// Compare-and-swap attempts before giving up (then the call passes: metering never blocks).
const CAS_ATTEMPTS: usize = 32;

/// A key that always exists, so that its compare-and-swap token can guard a first write.
const CAS_ANCHOR_KEY: &str = "llm_cost.cas_anchor";

/// The budgets' answer for one call.
#[derive(Debug)]
pub enum Admission {
    /// Every enforced rule admitted it: `held` are the charges with a reservation (settle them
    /// when the call ends); `would_exceed` the shadow rules it is over.
    Admitted {
        /// Charges holding a reservation.
        held: Vec<Charge>,
        /// Shadow rules over their limit, for the record.
        would_exceed: Vec<BudgetMark>,
    },
    /// An enforced rule is spent: answer 429 (every reservation already released).
    Refused(Rejection),
}

/// Admits or refuses a call on each of its `charges`: enforced rules first (one refusal releases
/// the reservations already taken), then shadow rules, which never refuse. A ledger that cannot
/// be read or written is skipped (fail open).
pub fn admit(budgets: &Budgets, charges: Vec<Charge>, now_unix_ms: u64) -> Admission {
    admit_in(&mut HostSharedData, budgets, charges, now_unix_ms)
}

fn admit_in(
    store: &mut impl SharedData,
    budgets: &Budgets,
    charges: Vec<Charge>,
    now_unix_ms: u64,
) -> Admission {
    let (enforced, shadow): (Vec<Charge>, Vec<Charge>) = charges
        .into_iter()
        .partition(|c| budgets.rules.get(c.rule).map(|r| r.mode) != Some(Mode::Shadow));
    let mut held = Vec::new();
    let mut would_exceed = Vec::new();
    for charge in enforced.into_iter().chain(shadow) {
        match decide(store, budgets, &charge, now_unix_ms) {
            Some(Decision::Admitted(_)) => held.push(charge),
            Some(Decision::WouldExceed(_, rejection)) => {
                would_exceed.push(rejection.mark());
                held.push(charge);
            }
            Some(Decision::Refused(rejection)) => {
                for charge in &held {
                    update(store, &budgets.storage_key(charge), |ledger| {
                        Some(ledger.release(budgets, charge, now_unix_ms))
                    });
                }
                return Admission::Refused(rejection);
            }
            None => {}
        }
    }
    Admission::Admitted { held, would_exceed }
}

/// One ledger's decision, stored; `None` when the store kept refusing.
fn decide(
    store: &mut impl SharedData,
    budgets: &Budgets,
    charge: &Charge,
    now_unix_ms: u64,
) -> Option<Decision> {
    let mut decision = None;
    let stored = update(store, &budgets.storage_key(charge), |ledger| {
        let d = ledger.admit(budgets, charge, now_unix_ms);
        let next = match &d {
            Decision::Admitted(next) | Decision::WouldExceed(next, _) => Some(*next),
            Decision::Refused(_) => None,
        };
        decision = Some(d);
        next
    });
    if stored {
        decision
    } else {
        None
    }
}

/// Takes a collector's spend answer for `period` into the ledgers (`Ledger::synced`, each a
/// compare-and-swap); returns how many ledgers were updated, `None` if the answer is no spend
/// answer.
pub fn sync(budgets: &Budgets, period: Period, answer: &[u8], now_unix_ms: u64) -> Option<u64> {
    let entries = llm_cost_core::budget::parse_spend_answer(answer)?;
    let mut updated = 0;
    for (dimension, value, spent) in entries {
        for charge in budgets.synced_charges(&dimension, &value, period) {
            let key = budgets.storage_key(&charge);
            if update(&mut HostSharedData, &key, |l| {
                Some(l.synced(period, spent, now_unix_ms))
            }) {
                updated += 1;
            }
        }
    }
    Some(updated)
}

/// Swaps an admitted call's reservation for its cost; returns the thresholds this crossed first
/// in the period (the compare-and-swap makes each one come out of exactly one call).
pub fn settle(budgets: &Budgets, charge: &Charge, cost: Usd, now_unix_ms: u64) -> Vec<BudgetMark> {
    settle_in(&mut HostSharedData, budgets, charge, cost, now_unix_ms)
}

fn settle_in(
    store: &mut impl SharedData,
    budgets: &Budgets,
    charge: &Charge,
    cost: Usd,
    now_unix_ms: u64,
) -> Vec<BudgetMark> {
    let mut crossed = (Usd::ZERO, 0u8);
    let stored = update(store, &budgets.storage_key(charge), |ledger| {
        let (next, bits) = ledger.settle(budgets, charge, cost, now_unix_ms);
        crossed = (next.spent, bits);
        Some(next)
    });
    if !stored {
        return Vec::new();
    }
    threshold_marks(budgets, charge, crossed.0, crossed.1)
}

/// Counters a finished call's budget events add to: `llmcost.budget_would_exceed_total` per
/// shadow rule it is over, `llmcost.budget_threshold_total` per threshold it crossed. Labels are
/// bounded: the rule's dimension name (from the configuration) and the percentage (50, 80, 100) —
/// never a value such as a team or a `key_id`. Names end in `.dimension=<name>` so one
/// `stats_tags` rule (`(\.dimension=([a-z0-9_]+))$`) labels both.
pub fn metric_increments(record: &CostRecord) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for mark in &record.budget_would_exceed {
        out.push((would_exceed_metric(&mark.dimension), 1));
    }
    for mark in &record.budget_thresholds {
        // An operator's signal, once per threshold and period: the value is the dimension's
        // (a hash for `key_id` and hashed dimensions), never a key.
        log::info!(
            "llm-cost: budget threshold {}% reached: {} {} spent {} USD of {} USD (period {})",
            mark.percent.unwrap_or(0),
            mark.dimension,
            mark.value,
            mark.spent_usd,
            mark.limit_usd,
            mark.period
        );
        out.push((
            threshold_metric(mark.percent.unwrap_or(0), &mark.dimension),
            1,
        ));
    }
    out
}

/// The budget counters `budgets` can add to, for the root to define at configure so they are
/// exported from the start at 0: a counter that first appears at 1 is invisible to PromQL's
/// `increase()`, and the first threshold event of a rule would not fire `LlmBudgetThresholdReached`.
pub fn metric_names(budgets: &Budgets) -> Vec<String> {
    let mut out = Vec::new();
    if budgets.sync_interval_s > 0 {
        out.push(SPEND_UNKNOWN.to_owned());
        for what in ["syncs", "sync_failures", "sync_unauthorized"] {
            out.push(format!("{PREFIX}.budget_{what}_total"));
        }
    }
    for rule in &budgets.rules {
        let dimension = rule.dimension.as_str();
        out.extend(
            THRESHOLDS_PERCENT
                .iter()
                .map(|p| threshold_metric(*p, dimension)),
        );
        if rule.mode == Mode::Shadow {
            out.push(would_exceed_metric(dimension));
        }
    }
    out.sort();
    out.dedup();
    out
}

fn would_exceed_metric(dimension: &str) -> String {
    format!(
        "{PREFIX}.budget_would_exceed_total.dimension={}",
        label(dimension)
    )
}

fn threshold_metric(percent: u8, dimension: &str) -> String {
    format!(
        "{PREFIX}.budget_threshold_total.threshold={percent}.dimension={}",
        label(dimension)
    )
}

/// The host's shared key-value store, as proxy-wasm exposes it.
trait SharedData {
    /// The value and its compare-and-swap token; `(None, None)` for a missing key.
    fn get(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status>;
    /// Stores `value` if `cas` matches (`None`: the host's unconditional write).
    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status>;
}

/// Shared data through the proxy-wasm host calls.
struct HostSharedData;

impl SharedData for HostSharedData {
    fn get(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
        hostcalls::get_shared_data(key)
    }

    fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
        hostcalls::set_shared_data(key, Some(value), cas)
    }
}

/// Applies `change` to the stored ledger with compare-and-swap; `None` from `change` writes
/// nothing. False when the store kept refusing (contention or a host error).
fn update(
    store: &mut impl SharedData,
    key: &str,
    mut change: impl FnMut(Ledger) -> Option<Ledger>,
) -> bool {
    update_bytes(store, key, |bytes| {
        change(Ledger::decode(bytes)).map(|next| next.encode().to_vec())
    })
}

/// [`update`] for any value kept in shared data (e.g. a metric label's admitted values, see
/// `labels`): `change` gets the stored bytes (empty when missing).
pub fn update_shared(key: &str, change: impl FnMut(&[u8]) -> Option<Vec<u8>>) -> bool {
    update_bytes(&mut HostSharedData, key, change)
}

fn update_bytes(
    store: &mut impl SharedData,
    key: &str,
    mut change: impl FnMut(&[u8]) -> Option<Vec<u8>>,
) -> bool {
    for _ in 0..CAS_ATTEMPTS {
        let (bytes, cas) = match store.get(key) {
            Ok(found) => found,
            Err(status) => {
                log::warn!("llm-cost: shared data {key} unreadable: {status:?}");
                return false;
            }
        };
        let Some(next) = change(bytes.as_deref().unwrap_or_default()) else {
            return true;
        };
        let cas = match cas {
            Some(cas) => Some(cas),
            None => match creation_token(store) {
                Some(token) => Some(token),
                None => return false,
            },
        };
        match store.set(key, &next, cas) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(status) => {
                log::warn!("llm-cost: shared data {key} not stored: {status:?}");
                return false;
            }
        }
    }
    log::warn!("llm-cost: shared data {key} still contended after {CAS_ATTEMPTS} attempts");
    false
}

/// [`creation_token`] through the host calls (live prices create their shared keys with it).
pub(crate) fn host_creation_token() -> Option<u32> {
    creation_token(&mut HostSharedData)
}

/// The compare-and-swap token that makes a write to a missing key succeed only while the key is
/// still missing, so two workers creating the same ledger cannot overwrite each other.
///
/// Hosts differ. ngx_wasm_module (Kong) writes a missing key only for token 0, and refuses 0 for
/// an existing one: 0 is already create-if-absent there. proxy-wasm-cpp-host (Envoy) takes 0 as
/// "unconditional" and ignores the token of a missing key, but its tokens come from one counter
/// over all keys: a token issued to another key's write is never the current token of ours, so
/// it creates a missing key and refuses an existing one. The anchor key provides such a token;
/// a host that refuses it for a missing key is of the first kind, and gets 0.
fn creation_token(store: &mut impl SharedData) -> Option<u32> {
    let anchor = match store.get(CAS_ANCHOR_KEY) {
        Ok((_, Some(token))) => token,
        Ok((_, None)) => {
            // Its value never matters: whoever creates it first, any token it holds will do.
            let _ = store.set(CAS_ANCHOR_KEY, b"", None);
            match store.get(CAS_ANCHOR_KEY) {
                Ok((_, Some(token))) => token,
                _ => return Some(0),
            }
        }
        Err(status) => {
            log::warn!("llm-cost: shared data unreadable: {status:?}");
            return None;
        }
    };
    Some(if host_takes_zero_as_create(store, anchor) {
        0
    } else {
        anchor
    })
}

/// Whether the host creates missing keys only for token 0 (ngx_wasm_module), probed with a key
/// of its own: a write with another key's token to a missing key is refused there and accepted by
/// proxy-wasm-cpp-host, which keeps the probe key (later probes find it and write nothing). The
/// probe has to decide before the ledger is written: ngx_wasm_module counts tokens per key, so the
/// anchor's token (1) can equal that of a ledger another worker just created, and would overwrite
/// it.
fn host_takes_zero_as_create(store: &mut impl SharedData, anchor: u32) -> bool {
    const PROBE_KEY: &str = "llm_cost.cas_probe";
    if let Ok((_, Some(_))) = store.get(PROBE_KEY) {
        // Created by an earlier probe with a foreign token: proxy-wasm-cpp-host semantics.
        return false;
    }
    match store.set(PROBE_KEY, b"", Some(anchor)) {
        Ok(()) => false,
        Err(Status::CasMismatch) => matches!(store.get(PROBE_KEY), Ok((_, None))),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use llm_cost_core::{BudgetFacts, MeterConfig};
    use std::collections::HashMap;

    /// How a host treats a write's compare-and-swap token.
    #[derive(Clone, Copy)]
    enum Host {
        /// proxy-wasm-cpp-host (Envoy): 0 writes unconditionally, a missing key ignores the token,
        /// tokens come from one counter over all keys.
        ProxyWasmCppHost,
        /// ngx_wasm_module (Kong): the token must equal the key's (0 for a missing key); each
        /// key counts its own writes.
        NgxWasmModule,
    }

    /// An in-memory store with a host's documented compare-and-swap rules, and a rival worker
    /// that writes the ledger key between our read and our write, once.
    struct Store {
        host: Host,
        data: HashMap<String, (Vec<u8>, u32)>,
        next_token: u32,
        rival: Option<Ledger>,
    }

    impl Store {
        fn new(host: Host) -> Store {
            Store {
                host,
                data: HashMap::new(),
                next_token: 1,
                rival: None,
            }
        }

        fn ledger(&self, key: &str) -> Ledger {
            Ledger::decode(&self.data[key].0)
        }

        fn write(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
            let current = self.data.get(key).map(|(_, token)| *token);
            let token = match (self.host, current) {
                (Host::ProxyWasmCppHost, Some(now)) if cas != 0 && cas != now => {
                    return Err(Status::CasMismatch)
                }
                (Host::ProxyWasmCppHost, _) => {
                    self.next_token += 1;
                    self.next_token
                }
                (Host::NgxWasmModule, now) if cas != now.unwrap_or(0) => {
                    return Err(Status::CasMismatch)
                }
                (Host::NgxWasmModule, now) => now.unwrap_or(0) + 1,
            };
            self.data.insert(key.to_owned(), (value.to_vec(), token));
            Ok(())
        }
    }

    impl SharedData for Store {
        fn get(&mut self, key: &str) -> Result<(Option<Bytes>, Option<u32>), Status> {
            Ok(match self.data.get(key) {
                Some((value, token)) => (Some(value.clone()), Some(*token)),
                None => (None, None),
            })
        }

        fn set(&mut self, key: &str, value: &[u8], cas: Option<u32>) -> Result<(), Status> {
            if key == KEY {
                if let Some(rival) = self.rival.take() {
                    // The rival read the key missing too and writes first, as the old code did.
                    self.write(key, &rival.encode(), 0)?;
                }
            }
            self.write(key, value, cas.unwrap_or(0))
        }
    }

    const KEY: &str = "llm_cost.budget.k";

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    fn reserve(amount: &str) -> impl FnMut(Ledger) -> Option<Ledger> + '_ {
        move |mut ledger| {
            ledger.reserved = ledger.reserved.checked_add(usd(amount)).unwrap();
            Some(ledger)
        }
    }

    #[test]
    fn two_workers_creating_one_ledger_keep_both_reservations() {
        for host in [Host::ProxyWasmCppHost, Host::NgxWasmModule] {
            let mut store = Store::new(host);
            let mut rival = Ledger::default();
            rival.reserved = usd("0.01");
            store.rival = Some(rival);
            assert!(update(&mut store, KEY, reserve("0.02")));
            assert_eq!(store.ledger(KEY).reserved, usd("0.03"));
        }
    }

    #[test]
    fn a_missing_ledger_is_created_on_either_host() {
        for host in [Host::ProxyWasmCppHost, Host::NgxWasmModule] {
            let mut store = Store::new(host);
            assert!(update(&mut store, KEY, reserve("0.02")));
            assert!(update(&mut store, KEY, reserve("0.01")));
            assert_eq!(store.ledger(KEY).reserved, usd("0.03"));
        }
    }

    fn rules(json: &str) -> MeterConfig {
        MeterConfig::from_json(json.as_bytes()).unwrap()
    }

    fn facts(key_id: &str, team: &str) -> BudgetFacts {
        BudgetFacts {
            key_id: Some(key_id.to_owned()),
            provider: "openrouter",
            attributes: [("team".to_owned(), team.to_owned())].into(),
            ..BudgetFacts::default()
        }
    }

    #[test]
    fn every_budget_counter_a_configuration_can_add_to_is_defined_up_front() {
        let config = rules(
            r#"{"attribution":{"dimensions":{"team":{"from":["header:x-team"]}}},
                "budgets":{"rules":[{"dimension":"team","default_limit_usd":"10"},
                                    {"dimension":"key_id","limits_usd":{"0123456789ab":"1"}},
                                    {"dimension":"key_id","default_limit_usd":"0","mode":"shadow"}]}}"#,
        );
        assert_eq!(
            metric_names(&config.budgets),
            [
                "llmcost.budget_threshold_total.threshold=100.dimension=key_id",
                "llmcost.budget_threshold_total.threshold=100.dimension=team",
                "llmcost.budget_threshold_total.threshold=50.dimension=key_id",
                "llmcost.budget_threshold_total.threshold=50.dimension=team",
                "llmcost.budget_threshold_total.threshold=80.dimension=key_id",
                "llmcost.budget_threshold_total.threshold=80.dimension=team",
                "llmcost.budget_would_exceed_total.dimension=key_id",
            ]
        );
        assert!(metric_names(&rules("{}").budgets).is_empty());
    }

    #[test]
    fn a_refusal_by_one_rule_releases_the_reservations_of_the_others() {
        let config = rules(
            r#"{"attribution":{"dimensions":{"team":{"from":["header:x-team"]}}},
                "budgets":{"rules":[{"dimension":"team","default_limit_usd":"10"},
                                    {"dimension":"key_id","limits_usd":{"0123456789ab":"1"}},
                                    {"dimension":"key_id","default_limit_usd":"0","mode":"shadow"}],
                           "reserve_usd":"2"}}"#,
        );
        let b = &config.budgets;
        let mut store = Store::new(Host::ProxyWasmCppHost);
        let limited = facts("0123456789ab", "search");
        // First call: fits the team rule and the key rule; over the shadow rule (limit 0).
        let Admission::Admitted { held, would_exceed } =
            admit_in(&mut store, b, b.charges(&limited), 0)
        else {
            panic!("admitted");
        };
        assert_eq!(
            held.iter().map(|c| c.rule).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        assert_eq!(would_exceed.len(), 1);
        assert_eq!(would_exceed[0].dimension, "key_id");
        // The key rule now holds 2 ≥ its limit 1: the next call is refused by it, and the team
        // rule's reservation taken for it first is released (team: still one reservation).
        let Admission::Refused(rejection) = admit_in(&mut store, b, b.charges(&limited), 0) else {
            panic!("refused");
        };
        assert_eq!(
            (rejection.dimension.as_str(), rejection.value.as_str()),
            ("key_id", "0123456789ab")
        );
        let team_key = b.storage_key(&b.charges(&limited)[0]);
        assert_eq!(store.ledger(&team_key).reserved, Usd::parse("2").unwrap());
        // Settling the first call: cost on every rule, thresholds from the team rule (50 % of 10).
        let mut marks = Vec::new();
        for charge in &held {
            marks.extend(settle_in(
                &mut store,
                b,
                charge,
                Usd::parse("5").unwrap(),
                0,
            ));
        }
        assert_eq!(store.ledger(&team_key).spent, Usd::parse("5").unwrap());
        assert_eq!(store.ledger(&team_key).reserved, Usd::ZERO);
        let team_marks: Vec<_> = marks.iter().filter(|m| m.dimension == "team").collect();
        assert_eq!(team_marks.len(), 1);
        assert_eq!(team_marks[0].percent, Some(50));
    }

    #[test]
    fn budget_counters_carry_bounded_labels_only() {
        let config = std::rc::Rc::new(MeterConfig::default());
        let recorded = llm_cost_core::replay::Recorded::default();
        let mut record = llm_cost_core::replay::replay(&config, &recorded)
            .outcome
            .record;
        let mark = |percent| BudgetMark {
            dimension: "team".into(),
            value: "search".into(),
            period: "month",
            limit_usd: "10".into(),
            spent_usd: "8".into(),
            percent,
        };
        record.budget_would_exceed = vec![mark(None)];
        record.budget_thresholds = vec![mark(Some(50)), mark(Some(80))];
        let got = metric_increments(&record);
        assert_eq!(
            got,
            vec![
                (
                    "llmcost.budget_would_exceed_total.dimension=team".to_owned(),
                    1
                ),
                (
                    "llmcost.budget_threshold_total.threshold=50.dimension=team".to_owned(),
                    1
                ),
                (
                    "llmcost.budget_threshold_total.threshold=80.dimension=team".to_owned(),
                    1
                ),
            ]
        );
        assert!(got.iter().all(|(name, _)| !name.contains("search")));
    }

    #[test]
    fn the_probe_tells_the_hosts_apart() {
        let mut envoy = Store::new(Host::ProxyWasmCppHost);
        assert_eq!(
            creation_token(&mut envoy),
            Some(envoy.data[CAS_ANCHOR_KEY].1)
        );
        // A second probe finds its key and does not write again.
        let writes = envoy.next_token;
        assert!(!host_takes_zero_as_create(&mut envoy, 1));
        assert_eq!(envoy.next_token, writes);
        let mut kong = Store::new(Host::NgxWasmModule);
        assert_eq!(creation_token(&mut kong), Some(0));
    }
}
