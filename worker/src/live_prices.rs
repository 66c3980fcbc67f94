//! Live prices on Cloudflare (wasm32 only): a Cron Trigger fetches the price source and stores
//! an accepted document in KV; every isolate looks at the stored version at most once per
//! `PRICES_CHECK_S` and installs a new one. The decisions are in [`crate::prices`] (and the
//! checks in the core); this file moves bytes between the source, KV and the isolate.
//!
//! Until a document is stored, and whenever KV or the source fails, the table in use stays (at
//! first the bundled one). A new version reaches an isolate within `PRICES_CHECK_S` plus KV's
//! propagation (up to 60 s across locations) after the Cron Trigger stored it.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures_util::future::{select, Either};
use llm_cost_core::{MeterConfig, PriceTable};
use worker::*;

use crate::edge::settings_for;
use crate::prices::{
    install, refresh, PriceFeed, Refresh, DOCUMENT_KEY, MAX_DOCUMENT_BYTES, PRICES_BINDING,
    VERSION_KEY,
};
use crate::settings::Settings;

/// Give up on the price source after this long (the Cron Trigger has 15 minutes; one fetch
/// should not use them).
const FETCH_TIMEOUT_MS: u64 = 10_000;

/// This isolate's live-price state.
#[derive(Default)]
struct Live {
    /// When the stored version was last looked at (Unix ms; 0: never).
    checked_ms: u64,
    /// A look is under way.
    checking: bool,
    /// The installed version and the configuration that prices with it.
    installed: Option<(String, Rc<MeterConfig>)>,
}

thread_local! {
    static LIVE: RefCell<Live> = RefCell::new(Live::default());
}

/// The configuration to meter this request with: the installed live table, else `s.meter`.
/// Looks at the stored version when it is due: the first request of an isolate waits for that
/// look (one KV read), later ones start it in the background (`ctx.wait_until`) and the requests
/// after it see the result.
pub async fn meter(
    env: &Env,
    s: &Settings,
    ctx: &Context,
) -> core::result::Result<Rc<MeterConfig>, String> {
    let base = s.meter.clone()?;
    let (Some(feed), Ok(kv)) = (&s.prices, env.kv(PRICES_BINDING)) else {
        return Ok(base);
    };
    let now = Date::now().as_millis();
    let due = LIVE.with(|live| {
        let mut live = live.borrow_mut();
        let due = !live.checking
            && now.saturating_sub(live.checked_ms) >= feed.check_interval_s.saturating_mul(1000);
        let first = live.checked_ms == 0;
        if due {
            live.checking = true;
            live.checked_ms = now;
        }
        due.then_some(first)
    });
    match due {
        Some(true) => look(kv, Rc::clone(&base), feed.clone()).await,
        Some(false) => ctx.wait_until(look(kv, Rc::clone(&base), feed.clone())),
        None => {}
    }
    Ok(LIVE
        .with(|live| live.borrow().installed.as_ref().map(|(_, c)| Rc::clone(c)))
        .unwrap_or(base))
}

/// Reads the stored version and, when it is new to this isolate, the document; installs it.
async fn look(kv: kv::KvStore, base: Rc<MeterConfig>, feed: PriceFeed) {
    let installed = LIVE.with(|live| live.borrow().installed.as_ref().map(|(v, _)| v.clone()));
    let picked = match kv.get(VERSION_KEY).text().await {
        Ok(Some(version)) if Some(&version) != installed.as_ref() => {
            match kv.get(DOCUMENT_KEY).bytes().await {
                Ok(Some(stored)) => match install(&base, &feed, &stored) {
                    Ok((table, config)) => {
                        console_log!("llm-cost: prices {} installed from KV", table.version());
                        Some((table.version().to_owned(), config))
                    }
                    Err(why) => {
                        console_warn!("llm-cost: {why}; prices unchanged");
                        None
                    }
                },
                Ok(None) => None,
                Err(e) => {
                    console_warn!(
                        "llm-cost: price document not read from KV ({e}); prices unchanged"
                    );
                    None
                }
            }
        }
        Ok(_) => None,
        Err(e) => {
            console_warn!("llm-cost: price version not read from KV ({e}); prices unchanged");
            None
        }
    };
    LIVE.with(|live| {
        let mut live = live.borrow_mut();
        live.checking = false;
        if picked.is_some() {
            live.installed = picked;
        }
    });
}

/// The Cron Trigger (`[triggers] crons` in wrangler.toml): fetches the price source, checks the
/// document against the stored table (else the bundled one) and stores it when it is accepted
/// and different. Every outcome is one log line.
#[event(scheduled)]
pub async fn scheduled(_event: ScheduledEvent, env: Env, _ctx: ScheduleContext) {
    let loaded = settings_for(&env);
    let Ok(s) = loaded.as_ref() else {
        return;
    };
    let (Some(feed), Ok(base)) = (&s.prices, &s.meter) else {
        console_warn!(
            "llm-cost: Cron Trigger without PRICES_URL (or with metering off): nothing to refresh"
        );
        return;
    };
    let Ok(kv) = env.kv(PRICES_BINDING) else {
        console_warn!(
            "llm-cost: Cron Trigger without the `{PRICES_BINDING}` KV binding: prices not stored"
        );
        return;
    };
    let in_use: PriceTable = match kv.get(DOCUMENT_KEY).bytes().await {
        Ok(Some(stored)) => match install(base, feed, &stored) {
            Ok((table, _)) => table,
            Err(_) => base.pricing.clone(),
        },
        _ => base.pricing.clone(),
    };
    let now = Date::now().as_millis();
    let body = match fetch_document(&feed.url).await {
        Ok(body) => body,
        Err(why) => {
            console_warn!("llm-cost: price source {why}; prices unchanged");
            return;
        }
    };
    match refresh(feed, &body, now, &in_use) {
        Refresh::Store { version, document } => {
            let stored = match kv.put_bytes(DOCUMENT_KEY, &document) {
                Ok(put) => put.execute().await.is_ok(),
                Err(_) => false,
            };
            let versioned = stored
                && match kv.put(VERSION_KEY, version.as_str()) {
                    Ok(put) => put.execute().await.is_ok(),
                    Err(_) => false,
                };
            if versioned {
                console_log!(
                    "llm-cost: prices {version} stored in KV ({} bytes)",
                    body.len()
                );
            } else {
                console_warn!("llm-cost: prices {version} accepted but not stored in KV");
            }
        }
        Refresh::Unchanged => console_log!("llm-cost: prices unchanged ({})", in_use.version()),
        Refresh::Rejected(why) => {
            console_warn!("llm-cost: price document rejected ({why}); prices unchanged")
        }
    }
}

/// GETs the document, bounded in time and size; the failure, worded for the log (never the
/// URL: it may carry a token).
async fn fetch_document(url: &str) -> core::result::Result<Vec<u8>, String> {
    let request = async {
        let mut resp = Fetch::Url(Url::parse(url)?).send().await?;
        let status = resp.status_code();
        if !(200..300).contains(&status) {
            return Ok(Err(format!("answered HTTP {status}")));
        }
        let body = resp.bytes().await?;
        if body.len() > MAX_DOCUMENT_BYTES {
            return Ok(Err(format!("sent {} bytes, too large", body.len())));
        }
        Ok::<_, Error>(Ok(body))
    };
    let timeout = Delay::from(Duration::from_millis(FETCH_TIMEOUT_MS));
    match select(Box::pin(request), Box::pin(timeout)).await {
        Either::Left((Ok(result), _)) => result,
        Either::Left((Err(_), _)) => Err("unreachable".into()),
        Either::Right(_) => Err(format!("did not answer within {FETCH_TIMEOUT_MS} ms")),
    }
}
