//! Fixed-seed property tests with hostile input: whatever bytes arrive, in whatever pieces, the
//! meter never panics, keeps its memory bounded, and gives the same record for any chunking.
//! (Longer, coverage-guided runs: the `cargo fuzz` targets in `fuzz/`.)

use std::rc::Rc;

use llm_cost_core::replay::{replay, Recorded};
use llm_cost_core::{Call, MeterConfig, RequestHead, ResponseHead, ResponsePlan};

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
    let replayed = replay(
        config,
        &Recorded {
            cuts,
            end_ms: 1,
            ..Recorded::post("gw", path, request, "text/event-stream", body)
        },
    );
    assert_eq!(replayed.response_plan, ResponsePlan::Stream);
    (replayed.outcome.record_json, replayed.client)
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

/// The whole JSON body `body` answered `path`: the record.
fn meter_json(config: &Rc<MeterConfig>, path: &str, body: &[u8]) -> serde_json::Value {
    let replayed = replay(
        config,
        &Recorded {
            end_ms: 1,
            ..Recorded::post("gw", path, b"{}", "application/json", body)
        },
    );
    let plan = replayed.response_plan;
    assert!(matches!(plan, ResponsePlan::BufferJson { .. }), "{plan:?}");
    serde_json::from_str(&replayed.outcome.record_json).unwrap()
}

/// Counts whose sum (or price) does not fit in 64 bits, in every wire format, as a whole body
/// and as a stream: an error record, never a wrapped count priced as `exact`.
#[test]
fn absurd_counts_in_every_format_are_an_error_not_a_wrap() {
    const MAX: &str = "18446744073709551615";
    let config = Rc::new(MeterConfig::default());
    let chat = format!(
        r#"{{"model":"openai/gpt-4o","choices":[],"usage":{{"prompt_tokens":{MAX},"completion_tokens":{MAX}}}}}"#
    );
    let responses_usage = format!(r#"{{"input_tokens":{MAX},"output_tokens":{MAX}}}"#);
    let anthropic_usage =
        format!(r#"{{"input_tokens":{MAX},"cache_read_input_tokens":5,"output_tokens":1}}"#);
    let anthropic_cache_write = format!(
        r#"{{"input_tokens":3,"cache_read_input_tokens":{MAX},"cache_creation_input_tokens":2,"output_tokens":1}}"#
    );
    let anthropic_iterations = format!(
        r#"{{"input_tokens":1,"output_tokens":1,"iterations":[{{"input_tokens":{MAX},"output_tokens":1}},{{"input_tokens":5,"output_tokens":1}}]}}"#
    );
    let anthropic_output_iterations = format!(
        r#"{{"input_tokens":1,"output_tokens":1,"iterations":[{{"input_tokens":1,"output_tokens":{MAX}}},{{"input_tokens":1,"output_tokens":7}}]}}"#
    );
    let gemini = |metadata: String| {
        format!(
            r#"{{"modelVersion":"gemini-2.5-flash","candidates":[{{"finishReason":"STOP"}}],"usageMetadata":{metadata}}}"#
        )
    };
    let gemini_prompt = gemini(format!(
        r#"{{"promptTokenCount":{MAX},"toolUsePromptTokenCount":5,"candidatesTokenCount":1}}"#
    ));
    let gemini_completion = gemini(format!(
        r#"{{"promptTokenCount":1,"candidatesTokenCount":{MAX},"thoughtsTokenCount":5}}"#
    ));
    let anthropic_body =
        |usage: &str| format!(r#"{{"model":"claude-sonnet-4-5","usage":{usage}}}"#);
    let anthropic_stream = |usage: &str| {
        format!(
            "data: {{\"type\":\"message_start\",\"message\":{{\"model\":\"claude-sonnet-4-5\",\"usage\":{{\"input_tokens\":1}}}}}}\n\n\
             data: {{\"type\":\"message_delta\",\"usage\":{usage}}}\n\n\
             data: {{\"type\":\"message_stop\"}}\n\n"
        )
    };
    let sse = |event: &str| format!("data: {event}\n\n");
    let cases: Vec<(&str, &str, String, String)> = vec![
        (
            "chat",
            "/api/v1/chat/completions",
            chat.clone(),
            format!("{}data: [DONE]\n\n", sse(&chat)),
        ),
        (
            "responses",
            "/v1/responses",
            format!(r#"{{"model":"gpt-4o","usage":{responses_usage}}}"#),
            sse(&format!(
                r#"{{"type":"response.completed","response":{{"model":"gpt-4o","usage":{responses_usage}}}}}"#
            )),
        ),
        (
            "anthropic input + cache read",
            "/v1/messages",
            anthropic_body(&anthropic_usage),
            anthropic_stream(&anthropic_usage),
        ),
        (
            "anthropic cache read + write",
            "/v1/messages",
            anthropic_body(&anthropic_cache_write),
            anthropic_stream(&anthropic_cache_write),
        ),
        (
            "anthropic input iterations",
            "/v1/messages",
            anthropic_body(&anthropic_iterations),
            anthropic_stream(&anthropic_iterations),
        ),
        (
            "anthropic output iterations",
            "/v1/messages",
            anthropic_body(&anthropic_output_iterations),
            anthropic_stream(&anthropic_output_iterations),
        ),
        (
            "gemini prompt + tool use",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            gemini_prompt.clone(),
            sse(&gemini_prompt),
        ),
        (
            "gemini candidates + thoughts",
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            gemini_completion.clone(),
            sse(&gemini_completion),
        ),
    ];
    for (name, path, body, stream) in cases {
        // A whole JSON body (Gemini's non-streaming method for the JSON case).
        let json_path = path.replace(":streamGenerateContent?alt=sse", ":generateContent");
        let json = meter_json(&config, &json_path, body.as_bytes());
        let (streamed, _) = meter(&config, path, b"{}", stream.as_bytes(), &[]);
        let streamed: serde_json::Value = serde_json::from_str(&streamed).unwrap();
        for (how, record) in [("json", json), ("stream", streamed)] {
            assert_eq!(record["cost_status"], "error", "{name} ({how}): {record}");
            assert_eq!(record["error"], "cost_overflow", "{name} ({how}): {record}");
            assert!(record["cost_usd"].is_null(), "{name} ({how}): {record}");
        }
    }
}
