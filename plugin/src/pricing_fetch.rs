//! Live prices in Envoy (`pricing.source`): the root context fetches the price document with
//! `dispatch_http_call`, the core accepts or rejects it (`llm_cost_core::price_doc`), and the
//! accepted document is shared with the other worker VMs of the process through Envoy shared data.
//!
//! One fetch per interval per process: the shared key [`NEXT_KEY`] holds when the next fetch is
//! due; on its timer every VM reads it, and the one whose compare-and-swap moves it on by an
//! interval (plus jitter) fetches. The accepted document is stored under [`DOC_KEY`] prefixed by
//! its fetch time; every VM parses it when its CAS token changes and installs a new
//! `MeterConfig` (overrides and adjustments kept). A call holds the `Rc<MeterConfig>` it started
//! with, so a refresh mid-call never mixes tables. Until the first good fetch, and whenever the
//! source fails, the table in use (at first the bundled one) stays.

use std::rc::Rc;
use std::time::Duration;

use llm_cost_core::price_doc::{self, PriceSource};
use llm_cost_core::{ConfigError, MeterConfig, PriceTable};
use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, MetricType};

use crate::budget::host_creation_token;
use crate::host;
use crate::metrics::{Metrics, PREFIX};

/// When the next fetch is due (Unix ms, decimal text), for the whole process.
pub const NEXT_KEY: &str = "llm_cost.pricing.next_fetch";
/// The accepted document: `<fetch Unix ms>\n<document bytes>`.
pub const DOC_KEY: &str = "llm_cost.pricing.document";
/// When prices were last confirmed current (a fetch accepted or unchanged; Unix ms text).
pub const CONFIRMED_KEY: &str = "llm_cost.pricing.confirmed";
/// A document larger than this is not read (LiteLLM's whole file is about 3.5 MB).
pub const MAX_DOCUMENT_BYTES: usize = 16 << 20;

/// Refresh results, as `llmcost.pricing.refreshes_total.result=<result>` counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refresh {
    /// Accepted, and the table changed.
    Ok,
    /// Fetched and refused by the checks (the last good table stays).
    Rejected,
    /// Not fetched: the cluster refused, no answer, timeout or a non-2xx status.
    Failed,
    /// Fetched, accepted, same prices as the table in use.
    Unchanged,
}

impl Refresh {
    fn as_str(self) -> &'static str {
        match self {
            Refresh::Ok => "ok",
            Refresh::Rejected => "rejected",
            Refresh::Failed => "failed",
            Refresh::Unchanged => "unchanged",
        }
    }
}

/// The live-price state of one VM's root context.
pub struct LivePrices {
    source: PriceSource,
    max_removed_percent: u8,
    /// The configuration as loaded (bundled table): every live table is installed over it.
    base: Rc<MeterConfig>,
    /// The table in use (the baseline of the removed-models check).
    table: PriceTable,
    /// Token of our pending fetch, if any.
    in_flight: Option<u32>,
    /// CAS token of the shared document this VM installed.
    seen: Option<u32>,
    age_gauge: Option<u32>,
}

impl LivePrices {
    /// The state for `config`, if it has a `pricing.source`.
    pub fn new(config: &Rc<MeterConfig>) -> Option<LivePrices> {
        let live = config.live_pricing.as_ref()?;
        let source = live.source.clone()?;
        Some(LivePrices {
            source,
            max_removed_percent: live.max_removed_percent,
            base: Rc::clone(config),
            table: config.pricing.clone(),
            in_flight: None,
            seen: None,
            age_gauge: None,
        })
    }

    /// True if `token` is our fetch.
    pub fn owns(&self, token: u32) -> bool {
        self.in_flight == Some(token)
    }

    /// On the root's timer: installs a document another VM shared, starts the process's fetch
    /// when due, sets the age gauge. A new configuration when the table changed.
    pub fn on_tick(&mut self, metrics: &mut Metrics) -> Option<Rc<MeterConfig>> {
        let now = host::now_unix_ms();
        let installed = self.pick_up_shared();
        if self.in_flight.is_none() && self.take_turn(now) {
            self.dispatch(metrics);
        }
        self.set_age_gauge(now);
        installed
    }

    /// Our fetch answered (`body_size` bytes): checks it, shares it if accepted. A new
    /// configuration when the table changed.
    pub fn on_response(
        &mut self,
        body_size: usize,
        metrics: &mut Metrics,
    ) -> Option<Rc<MeterConfig>> {
        self.in_flight = None;
        let status = host::header(MapType::HttpCallResponseHeaders, ":status")
            .and_then(|s| s.parse::<u16>().ok());
        if !matches!(status, Some(200..=299)) {
            log::warn!(
                "llm-cost: price source {:?} answered {status:?}; prices unchanged",
                self.source.cluster
            );
            count(metrics, Refresh::Failed);
            return None;
        }
        if body_size > MAX_DOCUMENT_BYTES {
            log::warn!(
                "llm-cost: price document of {body_size} bytes is too large; prices unchanged"
            );
            count(metrics, Refresh::Rejected);
            return None;
        }
        let body = host::body(BufferType::HttpCallResponseBody, body_size);
        let now = host::now_unix_ms();
        let baseline =
            (self.seen.is_some() || self.source.format.shares_bundled_ids()).then_some(&self.table);
        match price_doc::accept(
            self.source.format,
            &body,
            now,
            baseline,
            self.max_removed_percent,
        ) {
            Err(why) => {
                log::warn!(
                    "llm-cost: price document rejected ({}): {why}; prices unchanged",
                    why.code()
                );
                count(metrics, Refresh::Rejected);
                None
            }
            Ok(accepted) => {
                set(CONFIRMED_KEY, now.to_string().as_bytes());
                let same = price_doc::content_hash_of(accepted.table.version())
                    == price_doc::content_hash_of(self.table.version());
                if same || accepted.diff.is_empty() {
                    count(metrics, Refresh::Unchanged);
                    return None;
                }
                // The configuration may refuse the table: a `models` entry for a model it lacks
                // must price every billed component. Then it is rejected like a bad document.
                let config = match self.install(accepted.table) {
                    Ok(config) => config,
                    Err(e) => {
                        log::warn!("llm-cost: price document rejected (configuration): {e}; prices unchanged");
                        count(metrics, Refresh::Rejected);
                        return None;
                    }
                };
                count(metrics, Refresh::Ok);
                let mut shared = format!("{now}\n").into_bytes();
                shared.extend_from_slice(&body);
                set(DOC_KEY, &shared);
                // Our own write: do not parse it again on the next tick.
                self.seen = hostcalls::get_shared_data(DOC_KEY)
                    .ok()
                    .and_then(|(_, cas)| cas);
                log::info!(
                    "llm-cost: prices {} installed ({} models: {}; {} bytes checked in {} ms, VM memory {} KiB)",
                    self.table.version(),
                    self.table.len(),
                    accepted.diff,
                    body.len(),
                    host::now_unix_ms().saturating_sub(now),
                    linear_memory_kib()
                );
                Some(config)
            }
        }
    }

    /// The configuration with `table` (overrides and adjustments kept), now the table in use.
    fn install(&mut self, table: PriceTable) -> Result<Rc<MeterConfig>, ConfigError> {
        let config = (*self.base).clone().with_pricing(table.clone())?;
        self.table = table;
        Ok(Rc::new(config))
    }

    /// Parses the shared document if another VM stored a new one since we last looked.
    fn pick_up_shared(&mut self) -> Option<Rc<MeterConfig>> {
        let (bytes, cas) = hostcalls::get_shared_data(DOC_KEY).ok()?;
        let (bytes, cas) = (bytes?, cas?);
        if self.seen == Some(cas) {
            return None;
        }
        self.seen = Some(cas);
        let (fetched, document) = split_shared(&bytes)?;
        let started = host::now_unix_ms();
        // Already checked by the VM that fetched it: parsed here only to build our own table.
        match price_doc::accept(self.source.format, document, fetched, None, 100) {
            Ok(accepted) => {
                let config = match self.install(accepted.table) {
                    Ok(config) => config,
                    Err(e) => {
                        log::warn!(
                            "llm-cost: shared price document refused by the configuration: {e}"
                        );
                        return None;
                    }
                };
                log::info!(
                    "llm-cost: prices {} taken from the shared document ({} bytes parsed in {} ms, VM memory {} KiB)",
                    self.table.version(),
                    document.len(),
                    host::now_unix_ms().saturating_sub(started),
                    linear_memory_kib()
                );
                Some(config)
            }
            Err(why) => {
                log::warn!("llm-cost: shared price document unusable: {why}");
                None
            }
        }
    }

    /// True if this VM won the process's fetch that is due now (the shared due time moved on).
    fn take_turn(&mut self, now: u64) -> bool {
        let Ok((bytes, cas)) = hostcalls::get_shared_data(NEXT_KEY) else {
            return false;
        };
        let due = bytes
            .as_deref()
            .and_then(|b| std::str::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0);
        if now < due {
            return false;
        }
        let cas = match cas {
            Some(cas) => Some(cas),
            None => host_creation_token(),
        };
        let Some(cas) = cas else {
            return false;
        };
        let next = now.saturating_add(next_delay_ms(self.source.refresh_interval_s, now));
        matches!(
            hostcalls::set_shared_data(NEXT_KEY, Some(next.to_string().as_bytes()), Some(cas)),
            Ok(())
        )
    }

    fn dispatch(&mut self, metrics: &mut Metrics) {
        let s = &self.source;
        let headers = vec![
            (":method", "GET"),
            (":path", s.path.as_str()),
            (":authority", s.authority.as_str()),
            ("accept", "application/json"),
        ];
        let timeout = Duration::from_millis(s.timeout_ms);
        match hostcalls::dispatch_http_call(&s.cluster, headers, None, vec![], timeout) {
            Ok(token) => self.in_flight = Some(token),
            Err(status) => {
                log::warn!(
                    "llm-cost: price source cluster {:?} refused: {status:?}",
                    s.cluster
                );
                count(metrics, Refresh::Failed);
            }
        }
    }

    /// `llmcost.pricing.table_age_seconds`: seconds since prices were last confirmed current (for the
    /// bundled table: since its snapshot date).
    fn set_age_gauge(&mut self, now: u64) {
        let confirmed = hostcalls::get_shared_data(CONFIRMED_KEY)
            .ok()
            .and_then(|(b, _)| b)
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<u64>().ok())
            .or_else(|| bundled_snapshot_ms(self.base.pricing.version()));
        let Some(confirmed) = confirmed else {
            return;
        };
        let id = match self.age_gauge {
            Some(id) => id,
            None => match hostcalls::define_metric(
                MetricType::Gauge,
                &format!("{PREFIX}.pricing.table_age_seconds"),
            ) {
                Ok(id) => *self.age_gauge.insert(id),
                Err(_) => return,
            },
        };
        let _ = hostcalls::record_metric(id, now.saturating_sub(confirmed) / 1000);
    }
}

fn count(metrics: &mut Metrics, result: Refresh) {
    metrics.add(
        &format!(
            "{PREFIX}.pricing.refreshes_total.result={}",
            result.as_str()
        ),
        1,
    );
}

fn set(key: &str, value: &[u8]) {
    if let Err(status) = hostcalls::set_shared_data(key, Some(value), None) {
        log::warn!("llm-cost: shared data {key} not stored: {status:?}");
    }
}

/// The VM's linear memory (it only grows: the high-water mark), for the install log lines.
fn linear_memory_kib() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) * 64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}

/// The interval plus a jitter of up to a tenth of it (drawn from the clock: fetches of many
/// proxies started together spread out).
pub fn next_delay_ms(interval_s: u64, now: u64) -> u64 {
    let interval = interval_s.saturating_mul(1000);
    let jitter = interval / 10;
    interval
        + if jitter == 0 {
            0
        } else {
            now.wrapping_mul(2_654_435_761) % jitter
        }
}

/// `<ms>\n<document>` → (ms, document).
pub fn split_shared(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let newline = bytes.iter().position(|&b| b == b'\n')?;
    let ms = std::str::from_utf8(&bytes[..newline]).ok()?.parse().ok()?;
    Some((ms, &bytes[newline + 1..]))
}

/// The snapshot date in a bundled version (`openrouter-2026-08-19+…`) as Unix ms.
fn bundled_snapshot_ms(version: &str) -> Option<u64> {
    let start = version.find("-20")? + 1;
    let date = version.get(start..start + 10)?;
    llm_cost_core::time::parse_rfc3339_millis(&format!("{date}T00:00:00Z"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_a_tenth_of_the_interval() {
        for now in [0, 1, 1_796_169_600_123, u64::MAX] {
            let delay = next_delay_ms(600, now);
            assert!((600_000..660_000).contains(&delay), "{delay}");
        }
        assert_eq!(next_delay_ms(0, 5), 0);
    }

    #[test]
    fn shared_documents_carry_their_fetch_time() {
        assert_eq!(split_shared(b"42\n{}"), Some((42, &b"{}"[..])));
        assert_eq!(split_shared(b"x\n{}"), None);
        assert_eq!(split_shared(b"{}"), None);
    }

    #[test]
    fn the_bundled_snapshot_date_dates_the_bundled_table() {
        let ms = bundled_snapshot_ms("openrouter-2026-08-19+abcd1234").unwrap();
        assert_eq!(
            llm_cost_core::time::rfc3339_millis(ms),
            "2026-08-19T00:00:00.000Z"
        );
        assert!(bundled_snapshot_ms(PriceTable::bundled().version()).is_some());
    }
}
