//! Scanning an SSE response stream as it passes: the latest usage, the model, the end marker
//! (`[DONE]`, `response.completed`, `message_stop`, a Gemini `finishReason`), and (when asked)
//! cutting the chat-completions usage-only chunk the client did not ask for.
//!
//! Memory per stream: the SSE parser's partial line/event (≤ `max_event_bytes`), the latest usage,
//! and, only while hiding, the bytes of the one event not yet complete. Never the whole stream.

use alloc::{string::String, vec::Vec};

use crate::sse::{SseEvent, SseParser};
use crate::usage::{anthropic, EventPrecheck, Format, OutputTokens, Report, Usage};

/// What the host forwards for a chunk.
#[derive(Debug, PartialEq, Eq)]
pub enum Forward {
    /// Forward the chunk exactly as received.
    Unchanged,
    /// Forward these bytes instead (an injected usage-only event was cut, or an unfinished
    /// event is held back until it is known not to be one).
    Replace(Vec<u8>),
}

/// What the stream told us so far.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StreamFacts {
    /// The answering model.
    pub model: Option<String>,
    /// The latest usage.
    pub usage: Option<Usage>,
    /// Anthropic's counters so far (its stream reports them piecewise).
    anthropic: Option<anthropic::Counts>,
    /// The latest usage reported counts whose sum does not fit in 64 bits (`usage` is then
    /// `None`): the call is recorded as `cost_overflow`.
    pub overflow: bool,
    /// The end marker arrived (`[DONE]`, `response.completed`, `message_stop`, `finishReason`).
    pub saw_end: bool,
    /// Events seen.
    pub events: u64,
    /// Events that had to be parsed and were not JSON.
    pub malformed_events: u64,
    /// An `error` object arrived (its code).
    pub error: Option<String>,
    /// The generated output seen so far (only counted when estimating).
    #[cfg(feature = "estimate")]
    generated: crate::estimate::Generated,
}

impl StreamFacts {
    /// Estimated output tokens of the stream seen so far, as `model` frames its output in
    /// `format` (zero unless this build estimates).
    pub fn estimated_output(&self, format: Format, model: Option<&str>) -> OutputTokens {
        #[cfg(feature = "estimate")]
        return self
            .generated
            .output(crate::estimate::Template::of(format, model));
        #[cfg(not(feature = "estimate"))]
        {
            let _ = (format, model);
            OutputTokens::default()
        }
    }

    fn on_event(
        &mut self,
        scan: ScanMode,
        precheck: &EventPrecheck,
        event: SseEvent<'_>,
        hidden: &mut Vec<(u64, u64)>,
    ) {
        let ScanMode {
            format,
            hide,
            estimate,
        } = scan;
        self.events += 1;
        if event.data == b"[DONE]" {
            self.saw_end = true;
            return;
        }
        #[cfg(feature = "estimate")]
        if estimate {
            self.generated
                .add(crate::estimate::generated(format, event.data));
        }
        #[cfg(not(feature = "estimate"))]
        let _ = estimate;
        if self.model.is_some() && !precheck.worth_parsing(event.data) {
            return;
        }
        let Ok(facts) = format.parse(event.data) else {
            self.malformed_events += 1;
            return;
        };
        if facts.model.is_some() {
            self.model = facts.model;
        }
        if facts.error.is_some() {
            self.error = facts.error;
        }
        self.saw_end |= facts.end;
        match facts.usage {
            Some(Report::Complete(usage)) => {
                self.usage = Some(usage);
                self.overflow = false;
                if hide && facts.usage_only {
                    hidden.push((event.start, event.end));
                }
            }
            Some(Report::Anthropic(counts)) => {
                let merged = self.anthropic.unwrap_or_default().overlay(counts);
                self.anthropic = Some(merged);
                self.usage = merged.normalise();
                self.overflow = self.usage.is_none();
            }
            Some(Report::Overflow) => {
                self.usage = None;
                self.overflow = true;
            }
            None => {}
        }
    }
}

/// How a stream is scanned.
#[derive(Clone, Copy, Debug)]
struct ScanMode {
    format: Format,
    /// Cut usage-only chat chunks.
    hide: bool,
    /// Count generated text for a token estimate.
    estimate: bool,
}

/// Incremental scanner of one response stream.
#[derive(Debug)]
pub struct StreamScan {
    mode: ScanMode,
    /// The pre-check's searchers, built once for the stream.
    precheck: EventPrecheck,
    parser: SseParser,
    facts: StreamFacts,
    /// Bytes from `held_start` to the parser's offset, not yet released (hiding only).
    held: Vec<u8>,
    held_start: u64,
    max_held: usize,
}

impl StreamScan {
    /// A scanner for `format`; `hide_usage_only` cuts usage-only events out of the forwarded bytes.
    pub fn new(format: Format, max_event_bytes: usize, hide_usage_only: bool) -> Self {
        StreamScan {
            mode: ScanMode {
                format,
                hide: hide_usage_only,
                estimate: false,
            },
            precheck: EventPrecheck::new(format),
            parser: SseParser::new(max_event_bytes),
            facts: StreamFacts::default(),
            held: Vec::new(),
            held_start: 0,
            max_held: max_event_bytes.saturating_add(1024),
        }
    }

    /// Also count the generated text, for a token estimate if no usage arrives.
    pub fn with_estimate(mut self, estimate: bool) -> Self {
        self.mode.estimate = estimate;
        self
    }

    /// What the stream told us so far.
    pub fn facts(&self) -> &StreamFacts {
        &self.facts
    }

    /// Heap bytes this scan holds for the stream (parser buffers and held-back bytes).
    pub fn retained_bytes(&self) -> usize {
        self.parser.retained_bytes() + self.held.capacity()
    }

    /// Events skipped for size.
    pub fn oversized_events(&self) -> u64 {
        self.parser.oversized_events()
    }

    /// Scans `chunk` and says what to forward in its place.
    pub fn feed(&mut self, chunk: &[u8]) -> Forward {
        let chunk_start = self.parser.offset();
        let mode = self.mode;
        let mut hidden = Vec::new();
        let (facts, precheck) = (&mut self.facts, &self.precheck);
        self.parser.feed(chunk, &mut |event| {
            facts.on_event(mode, precheck, event, &mut hidden)
        });
        if !mode.hide {
            return Forward::Unchanged;
        }
        let end = self.parser.offset();
        if self.held.is_empty() && hidden.is_empty() && self.parser.settled_offset() == end {
            self.held_start = end;
            return Forward::Unchanged;
        }
        if self.held.is_empty() {
            self.held_start = chunk_start;
        }
        self.held.extend_from_slice(chunk);
        let mut release_to = self.parser.settled_offset().max(self.held_start);
        if (end - self.held_start) as usize > self.max_held {
            release_to = end; // too big to be a usage chunk worth hiding: let it go
        }
        let out = self.release(release_to, &hidden);
        if out.as_slice() == chunk {
            Forward::Unchanged
        } else {
            Forward::Replace(out)
        }
    }

    /// The stream ended: returns the bytes still held back (forward them before any trailer).
    pub fn finish(&mut self) -> Vec<u8> {
        let mode = self.mode;
        let mut hidden = Vec::new();
        let (facts, precheck) = (&mut self.facts, &self.precheck);
        self.parser
            .finish(&mut |event| facts.on_event(mode, precheck, event, &mut hidden));
        let end = self.held_start + self.held.len() as u64;
        self.release(end, &hidden)
    }

    /// Takes `held` up to absolute offset `to`, leaving out the `hidden` ranges.
    fn release(&mut self, to: u64, hidden: &[(u64, u64)]) -> Vec<u8> {
        let take = ((to - self.held_start) as usize).min(self.held.len());
        let mut out = Vec::with_capacity(take);
        let mut cursor = self.held_start;
        for &(start, stop) in hidden {
            if start < cursor || stop > to {
                continue; // partly released already, or not yet complete: cannot cut it
            }
            out.extend_from_slice(
                &self.held[(cursor - self.held_start) as usize..(start - self.held_start) as usize],
            );
            cursor = stop;
        }
        out.extend_from_slice(&self.held[(cursor - self.held_start) as usize..take]);
        self.held.drain(..take);
        self.held_start += take as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STREAM: &[u8] = b": OPENROUTER PROCESSING\n\n\
data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}\n\n\
data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n\
data: [DONE]\n\n";

    fn forward_all(scan: &mut StreamScan, chunks: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for chunk in chunks {
            match scan.feed(chunk) {
                Forward::Unchanged => out.extend_from_slice(chunk),
                Forward::Replace(bytes) => out.extend_from_slice(&bytes),
            }
        }
        out.extend_from_slice(&scan.finish());
        out
    }

    #[test]
    fn without_hiding_every_chunk_is_unchanged_and_usage_found() {
        let mut scan = StreamScan::new(Format::Chat, 1024, false);
        for chunk in STREAM.chunks(7) {
            assert_eq!(scan.feed(chunk), Forward::Unchanged);
        }
        assert!(scan.finish().is_empty());
        let facts = scan.facts();
        assert_eq!(facts.usage.as_ref().map(|u| u.prompt_tokens), Some(3));
        assert_eq!(facts.model.as_deref(), Some("m"));
        assert!(facts.saw_end);
    }

    #[test]
    fn hiding_cuts_exactly_the_usage_only_event_at_any_split() {
        let usage_event: &[u8] = b"data: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n";
        let at = STREAM
            .windows(usage_event.len())
            .position(|w| w == usage_event)
            .unwrap();
        let mut expected = STREAM[..at].to_vec();
        expected.extend_from_slice(&STREAM[at + usage_event.len()..]);
        for cut in 0..=STREAM.len() {
            let (a, b) = STREAM.split_at(cut);
            let mut scan = StreamScan::new(Format::Chat, 1024, true);
            assert_eq!(forward_all(&mut scan, &[a, b]), expected, "cut at {cut}");
            assert_eq!(
                scan.facts().usage.as_ref().map(|u| u.completion_tokens),
                Some(1)
            );
        }
    }

    #[test]
    fn hiding_forwards_complete_events_at_once() {
        let mut scan = StreamScan::new(Format::Chat, 1024, true);
        let first = b"data: {\"model\":\"m\",\"choices\":[{}]}\n\n";
        assert_eq!(scan.feed(first), Forward::Unchanged);
        // An unfinished event is held until it is known, then released whole.
        assert_eq!(
            scan.feed(b"data: {\"choices\":[{}]"),
            Forward::Replace(Vec::new())
        );
        assert_eq!(
            scan.feed(b"}\n\n"),
            Forward::Replace(b"data: {\"choices\":[{}]}\n\n".to_vec())
        );
    }

    #[test]
    fn chunks_with_usage_and_choices_are_never_cut() {
        let stream = b"data: {\"model\":\"m\",\"choices\":[{\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":1}}\n\n";
        let mut scan = StreamScan::new(Format::Chat, 1024, true);
        assert_eq!(forward_all(&mut scan, &[stream]), stream.to_vec());
    }

    #[test]
    fn memory_stays_flat_as_the_stream_grows_from_1kb_to_10mb() {
        let event = b"data: {\"model\":\"m\",\"choices\":[{\"delta\":{\"content\":\"some text\"}}],\"usage\":null}\n\n";
        let retained_after = |total: usize, hide: bool| {
            let mut scan = StreamScan::new(Format::Chat, 64 * 1024, hide);
            let mut fed = 0;
            while fed < total {
                scan.feed(&event[..event.len() / 2]);
                scan.feed(&event[event.len() / 2..]);
                fed += event.len();
            }
            scan.retained_bytes()
        };
        for hide in [false, true] {
            let small = retained_after(1024, hide);
            let large = retained_after(10 << 20, hide);
            assert_eq!(
                small, large,
                "hide={hide}: retained bytes grew with the stream"
            );
            assert!(large < 1024, "hide={hide}: {large} bytes retained");
        }
    }

    #[test]
    fn malformed_events_are_counted_not_fatal() {
        let mut scan = StreamScan::new(Format::Chat, 1024, false);
        scan.feed(b"data: {\"broken\n\ndata: {\"model\":\"m\",\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n");
        assert_eq!(scan.facts().malformed_events, 1);
        assert!(scan.facts().usage.is_some());
    }
}
