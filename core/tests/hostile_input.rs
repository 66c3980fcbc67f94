//! Fixed-seed property tests with hostile input: whatever bytes arrive, in whatever pieces, the
//! meter never panics, keeps its memory bounded, and gives the same record for any chunking.
//! (Longer, coverage-guided runs: the `cargo fuzz` targets in `fuzz/`.)

use std::rc::Rc;

use llm_cost_core::{Call, Forward, MeterConfig, RequestHead, ResponseHead, ResponsePlan};

/// xorshift64: deterministic, so a failure names its seed and reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Pieces that make SSE streams interesting: field names, line ends, JSON fragments, usage,
/// `[DONE]`, invalid UTF-8, long runs.
const PIECES: &[&[u8]] = &[
    b"data: ",
    b"data:",
    b": OPENROUTER PROCESSING",
    b"event: x",
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"[DONE]",
    b"{\"model\":\"openai/gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34}}",
    b"{\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"x\"}}],\"usage\":null}",
    b"{\"usage\":{\"prompt_tokens\":18446744073709551615,\"completion_tokens\":18446744073709551615}}",
    b"{\"error\":{\"code\":500}}",
    b"{\"type\":\"message_delta\",\"usage\":{\"output_tokens\":9}}",
    b"{\"usageMetadata\":{\"promptTokenCount\":3}}",
    b"{\"usage\":",
    b"\"",
    b"}",
    b"\xff\xfe\xc3",
    b"\xe2\x80",
    b"\x99",
    b"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
];

fn random_stream(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..rng.below(200) {
        out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
    }
    out
}

const PATHS: [&str; 4] = [
    "/api/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
];

/// Streams `body` in pieces cut at `cuts`; returns the record JSON, the client's bytes and the
/// most memory the scan held at any point.
fn meter(
    config: &Rc<MeterConfig>,
    path: &str,
    request: &[u8],
    body: &[u8],
    cuts: &[usize],
) -> (String, Vec<u8>) {
    let head = RequestHead {
        method: "POST",
        host: "gw",
        path,
        content_type: Some("application/json"),
        ..RequestHead::default()
    };
    let mut call = Call::new(config, head, 0);
    let _ = call.rewrite_request(request);
    let plan = call.on_response_head(ResponseHead {
        status: 200,
        content_type: Some("text/event-stream"),
        ..ResponseHead::default()
    });
    assert_eq!(plan, ResponsePlan::Stream);
    let mut client = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain(std::iter::once(&body.len())) {
        match call.feed_stream(&body[start..cut]) {
            Forward::Unchanged => client.extend_from_slice(&body[start..cut]),
            Forward::Replace(bytes) => client.extend_from_slice(&bytes),
        }
        start = cut;
    }
    let outcome = call.finish_stream(1);
    client.extend_from_slice(&outcome.sse_comment);
    (outcome.record_json, client)
}

#[test]
fn random_streams_in_random_chunks_never_panic_and_agree() {
    let config = Rc::new(MeterConfig::from_json(br#"{"max_sse_event_bytes": 300}"#).unwrap());
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for case in 0..3000 {
        let body = random_stream(&mut rng);
        let path = PATHS[case % PATHS.len()];
        // Half the cases inject stream_options, so usage-chunk hiding is exercised too.
        let request: &[u8] = if case % 2 == 0 {
            br#"{"model":"gpt-4o","stream":true}"#
        } else {
            br#"{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}"#
        };
        let (whole, whole_client) = meter(&config, path, request, &body, &[]);
        let mut cuts: Vec<usize> = (0..rng.below(20))
            .map(|_| rng.below(body.len().max(1)))
            .collect();
        cuts.sort_unstable();
        cuts.dedup();
        let (split, split_client) = meter(&config, path, request, &body, &cuts);
        assert_eq!(
            split, whole,
            "case {case}: record differs for cuts {cuts:?}"
        );
        assert_eq!(
            split_client, whole_client,
            "case {case}: client bytes differ"
        );
        let record: serde_json::Value = serde_json::from_str(&whole).unwrap();
        assert!(record["cost_status"].is_string(), "case {case}");
    }
}

#[test]
fn random_json_bodies_and_requests_never_panic() {
    let config = Rc::new(MeterConfig::default());
    let mut rng = Rng(0x0dd_ba11);
    for case in 0..400 {
        let body = random_stream(&mut rng);
        let request = random_stream(&mut rng);
        let head = RequestHead {
            method: "POST",
            host: "openrouter.ai",
            path: PATHS[case % PATHS.len()],
            ..RequestHead::default()
        };
        let mut call = Call::new(&config, head, 0);
        let _ = call.rewrite_request(&request);
        call.on_response_head(ResponseHead {
            status: 200,
            content_type: Some("application/json"),
            ..ResponseHead::default()
        });
        let outcome = call.finish_json(&body, 1);
        assert!(!outcome.record_json.is_empty());
    }
}

#[test]
fn absurd_token_counts_are_an_error_not_a_wrap() {
    let config = Rc::new(MeterConfig::default());
    let body = br#"data: {"model":"openai/o1-pro","choices":[],"usage":{"prompt_tokens":18446744073709551615,"completion_tokens":18446744073709551615}}

"#;
    let (record, _) = meter(&config, "/api/v1/chat/completions", b"{}", body, &[]);
    let record: serde_json::Value = serde_json::from_str(&record).unwrap();
    assert_eq!(record["cost_status"], "error");
    assert_eq!(record["error"], "cost_overflow");
}
