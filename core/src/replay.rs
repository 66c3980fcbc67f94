//! Replaying a recorded call (request and response, JSON or SSE, in chunks) through a [`Call`]
//! the way a host drives it: the request body plan, the response plan, every stream chunk, the
//! end. One loop for the CLI (`llm-cost price`), the golden tests and the hosts' unit tests.

use alloc::{rc::Rc, vec::Vec};

use crate::call::{Call, Outcome, RequestBodyPlan, RequestHead, ResponseHead, ResponsePlan};
use crate::config::MeterConfig;
use crate::stream::Forward;

/// How the recorded call ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum End {
    /// The response ended normally.
    #[default]
    Complete,
    /// The client or the upstream went away after the last chunk ([`Call::finish_aborted`]).
    Aborted,
}

/// One recorded call.
#[derive(Clone, Copy, Debug, Default)]
pub struct Recorded<'a> {
    /// The request headers.
    pub request_head: RequestHead<'a>,
    /// The request body, if it was recorded.
    pub request: Option<&'a [u8]>,
    /// The response headers.
    pub response_head: ResponseHead<'a>,
    /// The response body: a JSON document or an SSE stream.
    pub response: &'a [u8],
    /// Offsets at which the response body arrived in pieces (sorted, each ≤ its length).
    pub cuts: &'a [usize],
    /// When the request headers arrived (Unix ms).
    pub start_ms: u64,
    /// When the response ended (Unix ms).
    pub end_ms: u64,
    /// How it ended.
    pub end: End,
}

impl<'a> Recorded<'a> {
    /// A `POST` of a JSON `request` body to `host` `path`, answered `200` with `response` of
    /// `response_type` (`application/json` or `text/event-stream`), in one piece, at time 0.
    /// Set the other fields with struct update: `Recorded { end_ms: 1, ..Recorded::post(..) }`.
    pub fn post(
        host: &'a str,
        path: &'a str,
        request: &'a [u8],
        response_type: &'a str,
        response: &'a [u8],
    ) -> Self {
        Recorded {
            request_head: RequestHead {
                method: "POST",
                host,
                path,
                content_type: Some("application/json"),
                ..RequestHead::default()
            },
            request: Some(request),
            response_head: ResponseHead {
                status: 200,
                content_type: Some(response_type),
                ..ResponseHead::default()
            },
            response,
            ..Recorded::default()
        }
    }
}

/// What replaying a call gave.
#[derive(Clone, Debug)]
pub struct Replayed {
    /// The request body plan the core chose.
    pub request_plan: RequestBodyPlan,
    /// The body sent upstream instead of the recorded one, if the core rewrote it.
    pub rewritten_request: Option<Vec<u8>>,
    /// The response plan the core chose.
    pub response_plan: ResponsePlan,
    /// The bytes the client received: the body as forwarded, then (streams) the held-back bytes
    /// and the `: llm-cost` comment.
    pub client: Vec<u8>,
    /// The end of the call: record, headers, cost.
    pub outcome: Outcome,
}

/// Runs `recorded` through a new [`Call`] on `config`, as a host would.
pub fn replay(config: &Rc<MeterConfig>, recorded: &Recorded<'_>) -> Replayed {
    let mut call = Call::new(config, recorded.request_head, recorded.start_ms);
    let request_plan = call.request_body_plan();
    let mut rewritten_request = None;
    if let Some(body) = recorded.request {
        match request_plan {
            RequestBodyPlan::Buffer { max_bytes } if body.len() > max_bytes => {
                call.request_body_too_large()
            }
            RequestBodyPlan::Observe { max_bytes } if body.len() > max_bytes => {
                call.request_body_too_large()
            }
            RequestBodyPlan::Buffer { .. } => rewritten_request = call.rewrite_request(body),
            RequestBodyPlan::Observe { .. } => call.observe_request(body),
            RequestBodyPlan::ScanForm => call.scan_request_chunk(body),
            RequestBodyPlan::PassThrough => {}
        }
    }
    let response_plan = call.on_response_head(recorded.response_head);
    let body = recorded.response;
    let end_ms = recorded.end_ms;
    let aborted = recorded.end == End::Aborted;
    let (outcome, client) = match response_plan {
        ResponsePlan::Stream => {
            let mut client = Vec::with_capacity(body.len());
            let mut start = 0;
            let ends = recorded
                .cuts
                .iter()
                .copied()
                .chain(core::iter::once(body.len()));
            for cut in ends {
                let cut = cut.clamp(start, body.len());
                let chunk = &body[start..cut];
                match call.feed_stream(chunk) {
                    Forward::Unchanged => client.extend_from_slice(chunk),
                    Forward::Replace(bytes) => client.extend_from_slice(&bytes),
                }
                start = cut;
            }
            let outcome = if aborted {
                call.finish_aborted(end_ms)
            } else {
                call.finish_stream(end_ms)
            };
            client.extend_from_slice(&outcome.sse_comment);
            (outcome, client)
        }
        ResponsePlan::BufferJson { .. } | ResponsePlan::ObserveJson { .. } if aborted => {
            (call.finish_aborted(end_ms), body.to_vec())
        }
        ResponsePlan::BufferJson { max_bytes } | ResponsePlan::ObserveJson { max_bytes }
            if body.len() > max_bytes =>
        {
            call.response_body_too_large();
            (call.finish_passthrough(end_ms), body.to_vec())
        }
        ResponsePlan::BufferJson { .. } | ResponsePlan::ObserveJson { .. } => {
            (call.finish_json(body, end_ms), body.to_vec())
        }
        // Priced when the response headers arrive, before any body.
        ResponsePlan::PassThroughPriced => (call.finish_passthrough(end_ms), body.to_vec()),
        ResponsePlan::PassThrough if aborted => (call.finish_aborted(end_ms), body.to_vec()),
        ResponsePlan::PassThrough => (call.finish_passthrough(end_ms), body.to_vec()),
    };
    Replayed {
        request_plan,
        rewritten_request,
        response_plan,
        client,
        outcome,
    }
}
