//! Per-key budgets in Envoy shared data. The core decides (`Ledger::admit`, `Ledger::settle`);
//! this file only reads a key's ledger bytes and compare-and-swaps the new ones.
//!
//! Shared data is per Envoy process and `vm_id`: every worker thread of one Envoy sees the same
//! ledgers, other Envoys do not, and a restart starts from zero (docs/BUDGETS.md).

use llm_cost_core::{Budgets, Ledger, Rejection, Usd};
use proxy_wasm::hostcalls;
use proxy_wasm::types::Status;

/// Compare-and-swap attempts before giving up (then the call passes: metering never blocks).
const CAS_ATTEMPTS: usize = 32;

/// The budget's answer for one call.
#[derive(Debug)]
pub enum Admission {
    /// The key has no limit (or the ledger could not be read: fail open).
    Unlimited,
    /// A reservation was taken; settle it when the call ends.
    Admitted,
    /// Over budget: answer 429.
    Refused(Rejection),
}

/// Admits or refuses a call of `key_id`, reserving `budgets.reserve` when admitted.
pub fn admit(budgets: &Budgets, key_id: &str, now_unix_ms: u64) -> Admission {
    let Some(limit) = budgets.limit_for(key_id) else {
        return Admission::Unlimited;
    };
    let mut admission = Admission::Unlimited;
    let stored = update(&Budgets::storage_key(key_id), |ledger| {
        match ledger.admit(budgets, limit, now_unix_ms) {
            Ok(next) => {
                admission = Admission::Admitted;
                Some(next)
            }
            Err(rejection) => {
                admission = Admission::Refused(rejection);
                None
            }
        }
    });
    if stored {
        admission
    } else {
        Admission::Unlimited
    }
}

/// Swaps an admitted call's reservation for its cost.
pub fn settle(budgets: &Budgets, key_id: &str, cost: Usd, now_unix_ms: u64) {
    update(&Budgets::storage_key(key_id), |ledger| {
        Some(ledger.settle(budgets, cost, now_unix_ms))
    });
}

/// Applies `change` to the stored ledger with compare-and-swap; `None` from `change` writes
/// nothing. False when the store kept refusing (contention or a host error).
fn update(key: &str, mut change: impl FnMut(Ledger) -> Option<Ledger>) -> bool {
    for _ in 0..CAS_ATTEMPTS {
        // A key seen for the first time has no CAS token: its very first write is unconditional.
        let (bytes, cas) = match hostcalls::get_shared_data(key) {
            Ok(found) => found,
            Err(status) => {
                log::warn!("llm-cost: budget ledger {key} unreadable: {status:?}");
                return false;
            }
        };
        let ledger = Ledger::decode(bytes.as_deref().unwrap_or_default());
        let Some(next) = change(ledger) else {
            return true;
        };
        match hostcalls::set_shared_data(key, Some(&next.encode()), cas) {
            Ok(()) => return true,
            Err(Status::CasMismatch) => continue,
            Err(status) => {
                log::warn!("llm-cost: budget ledger {key} not stored: {status:?}");
                return false;
            }
        }
    }
    log::warn!("llm-cost: budget ledger {key} still contended after {CAS_ATTEMPTS} attempts");
    false
}
