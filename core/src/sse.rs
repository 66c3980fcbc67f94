//! Incremental Server-Sent Events parser.
//!
//! Feed it byte chunks exactly as they arrive: an event, a line, a `\r\n` or a UTF-8 sequence may
//! be split anywhere. It yields each event's `data` (multi-line `data:` fields joined with `\n`)
//! with the event's absolute byte range in the stream, so a host can cut one event out.
//! Comments (`: OPENROUTER PROCESSING`) and other fields are skipped. `\n`, `\r\n` and `\r` all end
//! a line. Memory is bounded by `max_event_bytes`: a longer event is skipped and counted, never kept.
//!
//! It does not interpret `data` (JSON, `[DONE]`): that is `stream`'s job.

use alloc::vec::Vec;

/// Room beyond `max_event_bytes` in the line buffer for a field name and separator.
const LINE_SLACK: usize = 64;

/// One complete event.
#[derive(Debug, PartialEq, Eq)]
pub struct SseEvent<'a> {
    /// The `data` field; lines joined with `\n`, no trailing newline.
    pub data: &'a [u8],
    /// Offset of the event's first field line in the stream.
    pub start: u64,
    /// Offset just past the blank line that ended it.
    pub end: u64,
}

/// Incremental SSE parser with bounded memory.
#[derive(Debug)]
pub struct SseParser {
    max_event_bytes: usize,
    /// Bytes of a line whose end has not arrived yet.
    line: Vec<u8>,
    /// Stream offset where `line` (the current unfinished line) starts.
    line_start: u64,
    /// The current line outgrew the limit: drop the rest of it.
    line_oversized: bool,
    /// `data` of the event being read.
    data: Vec<u8>,
    has_data: bool,
    event_oversized: bool,
    /// Offset of the first field line of the event being read, if one is being read.
    event_start: Option<u64>,
    /// The previous chunk ended in `\r`: a leading `\n` in the next one belongs to it.
    after_cr: bool,
    /// An event ended with a blank line whose `\r` was the last byte of a chunk: it is dispatched
    /// when the next byte shows whether a `\n` belongs to it (so its `end` never depends on chunking).
    deferred_end: Option<u64>,
    /// Bytes consumed so far.
    offset: u64,
    oversized_events: u64,
}

impl SseParser {
    /// A parser that keeps at most `max_event_bytes` of one event's data (and of one line, plus a
    /// few bytes for the field name).
    pub fn new(max_event_bytes: usize) -> Self {
        SseParser {
            max_event_bytes,
            line: Vec::new(),
            line_start: 0,
            line_oversized: false,
            data: Vec::new(),
            has_data: false,
            event_oversized: false,
            event_start: None,
            after_cr: false,
            deferred_end: None,
            offset: 0,
            oversized_events: 0,
        }
    }

    /// Events skipped because they exceeded `max_event_bytes`.
    pub fn oversized_events(&self) -> u64 {
        self.oversized_events
    }

    /// Heap bytes this parser holds (buffer capacities): bounded by about twice
    /// `max_event_bytes`, whatever the stream's length.
    pub fn retained_bytes(&self) -> usize {
        self.line.capacity() + self.data.capacity()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The earliest offset that may still belong to an event not yet complete: everything before
    /// it is settled (complete events, comments, blank lines).
    pub fn settled_offset(&self) -> u64 {
        match self.event_start {
            Some(start) => start,
            None if self.line.is_empty() && !self.line_oversized => self.offset,
            None => self.line_start,
        }
    }

    /// Parses `chunk`, calling `on_event` for every event it completes.
    pub fn feed(&mut self, chunk: &[u8], on_event: &mut dyn FnMut(SseEvent<'_>)) {
        let mut pos = 0;
        if self.after_cr && chunk.first() == Some(&b'\n') {
            pos = 1;
        }
        if let Some(end) = self.deferred_end.take() {
            if chunk.is_empty() {
                self.deferred_end = Some(end);
            } else {
                self.dispatch(end + pos as u64, on_event);
            }
        }
        if !chunk.is_empty() {
            self.after_cr = false;
        }
        while pos < chunk.len() {
            let rest = &chunk[pos..];
            match memchr::memchr2(b'\n', b'\r', rest) {
                Some(i) => {
                    let mut consumed = i + 1;
                    if rest[i] == b'\r' {
                        match rest.get(i + 1) {
                            Some(b'\n') => consumed += 1,
                            Some(_) => {}
                            None => self.after_cr = true,
                        }
                    }
                    let line_end = self.offset + (pos + consumed) as u64;
                    let blank = i == 0 && self.line.is_empty() && !self.line_oversized;
                    if blank && self.after_cr && self.event_start.is_some() {
                        self.deferred_end = Some(line_end);
                    } else if self.line.is_empty() && !self.line_oversized {
                        self.line_start = self.offset + pos as u64;
                        self.process_line(&rest[..i], line_end, on_event);
                    } else {
                        self.append_to_line(&rest[..i]);
                        let line = core::mem::take(&mut self.line);
                        self.process_line(&line, line_end, on_event);
                        self.line = line;
                        self.line.clear();
                    }
                    self.line_oversized = false;
                    self.line_start = line_end;
                    pos += consumed;
                }
                None => {
                    if self.line.is_empty() && !self.line_oversized {
                        self.line_start = self.offset + pos as u64;
                    }
                    self.append_to_line(rest);
                    pos = chunk.len();
                }
            }
        }
        self.offset += chunk.len() as u64;
    }

    /// The stream ended: a last line or event without its terminating blank line is still
    /// offered (a cut-off JSON will simply fail to parse downstream).
    pub fn finish(&mut self, on_event: &mut dyn FnMut(SseEvent<'_>)) {
        if let Some(end) = self.deferred_end.take() {
            self.dispatch(end, on_event);
        }
        if !self.line.is_empty() || self.line_oversized {
            let line = core::mem::take(&mut self.line);
            self.process_line(&line, self.offset, on_event);
            self.line_oversized = false;
        }
        self.process_line(&[], self.offset, on_event);
    }

    fn append_to_line(&mut self, bytes: &[u8]) {
        if self.line_oversized {
            return;
        }
        // The slack lets a whole line hold `data: ` plus a value of `max_event_bytes`, so a line
        // split across chunks is judged exactly as the same line in one chunk would be.
        let cap = self.max_event_bytes.saturating_add(LINE_SLACK);
        if self.line.len() + bytes.len() <= cap {
            self.line.extend_from_slice(bytes);
            return;
        }
        // Too long to keep: decide now, from its start, what `process_line` would have decided.
        let mut head = [0u8; LINE_SLACK];
        let kept = self.line.len().min(LINE_SLACK);
        head[..kept].copy_from_slice(&self.line[..kept]);
        let more = (LINE_SLACK - kept).min(bytes.len());
        head[kept..kept + more].copy_from_slice(&bytes[..more]);
        let head = &head[..kept + more];
        self.line_oversized = true;
        self.line = Vec::new();
        if head.first() == Some(&b':') {
            return; // an oversized comment: ignored, like any comment
        }
        if self.event_start.is_none() {
            self.event_start = Some(self.line_start);
        }
        let field = memchr::memchr(b':', head).map_or(head, |i| &head[..i]);
        if field == b"data" {
            self.event_oversized = true;
            self.data = Vec::new();
        }
    }

    fn process_line(&mut self, line: &[u8], line_end: u64, on_event: &mut dyn FnMut(SseEvent<'_>)) {
        if self.line_oversized {
            return; // already accounted for: the event is oversized
        }
        if line.is_empty() {
            self.dispatch(line_end, on_event);
            return;
        }
        if line[0] == b':' {
            return; // comment
        }
        if self.event_start.is_none() {
            self.event_start = Some(self.line_start);
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(i) => {
                let value = &line[i + 1..];
                (&line[..i], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &[][..]),
        };
        if field != b"data" || self.event_oversized {
            return;
        }
        if self.data.len() + value.len() + 1 > self.max_event_bytes {
            self.event_oversized = true;
            self.data = Vec::new();
            return;
        }
        if self.has_data {
            self.data.push(b'\n');
        }
        self.data.extend_from_slice(value);
        self.has_data = true;
    }

    fn dispatch(&mut self, end: u64, on_event: &mut dyn FnMut(SseEvent<'_>)) {
        if let Some(start) = self.event_start.take() {
            if self.event_oversized {
                self.oversized_events += 1;
            } else if self.has_data {
                on_event(SseEvent {
                    data: &self.data,
                    start,
                    end,
                });
            }
        }
        self.data.clear();
        self.has_data = false;
        self.event_oversized = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::{string::String, vec};

    fn events_of(chunks: &[&[u8]], max: usize) -> (Vec<(String, u64, u64)>, u64) {
        let mut parser = SseParser::new(max);
        let mut out = Vec::new();
        let mut push = |e: SseEvent<'_>| {
            out.push((String::from_utf8_lossy(e.data).into_owned(), e.start, e.end))
        };
        for chunk in chunks {
            parser.feed(chunk, &mut push);
        }
        parser.finish(&mut push);
        (out, parser.oversized_events())
    }

    fn data_of(chunks: &[&[u8]]) -> Vec<String> {
        events_of(chunks, 1 << 20)
            .0
            .into_iter()
            .map(|e| e.0)
            .collect()
    }

    #[test]
    fn comments_are_skipped_and_events_have_ranges() {
        let stream = b": OPENROUTER PROCESSING\n\ndata: {\"a\":1}\n\ndata: [DONE]\n\n";
        let (events, _) = events_of(&[stream], 1024);
        assert_eq!(
            events,
            vec![("{\"a\":1}".into(), 25, 40), ("[DONE]".into(), 40, 54)]
        );
    }

    #[test]
    fn all_three_line_endings_end_lines() {
        for stream in [
            &b"data: x\n\ndata: y\n\n"[..],
            b"data: x\r\n\r\ndata: y\r\n\r\n",
            b"data: x\r\rdata: y\r\r",
        ] {
            assert_eq!(data_of(&[stream]), vec!["x", "y"]);
        }
    }

    #[test]
    fn stream_split_inside_crlf_gives_same_events() {
        let stream = b"data: a\r\n\r\ndata: b\r\n\r\n";
        for cut in 0..stream.len() {
            let (head, tail) = stream.split_at(cut);
            assert_eq!(data_of(&[head, tail]), vec!["a", "b"], "cut at {cut}");
        }
    }

    #[test]
    fn event_end_does_not_depend_on_a_split_inside_the_final_crlf() {
        // Found by the sse_parser fuzz target: cut between the `\r` and `\n` of the blank line.
        let stream = b"x: y\ndata: {}\r\n\r\nnext";
        let (whole, _) = events_of(&[stream], 1024);
        for cut in 0..stream.len() {
            let (head, tail) = stream.split_at(cut);
            assert_eq!(events_of(&[head, tail], 1024).0, whole, "cut at {cut}");
        }
        assert_eq!(whole, vec![("{}".into(), 0, 17)]);
    }

    #[test]
    fn multi_line_data_is_joined_with_newlines() {
        assert_eq!(
            data_of(&[b"data: a\ndata:b\nevent: x\nid: 3\n\n"]),
            vec!["a\nb"]
        );
    }

    #[test]
    fn split_inside_a_utf8_sequence_keeps_the_bytes() {
        let stream = "data: \u{2019}m\n\n".as_bytes();
        for cut in 0..stream.len() {
            let (head, tail) = stream.split_at(cut);
            assert_eq!(data_of(&[head, tail]), vec!["\u{2019}m"]);
        }
    }

    #[test]
    fn oversized_event_is_skipped_counted_and_parsing_resumes() {
        let big = [b'x'; 100];
        let mut stream = Vec::new();
        stream.extend_from_slice(b"data: ");
        stream.extend_from_slice(&big);
        stream.extend_from_slice(b"\n\ndata: small\n\n");
        for chunk_size in [1, 7, 64, stream.len()] {
            let chunks: Vec<&[u8]> = stream.chunks(chunk_size).collect();
            let (events, oversized) = events_of(&chunks, 50);
            assert_eq!(oversized, 1, "chunk size {chunk_size}");
            let data: Vec<_> = events.into_iter().map(|e| e.0).collect();
            assert_eq!(data, vec!["small"], "chunk size {chunk_size}");
        }
    }

    #[test]
    fn memory_stays_bounded_by_the_event_limit() {
        let mut parser = SseParser::new(64);
        let line = [b'y'; 1000];
        parser.feed(b"data: ", &mut |_| {});
        for _ in 0..1000 {
            parser.feed(&line, &mut |_| {});
            assert!(parser.retained_bytes() <= 2 * 64 + LINE_SLACK);
        }
    }

    #[test]
    fn unterminated_last_event_is_still_offered_at_finish() {
        assert_eq!(data_of(&[b"data: {\"usage\":1}"]), vec!["{\"usage\":1}"]);
    }

    #[test]
    fn settled_offset_stops_at_an_unfinished_event() {
        let mut parser = SseParser::new(1024);
        parser.feed(b": c\n\ndata: par", &mut |_| {});
        assert_eq!(parser.settled_offset(), 5);
        parser.feed(b"tial\n\n", &mut |_| {});
        assert_eq!(parser.settled_offset(), 20);
    }
}
