//! The SSE parser on arbitrary bytes: never panics, memory bounded, and the events do not depend
//! on where the input is cut (the first byte picks the cut).
#![no_main]

use libfuzzer_sys::fuzz_target;
use llm_cost_core::sse::SseParser;

fn events(chunks: &[&[u8]]) -> (Vec<(Vec<u8>, u64, u64)>, u64) {
    let mut parser = SseParser::new(256);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut |e| out.push((e.data.to_vec(), e.start, e.end)));
        // Lengths are capped at 256 (data) and 256 + 64 (a line); Vec growth may double capacity.
        assert!(parser.retained_bytes() <= 2 * (2 * 256 + 64));
    }
    parser.finish(&mut |e| out.push((e.data.to_vec(), e.start, e.end)));
    (out, parser.oversized_events())
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize).min(body.len());
    let whole = events(&[body]);
    let split = events(&[&body[..cut], &body[cut..]]);
    assert_eq!(whole, split);
});
