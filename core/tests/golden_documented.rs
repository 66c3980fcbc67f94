//! Golden tests of the audio endpoints on documented-shape fakes: no public recording of an OpenAI
//! transcription or speech answer with usage was found (fixtures/SOURCES.md, "Audio"), so
//! `fixtures/documented/` holds answers in exactly the documented shape, each labelled as a fake in
//! its meta. Each goes through the core as a host would run it, against
//! `fixtures/golden-documented.json` (written by the independent reference
//! `fixtures/make_golden.py`), with the bundled table.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use llm_cost_core::replay::{replay, Recorded};
use llm_cost_core::{MeterConfig, RequestHead, ResponseHead};
use serde_json::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/documented")
}

fn golden() -> BTreeMap<String, Value> {
    let text = fs::read_to_string(dir().join("../golden-documented.json")).expect("golden");
    serde_json::from_str(&text).expect("golden-documented.json is JSON")
}

/// The request's content type: a form names its boundary on its first line.
fn request_type(request: &[u8]) -> String {
    match request.strip_prefix(b"--") {
        Some(rest) => {
            let line = rest.split(|&b| b == b'\r').next().unwrap();
            format!(
                "multipart/form-data; boundary={}",
                std::str::from_utf8(line).unwrap()
            )
        }
        None => "application/json".into(),
    }
}

fn response_type(file: &str) -> &'static str {
    match file.rsplit_once('.').map(|(_, ext)| ext) {
        Some("json") => "application/json",
        Some("sse") => "text/event-stream",
        Some("txt") => "text/plain; charset=utf-8",
        Some("mp3") => "audio/mpeg",
        other => panic!("unexpected fixture type {other:?}"),
    }
}

#[test]
fn every_documented_shape_audio_answer_is_priced_as_the_reference_says() {
    let golden = golden();
    assert_eq!(golden.len(), 8);
    let config = Rc::new(MeterConfig::from_json(br#"{"estimate_missing_usage": false}"#).unwrap());
    for (name, want) in &golden {
        let meta: Value =
            serde_json::from_slice(&fs::read(dir().join(format!("{name}.meta.json"))).unwrap())
                .unwrap();
        assert_eq!(
            meta["documented_shape_fake"], true,
            "{name} is labelled a fake"
        );
        let file = want["file"].as_str().unwrap();
        let body = fs::read(dir().join(file)).unwrap();
        let request = fs::read(dir().join(format!("{name}.request"))).unwrap();
        let content_type = request_type(&request);
        let recorded = Recorded {
            request_head: RequestHead {
                method: "POST",
                host: "api.openai.com",
                path: want["path"].as_str().unwrap(),
                content_type: Some(&content_type),
                content_length: Some(request.len() as u64),
                ..RequestHead::default()
            },
            request: Some(&request),
            response_head: ResponseHead {
                status: 200,
                content_type: Some(response_type(file)),
                ..ResponseHead::default()
            },
            response: &body,
            start_ms: 1,
            end_ms: 2,
            ..Recorded::default()
        };
        let replayed = replay(&config, &recorded);
        let record: Value = serde_json::from_str(&replayed.outcome.record_json).unwrap();
        for field in [
            "cost_status",
            "cost_usd",
            "error",
            "priced_as",
            "model_requested",
        ] {
            assert_eq!(record[field], want[field], "{name}: {field}");
        }
        for field in [
            "prompt_tokens",
            "audio_prompt_tokens",
            "completion_tokens",
            "audio_completion_tokens",
            "audio_duration_ms",
            "input_characters",
        ] {
            if let Some(n) = want.get(field) {
                assert_eq!(&record[field], n, "{name}: {field}");
            }
        }
        // The answer reaches the client as it came (a stream may end with the cost comment).
        assert!(replayed.client.starts_with(&body), "{name}");
    }
}
