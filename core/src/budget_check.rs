//! Why a host let a call through without checking its budget: the record's `budget_error`.
//!
//! A budget store that fails never fails the call (metering never blocks traffic): the host
//! admits it unchecked and says so with [`Call::budget_unchecked`](crate::Call::budget_unchecked),
//! so spend that escaped a limit shows in the records. What counts as a failure, and how long a
//! host waits, is the host's: the Worker's Durable Object (docs/WORKER.md) is the first user.
//!
//! Wire names are snake_case and a public API: never rename one, only add.

use core::fmt;

/// Why the budget of a call could not be checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BudgetError {
    /// The budget store answered with an error, or could not be reached.
    StoreUnavailable,
    /// The budget store did not answer within the host's deadline.
    StoreTimeout,
}

impl BudgetError {
    /// Every code.
    pub const ALL: &'static [BudgetError] =
        &[BudgetError::StoreUnavailable, BudgetError::StoreTimeout];

    /// The wire name (`store_unavailable`, `store_timeout`).
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetError::StoreUnavailable => "store_unavailable",
            BudgetError::StoreTimeout => "store_timeout",
        }
    }
}

impl fmt::Display for BudgetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for BudgetError {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_serialize_as_themselves() {
        for code in BudgetError::ALL {
            assert_eq!(
                serde_json::to_string(code).unwrap(),
                alloc::format!("\"{code}\"")
            );
        }
    }
}
