//! The root context: one per worker VM. Parses the plugin configuration, hands it to every
//! request's filter, and flushes queued cost records to the collector from the timer.
//!
//! Records are batched (one `dispatch_http_call` per request roughly halved Envoy's throughput in
//! our measurements; a batch every `flush_interval_ms` costs about nothing) and sent from the root
//! so that the collector's answer comes back here even after the request's stream is gone.
//!
//! Every record is accounted for ([`crate::accounting`]): delivered, dropped with a reason, or
//! still queued. When Envoy lets the VM go (`on_done`: drain, exit, configuration change) the root
//! sends everything still queued at once and tells Envoy it is not done until the collector has
//! answered or `collector.timeout_ms` (+ one flush interval) has passed; what is left then is
//! counted as dropped with reason `shutdown` (and logged, since the process may be exiting).

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use llm_cost_core::{Backoff, MeterConfig, Period};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType, MapType, MetricType};

use crate::accounting::{self, DropReason, GaugeShare};
use crate::budget;
use crate::collector::CollectorConfig;
use crate::filter::MeterFilter;
use crate::host;
use crate::labels::LabelValues;
use crate::metrics::{Metrics, PREFIX};
use crate::pricing_fetch::LivePrices;
use crate::queue::{ndjson, RecordQueue};

/// Counter of seconds this VM's timer has been running (each tick adds the time since the
/// previous one, at most two flush intervals, in whole seconds as they accumulate). Its rate is
/// the number of live VMs:
/// a VM that trapped (Envoy's `failure_policy: FAIL_OPEN` then passes traffic unmetered and Envoy
/// 1.40 shows it in no stat) stops adding, so the `LlmCostMeteringVmDown` alert sees it.
pub const VM_ALIVE: &str = "llmcost.vm_alive_seconds_total";

/// At most this many collector batches in flight per VM (a hung collector cannot pile up calls;
/// the records wait in the bounded queue instead).
const MAX_IN_FLIGHT: usize = 4;

/// State shared by the root and the filters of one VM (single-threaded, hence `RefCell`).
#[derive(Debug)]
pub struct Shared {
    /// Records waiting for the collector.
    pub queue: RefCell<RecordQueue>,
    /// Envoy counters.
    pub metrics: RefCell<Metrics>,
    /// Records go to the collector (`collector.enabled`).
    pub send_records: Cell<bool>,
    /// Attribution metric label values admitted so far.
    pub labels: RefCell<LabelValues>,
    /// The last spend sync from the collector succeeded (`budgets.on_unknown_spend` applies
    /// while it has not).
    pub spend_known: Cell<bool>,
}

/// The root context.
pub struct MeterRoot {
    config: Option<Rc<MeterConfig>>,
    /// The `collector` section, parsed here (Envoy transport: not the core's).
    collector: Option<Rc<CollectorConfig>>,
    shared: Rc<Shared>,
    /// Batches sent and not yet answered, with their call tokens (at most `MAX_IN_FLIGHT`: a
    /// `Vec` is smaller in the `.wasm` than a map).
    in_flight: Vec<(u32, Vec<String>)>,
    /// Waiting after collector failures (a timed-out batch may have been stored: every resend
    /// can be a copy).
    backoff: Backoff,
    /// Live prices (`pricing.source`), if configured.
    live: Option<LivePrices>,
    /// This VM's shares of the `records_queued` and `vm_memory_bytes` gauges.
    queued_gauge: Gauge,
    memory_gauge: Gauge,
    /// Set by `on_done`: the VM is going away. Past this host time (ms) what is still queued or
    /// unanswered is dropped (reason `shutdown`).
    drain_deadline_ms: Option<u64>,
    /// Host time of the previous tick, and the milliseconds not yet added to [`VM_ALIVE`].
    last_tick_ms: Option<u64>,
    alive_ms: u64,
    /// Records the collector acknowledged, and records dropped, since `on_done` (for the
    /// shutdown log line).
    drained: u64,
    drain_lost: u64,
    /// Spend queries to the collector in flight (`budgets.sync_interval_s`), by call token.
    sync_in_flight: Vec<(u32, Period)>,
    /// When the next spend sync is due (0: at the first tick).
    next_sync_ms: u64,
    /// "the collector's spend is unknown" was logged since the last successful sync.
    unknown_logged: bool,
}

/// A gauge shared by every VM of the process, moved by this VM's deltas (see [`GaugeShare`]),
/// with its id once Envoy defined it.
#[derive(Debug)]
struct Gauge {
    name: &'static str,
    id: Option<u32>,
    share: GaugeShare,
}

impl Gauge {
    fn new(name: &'static str) -> Gauge {
        Gauge {
            name,
            id: None,
            share: GaugeShare::default(),
        }
    }

    /// Makes this VM's share `value`. Only a delta the host took moves the share (a refused
    /// gauge is defined again next time).
    fn set(&mut self, value: u64) {
        if self.id.is_none() {
            match hostcalls::define_metric(MetricType::Gauge, self.name) {
                Ok(id) => self.id = Some(id),
                Err(status) => log::debug!("llm-cost: gauge refused: {status:?}"),
            }
        }
        if let Some(id) = self.id {
            let delta = self.share.delta_to(value);
            if delta != 0 {
                let _ = hostcalls::increment_metric(id, delta);
            }
        }
    }
}

/// This VM's linear memory in bytes (what the VM holds of Envoy's memory; it never shrinks).
fn linear_memory_bytes() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        (core::arch::wasm32::memory_size(0) as u64).saturating_mul(65_536)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

impl Default for MeterRoot {
    fn default() -> Self {
        MeterRoot {
            config: None,
            collector: None,
            shared: Rc::new(Shared {
                queue: RefCell::new(RecordQueue::new(1)),
                metrics: RefCell::new(Metrics::default()),
                send_records: Cell::new(false),
                labels: RefCell::new(LabelValues::default()),
                spend_known: Cell::new(false),
            }),
            in_flight: Vec::new(),
            backoff: Backoff::default(),
            live: None,
            queued_gauge: Gauge::new(accounting::QUEUED),
            memory_gauge: Gauge::new(accounting::VM_MEMORY),
            drain_deadline_ms: None,
            last_tick_ms: None,
            alive_ms: 0,
            drained: 0,
            drain_lost: 0,
            sync_in_flight: Vec::new(),
            next_sync_ms: 0,
            unknown_logged: false,
        }
    }
}

impl MeterRoot {
    /// The first retry waits the longer of the collector timeout and the flush interval.
    fn backoff_after_failure(&mut self) {
        if let Some(c) = &self.collector {
            let base = c.timeout_ms.max(c.flush_interval_ms);
            self.backoff.failed(host::now_unix_ms(), base);
        }
    }

    /// Adds `n` to the counter `llmcost.collector.<what>_total`.
    fn count(&self, what: &str, n: u64) {
        self.add(&format!("{PREFIX}.collector.{what}_total"), n);
    }

    fn add(&self, name: &str, n: u64) {
        self.shared.metrics.borrow_mut().add(name, n);
    }

    /// Adds the time since the previous tick to [`VM_ALIVE`] (a stalled timer counts at most
    /// two flush intervals: a VM that stops ticking looks dead, which it is for metering).
    fn heartbeat(&mut self) {
        let now = host::now_unix_ms();
        if let (Some(last), Some(c)) = (self.last_tick_ms, &self.collector) {
            let cap = c.flush_interval_ms.saturating_mul(2);
            self.alive_ms = self
                .alive_ms
                .saturating_add(now.saturating_sub(last).min(cap));
            self.add(VM_ALIVE, self.alive_ms / 1000);
            self.alive_ms %= 1000;
        }
        self.last_tick_ms = Some(now);
    }

    /// Records waiting in the queue or in a batch not yet answered.
    fn queued(&self) -> u64 {
        let in_flight: usize = self.in_flight.iter().map(|(_, batch)| batch.len()).sum();
        (self.shared.queue.borrow().len() + in_flight) as u64
    }

    /// Counts what entered and what fell out of the queue since the last call.
    fn take_queue_counts(&mut self) {
        let (pushed, dropped) = {
            let mut queue = self.shared.queue.borrow_mut();
            (queue.take_pushed(), queue.take_dropped())
        };
        self.add(accounting::METERED, pushed);
        self.add(&DropReason::QueueFull.counter(), dropped);
        self.count("dropped_records", dropped);
    }

    /// Hands the summed counters to Envoy, then moves the `records_queued` gauge to match, in
    /// the same callback (so the accounting identity holds whenever no callback is running), and
    /// the `vm_memory_bytes` gauge.
    fn publish(&mut self) {
        self.take_queue_counts();
        self.shared.metrics.borrow_mut().flush();
        let queued = self.queued();
        self.queued_gauge.set(queued);
        self.memory_gauge.set(linear_memory_bytes());
    }

    /// Asks the collector for the spend of every period the rules use, when a sync is due
    /// (`budgets.sync_interval_s`; the answers land in `on_http_call_response`).
    fn sync_budgets(&mut self) {
        let (Some(config), Some(c)) = (self.config.clone(), self.collector.clone()) else {
            return;
        };
        let interval_s = config.budgets.sync_interval_s;
        let now = host::now_unix_ms();
        if interval_s == 0 || now < self.next_sync_ms || !self.sync_in_flight.is_empty() {
            return;
        }
        // After a failure, again within a second: calls wait on nothing meanwhile, but
        // `on_unknown_spend` applies until an answer lands.
        let wait_ms = if self.shared.spend_known.get() {
            interval_s.saturating_mul(1000)
        } else {
            interval_s.saturating_mul(1000).min(1000)
        };
        self.next_sync_ms = now.saturating_add(wait_ms);
        let bearer = config
            .budgets
            .spend_token
            .as_ref()
            .map(|t| format!("Bearer {}", t.0));
        for period in config.budgets.periods() {
            let path = format!("/v1/spend?period={}", period.as_str());
            let mut headers = vec![
                (":method", "GET"),
                (":path", path.as_str()),
                (":authority", c.authority.as_str()),
            ];
            if let Some(bearer) = &bearer {
                headers.push(("authorization", bearer.as_str()));
            }
            let timeout = Duration::from_millis(c.timeout_ms);
            match hostcalls::dispatch_http_call(&c.cluster, headers, None, vec![], timeout) {
                Ok(token) => self.sync_in_flight.push((token, period)),
                Err(status) => {
                    log::warn!(
                        "llm-cost: budget sync: collector cluster {:?} refused: {status:?}",
                        c.cluster
                    );
                    self.sync_failed();
                }
            }
        }
    }

    /// A sync failed: counted; the spend is unknown from now until an answer lands (logged once
    /// each time it becomes unknown, not at every retry).
    fn sync_failed(&mut self) {
        self.count_budget("sync_failures", 1);
        self.shared.spend_known.set(false);
        if !std::mem::replace(&mut self.unknown_logged, true) {
            log::warn!("llm-cost: budget sync failed: the collector's spend is unknown until it answers (budgets.on_unknown_spend applies)");
        }
    }

    /// Adds `n` to the counter `llmcost.budget_<what>_total`.
    fn count_budget(&self, what: &str, n: u64) {
        self.shared
            .metrics
            .borrow_mut()
            .add(&format!("{PREFIX}.budget_{what}_total"), n);
    }

    /// A spend answer: into the ledgers if it is one (a failed sync keeps them as they are).
    fn on_sync_response(&mut self, period: Period, body: usize) {
        let status = host::header(MapType::HttpCallResponseHeaders, ":status")
            .and_then(|s| s.parse::<u16>().ok());
        let synced = match (&self.config, status) {
            (Some(config), Some(200)) => {
                let answer = host::body(BufferType::HttpCallResponseBody, body);
                budget::sync(&config.budgets, period, &answer, host::now_unix_ms())
            }
            _ => None,
        };
        if status == Some(401) {
            // The token is wrong or missing; never logged.
            self.count_budget("sync_unauthorized", 1);
            // Logged once per streak of failures, like the failure itself.
            if !self.unknown_logged {
                log::warn!("llm-cost: budget sync: the collector refused the spend token (401): check budgets.spend_token against its --spend-token");
            }
        }
        match synced {
            Some(ledgers) => {
                self.count_budget("syncs", 1);
                self.shared.spend_known.set(true);
                if std::mem::take(&mut self.unknown_logged) {
                    log::warn!("llm-cost: budget sync: the collector's spend is known again");
                }
                log::debug!(
                    "llm-cost: budget sync ({}): {ledgers} ledger(s)",
                    period.as_str()
                );
            }
            None => {
                log::debug!(
                    "llm-cost: budget sync ({}): collector answered {status:?}; ledgers kept",
                    period.as_str()
                );
                self.sync_failed();
            }
        }
    }

    /// Sends queued records, a batch per call, while calls are free (all at once when draining).
    fn flush(&mut self) {
        let Some(c) = self.collector.clone() else {
            return;
        };
        self.take_queue_counts();
        let draining = self.drain_deadline_ms.is_some();
        if !draining && !self.backoff.ready(host::now_unix_ms()) {
            return;
        }
        let max_in_flight = if draining { usize::MAX } else { MAX_IN_FLIGHT };
        while self.in_flight.len() < max_in_flight {
            let batch = self
                .shared
                .queue
                .borrow_mut()
                .take_batch(c.max_batch_records);
            if batch.is_empty() {
                return;
            }
            let body = ndjson(&batch);
            let headers = vec![
                (":method", "POST"),
                (":path", c.path.as_str()),
                (":authority", c.authority.as_str()),
                ("content-type", "application/x-ndjson"),
            ];
            let timeout = Duration::from_millis(c.timeout_ms);
            match hostcalls::dispatch_http_call(&c.cluster, headers, Some(&body), vec![], timeout) {
                Ok(token) => {
                    self.in_flight.push((token, batch));
                }
                Err(status) => {
                    // e.g. the cluster does not exist: count it and keep the records for later.
                    log::warn!(
                        "llm-cost: collector cluster {:?} refused: {status:?}",
                        c.cluster
                    );
                    self.count("failures", 1);
                    self.shared.queue.borrow_mut().put_back(batch);
                    self.backoff_after_failure();
                    return;
                }
            }
        }
    }
}

impl Context for MeterRoot {
    fn on_http_call_response(
        &mut self,
        token: u32,
        _headers: usize,
        body: usize,
        _trailers: usize,
    ) {
        if let Some(live) = self.live.as_mut().filter(|live| live.owns(token)) {
            let mut metrics = self.shared.metrics.borrow_mut();
            if let Some(config) = live.on_response(body, &mut metrics) {
                self.config = Some(config);
            }
            return;
        }
        if let Some(at) = self.sync_in_flight.iter().position(|(t, _)| *t == token) {
            let (_, period) = self.sync_in_flight.swap_remove(at);
            self.on_sync_response(period, body);
            return;
        }
        let Some(at) = self.in_flight.iter().position(|(t, _)| *t == token) else {
            return;
        };
        let (_, batch) = self.in_flight.swap_remove(at);
        // A connect failure, reset or timeout arrives here with no `:status` at all.
        let status = host::header(MapType::HttpCallResponseHeaders, ":status")
            .and_then(|s| s.parse::<u16>().ok());
        let draining = self.drain_deadline_ms.is_some();
        match status {
            Some(200..=299) => {
                let n = batch.len() as u64;
                self.count("sent_records", n);
                self.add(accounting::DELIVERED, n);
                self.backoff.succeeded();
                if draining {
                    self.drained += n;
                }
            }
            _ if draining => {
                // No retry after on_done: Envoy is waiting for us to let go.
                log::debug!("llm-cost: collector answered {status:?} while draining");
                self.count("failures", 1);
                self.add(&DropReason::Shutdown.counter(), batch.len() as u64);
                self.drain_lost += batch.len() as u64;
            }
            _ => {
                log::debug!("llm-cost: collector answered {status:?}; batch kept for a retry");
                self.count("failures", 1);
                self.shared.queue.borrow_mut().put_back(batch);
                self.backoff_after_failure();
            }
        }
        if draining && self.drain_finished() {
            if let Err(status) = hostcalls::done() {
                log::debug!("llm-cost: done refused: {status:?}");
            }
        }
    }

    /// Envoy is letting the VM go: send what is queued now and hold the VM until it is answered.
    fn on_done(&mut self) -> bool {
        let Some(c) = self.collector.clone() else {
            return true;
        };
        let queued = self.queued();
        if queued > 0 {
            // Logged before anything is sent: if Envoy exits now (SIGTERM does not wait for us),
            // this line is the count of what may be lost.
            log::warn!("llm-cost: VM shutting down with {queued} records queued or in flight: sending them now");
        }
        let wait = c.timeout_ms.saturating_add(c.flush_interval_ms);
        self.drain_deadline_ms = Some(host::now_unix_ms().saturating_add(wait));
        self.flush();
        self.drain_finished()
    }
}

impl MeterRoot {
    /// While draining: publishes the counters; true (and a log line) once nothing is queued or
    /// in flight any more.
    fn drain_finished(&mut self) -> bool {
        self.publish();
        if self.queued() > 0 {
            return false;
        }
        self.log_drain();
        true
    }

    fn log_drain(&self) {
        if self.drained > 0 || self.drain_lost > 0 {
            log::warn!(
                "llm-cost: VM shut down: {} records delivered while draining, {} dropped (reason=shutdown)",
                self.drained,
                self.drain_lost
            );
        }
    }

    /// Past the drain deadline: everything still queued or in flight is dropped (`shutdown`).
    fn give_up_draining(&mut self) {
        let mut lost = self.shared.queue.borrow_mut().clear();
        for (_, batch) in self.in_flight.drain(..) {
            lost += batch.len() as u64;
        }
        self.add(&DropReason::Shutdown.counter(), lost);
        self.drain_lost += lost;
        self.publish();
        // Once only: later ticks (if the host keeps the VM) just send and publish.
        self.drain_deadline_ms = Some(u64::MAX);
        self.log_drain();
        if let Err(status) = hostcalls::done() {
            log::debug!("llm-cost: done refused: {status:?}");
        }
    }
}

impl RootContext for MeterRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let loaded = MeterConfig::from_json(&host::plugin_configuration())
            .and_then(|config| Ok((CollectorConfig::of(&config)?, config)));
        match loaded {
            Ok((c, config)) => {
                self.shared
                    .queue
                    .borrow_mut()
                    .set_max_records(c.max_queue_records);
                self.shared.send_records.set(c.enabled);
                host::set_tick_period(Duration::from_millis(c.flush_interval_ms));
                // Exported from the start (at 0): the heartbeat's alert needs the series.
                // So are the budget counters, for `increase()` to see their first event.
                let names = crate::budget::metric_names(&config.budgets);
                for name in core::iter::once(VM_ALIVE).chain(names.iter().map(String::as_str)) {
                    if let Err(status) = hostcalls::define_metric(MetricType::Counter, name) {
                        log::debug!("llm-cost: metric refused: {status:?}");
                    }
                }
                if config.budgets.sync_interval_s > 0 && !config.budgets.is_empty() {
                    log::info!("llm-cost: budgets: the collector's spend is unknown until the first sync (budgets.on_unknown_spend: {:?})", config.budgets.on_unknown_spend);
                }
                // Rules that load but will not do what they say: named once per VM, warn level.
                for warning in config.budget_warnings() {
                    log::warn!("llm-cost: budgets: {warning}");
                }
                let config = Rc::new(config);
                self.live = LivePrices::new(&config);
                self.config = Some(config);
                self.collector = Some(Rc::new(c));
                true
            }
            Err(e) => {
                // Returning false makes Envoy reject the configuration (`--mode validate` fails).
                log::error!("{e} (plugin_config of the llm-cost filter)");
                false
            }
        }
    }

    fn on_tick(&mut self) {
        self.heartbeat();
        if let Some(deadline) = self.drain_deadline_ms {
            if host::now_unix_ms() >= deadline {
                self.give_up_draining();
            } else {
                self.flush();
                self.publish();
            }
            return;
        }
        if let Some(live) = self.live.as_mut() {
            if let Some(config) = live.on_tick(&mut self.shared.metrics.borrow_mut()) {
                self.config = Some(config);
            }
        }
        self.sync_budgets();
        self.flush();
        self.publish();
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let filter = MeterFilter::new(self.config.clone(), Rc::clone(&self.shared));
        #[cfg(feature = "trap-test")]
        let filter = trap_test::TrappingFilter(filter);
        Some(Box::new(filter))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// TEST ONLY (cargo feature `trap-test`, never in the shipped `.wasm`): a filter that traps the
/// VM on a request carrying [`trap_test::HEADER`], to show in real Envoy what each
/// `failure_policy` does to traffic and to metering (tests/envoy/test_survive.py).
#[cfg(feature = "trap-test")]
mod trap_test {
    use proxy_wasm::traits::{Context, HttpContext};
    use proxy_wasm::types::{Action, MapType};

    use crate::filter::MeterFilter;
    use crate::host;

    /// The request header that makes the VM trap.
    pub const HEADER: &str = "x-test-trap-llm-cost";

    /// [`MeterFilter`] plus the trap.
    pub struct TrappingFilter(pub MeterFilter);

    impl Context for TrappingFilter {}

    impl HttpContext for TrappingFilter {
        fn on_http_request_headers(&mut self, n: usize, end_of_stream: bool) -> Action {
            if host::header(MapType::HttpRequestHeaders, HEADER).is_some() {
                // On wasm32 a Wasm `unreachable` trap: what a bug (panic = abort) does to the VM.
                std::process::abort();
            }
            self.0.on_http_request_headers(n, end_of_stream)
        }
        fn on_http_request_body(&mut self, size: usize, end_of_stream: bool) -> Action {
            self.0.on_http_request_body(size, end_of_stream)
        }
        fn on_http_request_trailers(&mut self, n: usize) -> Action {
            self.0.on_http_request_trailers(n)
        }
        fn on_http_response_headers(&mut self, n: usize, end_of_stream: bool) -> Action {
            self.0.on_http_response_headers(n, end_of_stream)
        }
        fn on_http_response_body(&mut self, size: usize, end_of_stream: bool) -> Action {
            self.0.on_http_response_body(size, end_of_stream)
        }
        fn on_http_response_trailers(&mut self, n: usize) -> Action {
            self.0.on_http_response_trailers(n)
        }
        fn on_log(&mut self) {
            self.0.on_log()
        }
    }
}
