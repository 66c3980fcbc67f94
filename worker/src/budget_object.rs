//! Budgets on Cloudflare (wasm32 only): one Durable Object per ledger (budget rule and value)
//! holds that ledger, and the Worker asks it to admit and settle each call (protocol: [`crate::ledger`]).
//!
//! A Durable Object runs one event at a time, and while it waits on its own storage no other
//! event is delivered (the runtime's input gate), so a read-change-write of the ledger is atomic
//! for every isolate of every colo: concurrent calls overshoot a limit by at most one
//! reservation. The decisions are the core's; this file moves bytes between the Worker, the
//! object and its storage.
//!
//! Metering never blocks traffic: when the object fails or does not answer within
//! [`BUDGET_TIMEOUT_MS`], the call passes and its record's `budget_error` says why.

use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use llm_cost_core::budget::threshold_marks;
use llm_cost_core::{
    BudgetError, BudgetMark, Budgets, Charge, Decision, Ledger, MeterConfig, Rejection, Usd,
};
use worker::*;

use crate::edge::settings_for;
use crate::ledger::{apply, object_name, parse_reply, Op, STORAGE_KEY};
use crate::settings::BUDGETS_BINDING;

/// How long a call waits for its budget's answer before passing unchecked. A Durable Object
/// answers in milliseconds when healthy; this bounds what a sick one adds to each call.
pub const BUDGET_TIMEOUT_MS: u64 = 2_000;

/// The budgets' answer for one call.
pub enum Admission {
    /// Every rule that applies admitted it (or could not be asked: `unchecked`). Settle the
    /// reservations with [`Reservation::settle`] when the call ends.
    Admitted {
        /// The reservations held (`None` when none are).
        reservation: Option<Reservation>,
        /// A rule's store failed: the call passes; the record says why.
        unchecked: Option<BudgetError>,
    },
    /// An enforced rule is over its limit: answer this (the upstream is not called). The
    /// reservations other rules took are released in the background.
    Refused(Rejection),
}

/// Reservations held by one call, with what its record needs at the end.
pub struct Reservation {
    namespace: ObjectNamespace,
    config: Rc<MeterConfig>,
    held: Vec<Charge>,
    would_exceed: Vec<BudgetMark>,
}

/// Asks the ledger of each of `charges` to admit the call, in order; a refusal releases the
/// reservations already taken (in `ctx.wait_until`).
pub async fn admit(
    env: &Env,
    ctx: &Context,
    config: &Rc<MeterConfig>,
    charges: Vec<Charge>,
) -> Admission {
    let Ok(namespace) = env.durable_object(BUDGETS_BINDING) else {
        // Settings already refuse budgets without the binding; be safe anyway.
        return Admission::Admitted {
            reservation: None,
            unchecked: Some(BudgetError::StoreUnavailable),
        };
    };
    let budgets = &config.budgets;
    let (mut held, mut would_exceed, mut unchecked) = (Vec::new(), Vec::new(), None);
    for charge in charges {
        let (before, now) = match call(&namespace, budgets, &charge, &Op::Admit).await {
            Ok(answer) => answer,
            Err(why) => {
                console_warn!("llm-cost: budget store {why}; call passes unchecked");
                unchecked = Some(why);
                continue;
            }
        };
        // The object ran this same step on this ledger: replaying it gives its decision.
        match before.admit(budgets, &charge, now) {
            Decision::Admitted(_) => held.push(charge),
            Decision::WouldExceed(_, rejection) => {
                would_exceed.push(rejection.mark());
                held.push(charge);
            }
            Decision::Refused(rejection) => {
                let taken = Reservation {
                    namespace,
                    config: Rc::clone(config),
                    held,
                    would_exceed,
                };
                ctx.wait_until(taken.release());
                return Admission::Refused(rejection);
            }
        }
    }
    let reservation = (!held.is_empty() || !would_exceed.is_empty()).then(|| Reservation {
        namespace,
        config: Rc::clone(config),
        held,
        would_exceed,
    });
    Admission::Admitted {
        reservation,
        unchecked,
    }
}

impl Reservation {
    /// Swaps each reservation for the call's cost (zero when it has none); returns the record's
    /// `budget_would_exceed` and `budget_thresholds` (for `Outcome::mark_budgets`). Run it in
    /// `ctx.wait_until`: the client does not wait for it.
    pub async fn settle(self, cost: Option<Usd>) -> (Vec<BudgetMark>, Vec<BudgetMark>) {
        let budgets = &self.config.budgets;
        let cost = cost.unwrap_or(Usd::ZERO);
        let mut thresholds = Vec::new();
        for charge in &self.held {
            match call(&self.namespace, budgets, charge, &Op::Settle(cost)).await {
                Ok((before, now)) => {
                    let (next, crossed) = before.settle(budgets, charge, cost, now);
                    thresholds.extend(threshold_marks(budgets, charge, next.spent, crossed));
                }
                Err(why) => console_warn!(
                    "llm-cost: budget store {why} on a settlement; the reservation stays held"
                ),
            }
        }
        (self.would_exceed, thresholds)
    }

    /// Gives the reservations back without a cost (another rule refused the call).
    async fn release(self) {
        for charge in &self.held {
            if let Err(why) =
                call(&self.namespace, &self.config.budgets, charge, &Op::Release).await
            {
                console_warn!(
                    "llm-cost: budget store {why} on a release; the reservation stays held"
                );
            }
        }
    }
}

/// One request to `charge`'s object, bounded by [`BUDGET_TIMEOUT_MS`]: the ledger before the
/// operation and the object's clock.
async fn call(
    namespace: &ObjectNamespace,
    budgets: &Budgets,
    charge: &Charge,
    op: &Op,
) -> core::result::Result<(Ledger, u64), BudgetError> {
    let request = async {
        let stub = namespace
            .id_from_name(&object_name(budgets, charge))?
            .get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(op.body(charge).into()));
        // The host part is never resolved: the stub routes the request to the object.
        let req = Request::new_with_init(&format!("https://budget{}", op.path()), &init)?;
        let mut resp = stub.fetch_with_request(req).await?;
        if resp.status_code() != 200 {
            return Err(Error::RustError(format!(
                "answered HTTP {}",
                resp.status_code()
            )));
        }
        resp.bytes().await
    };
    let timeout = Delay::from(Duration::from_millis(BUDGET_TIMEOUT_MS));
    match select(Box::pin(request), Box::pin(timeout)).await {
        Either::Left((Ok(body), _)) => parse_reply(&body).ok_or(BudgetError::StoreUnavailable),
        Either::Left((Err(_), _)) => Err(BudgetError::StoreUnavailable),
        Either::Right(_) => Err(BudgetError::StoreTimeout),
    }
}

/// The Durable Object class that keeps one budget key's ledger (`class_name = "BudgetLedger"`
/// in wrangler.toml). Its configuration is the Worker's own (`METER_CONFIG`), read from the same
/// `Env`.
#[durable_object(fetch)]
pub struct BudgetLedger {
    state: State,
    env: Env,
}

impl DurableObject for BudgetLedger {
    fn new(state: State, env: Env) -> Self {
        BudgetLedger { state, env }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let path = req.path();
        let body = req.bytes().await?;
        let loaded = settings_for(&self.env);
        let Some(budgets) = loaded
            .as_ref()
            .as_ref()
            .ok()
            .and_then(|s| s.meter.as_ref().ok())
            .map(|m| &m.budgets)
        else {
            return Response::error("llm-cost budget: no metering configuration", 503);
        };
        let (charge, op) = match Op::parse(budgets, &path, &body) {
            Ok(parsed) => parsed,
            Err(why) => return Response::error(why, 400),
        };
        let storage = self.state.storage();
        // Input gate: no other event reaches this object between this read and the write.
        let stored: Option<String> = storage.get(STORAGE_KEY).await?;
        let (next, reply) = apply(
            budgets,
            &charge,
            &op,
            stored.as_deref(),
            Date::now().as_millis(),
        );
        if let Some(next) = next {
            storage.put(STORAGE_KEY, next).await?;
        }
        Response::ok(reply)
    }
}
