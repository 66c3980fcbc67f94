//! Budgets on Cloudflare (wasm32 only): one Durable Object per budget key holds that key's
//! ledger, and the Worker asks it to admit and settle each call (protocol: [`crate::ledger`]).
//!
//! A Durable Object runs one event at a time, and while it waits on its own storage no other
//! event is delivered (the runtime's input gate), so a read-change-write of the ledger is atomic
//! for every isolate of every colo: concurrent calls overshoot a limit by at most one
//! reservation. The decisions are the core's; this file moves bytes between the Worker, the
//! object and its storage.
//!
//! Metering never blocks traffic: when the object fails or does not answer within
//! [`BUDGET_TIMEOUT_MS`], the call passes and its record's `budget_error` says why.

use std::time::Duration;

use futures_util::future::{select, Either};
use llm_cost_core::{BudgetError, Usd};
use worker::*;

use crate::edge::settings_for;
use crate::ledger::{object_name, Op, Reply, STORAGE_KEY};
use crate::settings::BUDGETS_BINDING;

/// How long a call waits for its budget's answer before passing unchecked. A Durable Object
/// answers in milliseconds when healthy; this bounds what a sick one adds to each call.
pub const BUDGET_TIMEOUT_MS: u64 = 2_000;

/// The budget's answer for one call.
pub enum Admission {
    /// The key has no limit: nothing to settle.
    Unlimited,
    /// A reservation is held: settle it with [`settle`] when the call ends.
    Admitted(Reservation),
    /// Over budget: send this `429` (the core's JSON error); the upstream is not called.
    Refused(Response),
    /// The store failed: the call passes; the record says why.
    Unchecked(BudgetError),
}

/// A held reservation: which key's ledger to settle.
pub struct Reservation {
    namespace: ObjectNamespace,
    key_id: String,
}

/// Asks `key_id`'s ledger to admit a call.
pub async fn admit(env: &Env, key_id: &str) -> Admission {
    let Ok(namespace) = env.durable_object(BUDGETS_BINDING) else {
        // Settings already refuse budgets without the binding; be safe anyway.
        return Admission::Unchecked(BudgetError::StoreUnavailable);
    };
    match call(&namespace, key_id, &Op::Admit).await {
        Ok(mut resp) => match resp.status_code() {
            204 => Admission::Admitted(Reservation {
                namespace,
                key_id: key_id.to_owned(),
            }),
            200 => Admission::Unlimited,
            429 => match refusal(&mut resp).await {
                Ok(refused) => Admission::Refused(refused),
                Err(_) => Admission::Unchecked(BudgetError::StoreUnavailable),
            },
            status => {
                console_warn!(
                    "llm-cost: budget store answered HTTP {status}; call passes unchecked"
                );
                Admission::Unchecked(BudgetError::StoreUnavailable)
            }
        },
        Err(why) => {
            console_warn!("llm-cost: budget store {why}; call passes unchecked");
            Admission::Unchecked(why)
        }
    }
}

/// Swaps an admitted call's reservation for its cost (zero when it has none). Run it in
/// `ctx.wait_until`: the client does not wait for it.
pub async fn settle(reservation: Reservation, cost: Option<Usd>) {
    let op = Op::Settle(cost.unwrap_or(Usd::ZERO));
    match call(&reservation.namespace, &reservation.key_id, &op).await {
        Ok(resp) if resp.status_code() == 204 => {}
        Ok(resp) => console_warn!(
            "llm-cost: budget store answered HTTP {} to a settlement; the reservation stays held",
            resp.status_code()
        ),
        Err(why) => {
            console_warn!(
                "llm-cost: budget store {why} on a settlement; the reservation stays held"
            )
        }
    }
}

/// The object's `429`, copied into a response of our own (headers and body as the core made
/// them).
async fn refusal(resp: &mut Response) -> Result<Response> {
    let body = resp.text().await?;
    let headers = Headers::new();
    for name in ["content-type", "retry-after"] {
        if let Some(value) = resp.headers().get(name)? {
            headers.set(name, &value)?;
        }
    }
    Ok(Response::ok(body)?.with_status(429).with_headers(headers))
}

/// One request to `key_id`'s object, bounded by [`BUDGET_TIMEOUT_MS`].
async fn call(
    namespace: &ObjectNamespace,
    key_id: &str,
    op: &Op,
) -> core::result::Result<Response, BudgetError> {
    let request = async {
        let stub = namespace.id_from_name(&object_name(key_id))?.get_stub()?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(op.body(key_id).into()));
        // The host part is never resolved: the stub routes the request to the object.
        let req = Request::new_with_init(&format!("https://budget{}", op.path()), &init)?;
        stub.fetch_with_request(req).await
    };
    let timeout = Delay::from(Duration::from_millis(BUDGET_TIMEOUT_MS));
    match select(Box::pin(request), Box::pin(timeout)).await {
        Either::Left((Ok(resp), _)) => Ok(resp),
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
        let (key_id, op) = match Op::parse(&path, &body) {
            Ok(parsed) => parsed,
            Err(why) => return Response::error(why, 400),
        };
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
        let storage = self.state.storage();
        // Input gate: no other event reaches this object between this read and the write.
        let stored: Option<String> = storage.get(STORAGE_KEY).await?;
        let (next, reply) = crate::ledger::apply(
            budgets,
            &key_id,
            &op,
            stored.as_deref(),
            Date::now().as_millis(),
        );
        if let Some(next) = next {
            storage.put(STORAGE_KEY, next).await?;
        }
        respond(reply)
    }
}

fn respond(reply: Reply) -> Result<Response> {
    let headers = Headers::new();
    for (name, value) in &reply.headers {
        headers.set(name, value)?;
    }
    let resp = if reply.body.is_empty() {
        Response::empty()?
    } else {
        Response::ok(reply.body)?
    };
    Ok(resp.with_status(reply.status).with_headers(headers))
}
