//! Where cost records go after the response (wasm32 only): a Cloudflare Queue when the
//! [`RECORDS_BINDING`] producer exists, else one POST per record to `LOG_SINK_URL`, else only the
//! log line the Worker always writes; and, with the [`ANALYTICS_BINDING`] dataset, one Analytics
//! Engine data point per call (layout: [`crate::analytics`]).
//!
//! With the queue, this Worker is also the queue's consumer ([`consume`]): each batch goes to
//! `LOG_SINK_URL` as one NDJSON POST; a batch the sink refuses (no answer, or not 2xx) is handed
//! back to the queue to be redelivered later, waiting longer each time
//! ([`llm_cost_core::retry::redelivery_delay_s`]), until the consumer's `max_retries` in
//! wrangler.toml sends it to the dead-letter queue. Delivery is at least once: a sink that stored
//! a batch but failed to answer gets it again, and `llm-cost collect` drops the copies (the lines
//! are identical; each record carries its `request_id`).
//!
//! Every record that will never reach the sink is counted in one drop line with its reason, and
//! every batch the sink acknowledged in one delivered line ([`crate::accounting`]): with the
//! record lines and the Queue's backlog they make the accounting identity.

use std::rc::Rc;
use std::time::Duration;

use llm_cost_core::retry::redelivery_delay_s;
use llm_cost_core::CostRecord;
use worker::wasm_bindgen::JsValue;
use worker::*;

use crate::accounting::{delivered_line, dropped_line, is_dead_letter_queue, DropReason};
use crate::analytics::{data_point, ANALYTICS_BINDING};
use crate::edge::settings_for;
use crate::settings::Settings;

/// The Queue producer binding (wrangler.toml `[[queues.producers]]`) that carries the records.
pub const RECORDS_BINDING: &str = "RECORDS";

/// The first wait before a refused batch is redelivered (seconds); it doubles per round.
pub const REDELIVERY_BASE_S: u32 = 1;
/// The longest wait between redeliveries (seconds).
pub const REDELIVERY_MAX_S: u32 = 300;

/// How this isolate delivers records.
#[derive(Clone)]
pub struct Delivery {
    route: Route,
    analytics: Option<Analytics>,
}

/// The Analytics Engine dataset and what its points carry.
#[derive(Clone)]
struct Analytics {
    dataset: AnalyticsEngineDataset,
    labels: Rc<[String]>,
    index_by: Rc<str>,
}

/// Where the record line goes.
#[derive(Clone)]
enum Route {
    /// Enqueue each record; the consumer posts batches (and `LOG_SINK_URL` is where they go).
    Queue(Queue, Option<String>),
    /// POST each record to this sink, retried twice.
    Post(String),
    /// The log line only.
    LogOnly,
}

impl Delivery {
    /// The delivery `env` and `s` provide for.
    pub fn new(env: &Env, s: &Settings) -> Delivery {
        let route = match (env.queue(RECORDS_BINDING), &s.log_sink_url) {
            (Ok(queue), sink) => Route::Queue(queue, sink.clone()),
            (Err(_), Some(sink)) => Route::Post(sink.clone()),
            (Err(_), None) => Route::LogOnly,
        };
        let analytics = env
            .analytics_engine(ANALYTICS_BINDING)
            .ok()
            .map(|dataset| Analytics {
                dataset,
                labels: match &s.meter {
                    Ok(meter) => meter.attribution.metric_labels.clone().into(),
                    Err(_) => Rc::from(Vec::new()),
                },
                index_by: Rc::from(s.analytics_index.as_str()),
            });
        Delivery { route, analytics }
    }

    /// Writes the call's Analytics Engine data point, if the dataset is bound. Fire and forget
    /// (`writeDataPoint` does not wait); a failure is logged, never raised.
    pub fn write_point(&self, record: &CostRecord) {
        let Some(analytics) = &self.analytics else {
            return;
        };
        let point = data_point(record, &analytics.labels, &analytics.index_by);
        let written = AnalyticsEngineDataPointBuilder::new()
            .indexes([point.index.as_str()])
            .blobs(point.blobs)
            .doubles(point.doubles)
            .write_to(&analytics.dataset);
        if written.is_err() {
            console_warn!("llm-cost: Analytics Engine data point not written");
        }
    }

    /// Sends one record (a JSON line without its newline) its way. A queue that refuses it falls
    /// back to the direct POST when a sink is set; either way the log line is the last copy.
    pub async fn deliver(self, record: String) {
        match self.route {
            Route::LogOnly => {}
            Route::Queue(queue, sink) => {
                if let Err(why) = queue.send(record.clone()).await {
                    console_warn!("llm-cost: records queue refused a record ({why}); posting it");
                    match sink {
                        Some(sink) => post_record(sink, record).await,
                        None => {
                            console_warn!("{}", dropped_line(DropReason::QueueRefused, [&*record]))
                        }
                    }
                }
            }
            Route::Post(sink) => post_record(sink, record).await,
        }
    }
}

/// The records queue's consumer: one NDJSON POST per batch to `LOG_SINK_URL`, acknowledged when
/// the sink answers 2xx, redelivered later otherwise. Batches of the dead-letter queue (what the
/// records queue gave up on) are counted as dropped and acknowledged.
#[event(queue)]
pub async fn consume(batch: MessageBatch<String>, env: Env, _ctx: Context) -> Result<()> {
    let messages = batch.messages()?;
    if is_dead_letter_queue(&batch.queue()) {
        let records = messages.iter().map(|m| m.body().as_str());
        console_warn!("{}", dropped_line(DropReason::DeadLetter, records));
        batch.ack_all();
        return Ok(());
    }
    let loaded = settings_for(&env);
    let sink = match loaded.as_ref() {
        Ok(s) => s.log_sink_url.clone(),
        Err(_) => None,
    };
    let Some(sink) = sink else {
        // Nowhere to send them (each was logged when it was made): keep the queue moving.
        console_warn!(
            "llm-cost: records queue has no LOG_SINK_URL to deliver to; {} records stay in the logs only",
            messages.len()
        );
        let records = messages.iter().map(|m| m.body().as_str());
        console_warn!("{}", dropped_line(DropReason::NoSink, records));
        batch.ack_all();
        return Ok(());
    };
    let mut body = String::new();
    for message in &messages {
        body.push_str(message.body());
        body.push('\n');
    }
    match post_line(&sink, &body).await {
        Ok(()) => {
            batch.ack_all();
            console_log!("{}", delivered_line(messages.len()));
        }
        Err(why) => {
            let now = Date::now().as_millis();
            console_warn!(
                "llm-cost: log sink {why}; {} records back to the queue",
                messages.len()
            );
            for message in &messages {
                let age_ms = now.saturating_sub(message.timestamp().as_millis());
                let delay = redelivery_delay_s(age_ms, REDELIVERY_BASE_S, REDELIVERY_MAX_S);
                message.retry_with_options(
                    &QueueRetryOptionsBuilder::new()
                        .with_delay_seconds(delay)
                        .build(),
                );
            }
        }
    }
    Ok(())
}

/// Waits before the second and third attempt to post a record: doubling from 500 ms, like the
/// filter's collector backoff (`llm_cost_core::retry`). Within `wait_until`'s 30 s.
const SINK_RETRY_DELAYS_MS: [u64; 2] = [500, 1000];

/// POSTs one NDJSON line to the sink, trying again after a failure (no answer, or not 2xx). A
/// sink that stored a line but failed to answer may get it twice: `llm-cost collect` drops the
/// copy. Failures are logged without the URL (it may hold a token).
pub async fn post_record(sink: String, record: String) {
    let line = format!("{record}\n");
    for delay_ms in [0].into_iter().chain(SINK_RETRY_DELAYS_MS) {
        if delay_ms > 0 {
            Delay::from(Duration::from_millis(delay_ms)).await;
        }
        match post_line(&sink, &line).await {
            Ok(()) => return,
            Err(why) => console_warn!("llm-cost: log sink {why}"),
        }
    }
    let attempts = SINK_RETRY_DELAYS_MS.len() + 1;
    console_warn!("llm-cost: log sink failed {attempts} times; record kept in this log only");
    console_warn!(
        "{}",
        dropped_line(DropReason::SinkFailed, [record.as_str()])
    );
}

/// One POST of `line`; the failure, worded for the log.
async fn post_line(sink: &str, line: &str) -> core::result::Result<(), String> {
    let headers = Headers::new();
    headers
        .set("content-type", "application/x-ndjson")
        .map_err(|_| "request not built".to_owned())?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_body(Some(JsValue::from_str(line)));
    let sent = match Request::new_with_init(sink, &init) {
        Ok(req) => Fetch::Request(req).send().await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(resp) if resp.status_code() < 300 => Ok(()),
        Ok(resp) => Err(format!("answered HTTP {}", resp.status_code())),
        Err(_) => Err("unreachable".to_owned()),
    }
}
