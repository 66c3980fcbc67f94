//! The few small fields metering needs from a `multipart/form-data` request body (an audio
//! transcription's `model` and `stream`), read as the body passes, in bounded memory.
//!
//! A transcription request is a form: the audio file (up to 25 MB) and text fields, in any order
//! (openai-python sends the text fields first, openai-node in the caller's key order, often the
//! file first). Holding the body would hold the audio, so the scan never keeps more than a part's
//! headers, one wanted field's value and the few bytes a delimiter split across two chunks needs.
//! File contents are looked at only to find the next delimiter (RFC 7578 / RFC 2046 §5.1.1).
//!
//! Not here: which endpoint sends a form (`crate::call`), what the fields mean for pricing.

use alloc::{string::String, vec::Vec};

/// A part's headers longer than this are not a field we want: the scan gives up.
const MAX_PART_HEADERS: usize = 2048;
/// A wanted field's value longer than this is not a model name: it is dropped.
const MAX_VALUE: usize = 256;
/// Input is scanned in slices of at most this many bytes, so a host that hands over a whole
/// body (the Worker) costs no more memory than one that hands over chunks.
const SLICE: usize = 64 * 1024;

/// The fields found so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FormFields {
    /// `model`.
    pub model: Option<String>,
    /// `stream` is `true`.
    pub stream: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    Model,
    Stream,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Inside a part's content (or the preamble); `Some`: a field we keep.
    Content(Option<Want>),
    /// Just after a delimiter: `--` ends the body, anything else starts a part's headers.
    AfterDelimiter,
    /// Reading a part's headers up to the empty line.
    Headers,
    /// The closing delimiter was seen, or the body is not a form we can read.
    Done,
}

/// A streaming scan of one `multipart/form-data` body.
#[derive(Clone, Debug)]
pub struct FormScan {
    /// `\r\n--<boundary>`.
    delimiter: Vec<u8>,
    /// Bytes not yet resolved: at most a delimiter's length in content, the headers in `Headers`.
    pending: Vec<u8>,
    /// The wanted field's value so far.
    value: Vec<u8>,
    /// The wanted field's value outgrew [`MAX_VALUE`]: it is dropped.
    overlong: bool,
    state: State,
    fields: FormFields,
}

impl FormScan {
    /// A scan for a body of `content_type` (`multipart/form-data; boundary=…`); `None` when the
    /// type is not a form or names no usable boundary.
    pub fn new(content_type: &str) -> Option<FormScan> {
        let boundary = boundary(content_type)?;
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary.as_bytes());
        Some(FormScan {
            delimiter,
            // The body starts with `--<boundary>`: a virtual CRLF lets one search find it.
            pending: Vec::from(&b"\r\n"[..]),
            value: Vec::new(),
            overlong: false,
            state: State::Content(None),
            fields: FormFields::default(),
        })
    }

    /// The fields found so far.
    pub fn fields(&self) -> &FormFields {
        &self.fields
    }

    /// Scans the next chunk of the body.
    pub fn feed(&mut self, chunk: &[u8]) {
        for slice in chunk.chunks(SLICE) {
            if self.state == State::Done {
                return;
            }
            self.pending.extend_from_slice(slice);
            self.run();
        }
    }

    fn run(&mut self) {
        loop {
            match self.state.clone() {
                State::Done => {
                    self.pending = Vec::new();
                    return;
                }
                State::Content(want) => {
                    match memchr::memmem::find(&self.pending, &self.delimiter) {
                        Some(at) => {
                            if want.is_some() {
                                self.keep(at);
                                self.finish_field(want);
                            }
                            self.pending.drain(..at + self.delimiter.len());
                            self.state = State::AfterDelimiter;
                        }
                        None => {
                            // Keep only what could be the start of a delimiter.
                            let keep = self.delimiter.len() - 1;
                            let resolved = self.pending.len().saturating_sub(keep);
                            if want.is_some() {
                                self.keep(resolved);
                            }
                            self.pending.drain(..resolved);
                            return;
                        }
                    }
                }
                State::AfterDelimiter => {
                    if self.pending.len() < 2 {
                        return;
                    }
                    if self.pending.starts_with(b"--") {
                        self.state = State::Done;
                    } else {
                        self.state = State::Headers;
                    }
                }
                State::Headers => {
                    let Some(end) = memchr::memmem::find(&self.pending, b"\r\n\r\n") else {
                        if self.pending.len() > MAX_PART_HEADERS {
                            self.state = State::Done;
                            continue;
                        }
                        return;
                    };
                    let want = field_name(&self.pending[..end]).and_then(|name| match name {
                        b"model" => Some(Want::Model),
                        b"stream" => Some(Want::Stream),
                        _ => None,
                    });
                    self.value.clear();
                    self.overlong = false;
                    self.pending.drain(..end + 4);
                    // The part's content then runs up to the next `\r\n--<boundary>`.
                    self.state = State::Content(want);
                }
            }
        }
    }

    /// Appends `pending[..n]` to the wanted value, dropping a value that grows too long.
    fn keep(&mut self, n: usize) {
        if self.overlong || self.value.len() + n > MAX_VALUE {
            self.overlong = true;
            self.value.clear();
        } else {
            self.value.extend_from_slice(&self.pending[..n]);
        }
    }

    fn finish_field(&mut self, want: Option<Want>) {
        let value = core::mem::take(&mut self.value);
        if core::mem::take(&mut self.overlong) {
            return;
        }
        let Ok(text) = core::str::from_utf8(&value) else {
            return;
        };
        let text = text.trim();
        match want {
            Some(Want::Model) if !text.is_empty() => self.fields.model = Some(String::from(text)),
            Some(Want::Stream) => self.fields.stream = text.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
}

/// The `boundary` parameter of a `multipart/form-data` content type (quotes removed).
fn boundary(content_type: &str) -> Option<&str> {
    let mut params = content_type.split(';');
    let kind = params.next()?.trim();
    if !kind.eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params.find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim().trim_matches('"');
        // RFC 2046: 1 to 70 characters.
        (!value.is_empty() && value.len() <= 70).then_some(value)
    })
}

/// The `name` of a part from its headers' `Content-Disposition: form-data; name="…"`; `None`
/// for a file part (`filename=` present) or no such header.
fn field_name(headers: &[u8]) -> Option<&[u8]> {
    for line in headers.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"content-disposition") {
            continue;
        }
        let mut name = None;
        for param in line[colon + 1..].split(|&b| b == b';').skip(1) {
            let param = trim(param);
            let Some(eq) = param.iter().position(|&b| b == b'=') else {
                continue;
            };
            let key = trim(&param[..eq]);
            let value = trim(&param[eq + 1..]);
            let value = value
                .strip_prefix(b"\"")
                .and_then(|v| v.strip_suffix(b"\""))
                .unwrap_or(value);
            if key.eq_ignore_ascii_case(b"filename") || key.eq_ignore_ascii_case(b"filename*") {
                return None;
            }
            if key.eq_ignore_ascii_case(b"name") {
                name = Some(value);
            }
        }
        return name;
    }
    None
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &bytes[start..end.max(start)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    const TYPE: &str = "multipart/form-data; boundary=----llmcost7MA4YWxk";

    fn body(file_first: bool) -> Vec<u8> {
        let file = "------llmcost7MA4YWxk\r\nContent-Disposition: form-data; name=\"file\"; filename=\"model.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n--not-the-boundary\r\nname=\"model\"\r\n";
        let fields = "------llmcost7MA4YWxk\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\ngpt-4o-mini-transcribe\r\n------llmcost7MA4YWxk\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n";
        let (a, b) = if file_first {
            (file, fields)
        } else {
            (fields, file)
        };
        format!("{a}{b}------llmcost7MA4YWxk--\r\n").into_bytes()
    }

    fn scan(body: &[u8], chunk: usize) -> FormFields {
        let mut scan = FormScan::new(TYPE).unwrap();
        for piece in body.chunks(chunk) {
            scan.feed(piece);
        }
        scan.fields().clone()
    }

    #[test]
    fn fields_are_found_before_or_after_the_file_in_any_chunking() {
        let want = FormFields {
            model: Some("gpt-4o-mini-transcribe".into()),
            stream: true,
        };
        for file_first in [false, true] {
            let body = body(file_first);
            for chunk in 1..body.len() + 1 {
                assert_eq!(scan(&body, chunk), want, "{file_first} {chunk}");
            }
        }
    }

    #[test]
    fn a_file_named_model_is_not_the_model() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"model\"; filename=\"m\"\r\n\r\nxx\r\n--b--\r\n";
        let mut scan = FormScan::new("multipart/form-data; boundary=\"b\"").unwrap();
        scan.feed(body);
        assert_eq!(scan.fields().model, None);
    }

    #[test]
    fn memory_stays_bounded_over_a_large_file() {
        let mut scan = FormScan::new(TYPE).unwrap();
        scan.feed(b"------llmcost7MA4YWxk\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\n");
        let audio = [0x5au8; 100_000];
        for _ in 0..50 {
            scan.feed(&audio);
            assert!(scan.pending.len() < 64, "{}", scan.pending.len());
        }
        scan.feed(b"\r\n------llmcost7MA4YWxk\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n------llmcost7MA4YWxk--");
        assert_eq!(scan.fields().model.as_deref(), Some("whisper-1"));
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_memory_stays_bounded() {
        // A deterministic pseudo-random walk over bytes that are often boundary and header
        // fragments, fed in random chunk sizes.
        let pieces: [&[u8]; 8] = [
            b"\r\n",
            b"--b",
            b"--",
            b"\r\n\r\n",
            b"Content-Disposition: form-data; name=\"model\"",
            b"; filename=\"x\"",
            b"gpt-4o",
            &[0xff, 0x00, 0x80],
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..200 {
            let mut scan = FormScan::new("multipart/form-data; boundary=b").unwrap();
            for _ in 0..200 {
                let mut chunk = Vec::new();
                for _ in 0..next() % 8 {
                    chunk.extend_from_slice(pieces[next() % pieces.len()]);
                }
                scan.feed(&chunk);
                assert!(scan.pending.len() <= MAX_PART_HEADERS + SLICE);
                assert!(scan.value.len() <= MAX_VALUE);
            }
        }
    }

    #[test]
    fn an_overlong_value_or_a_non_form_is_not_read() {
        let long = "m".repeat(MAX_VALUE + 1);
        let body =
            format!("--b\r\nContent-Disposition: form-data; name=model\r\n\r\n{long}\r\n--b--");
        let mut scan = FormScan::new("multipart/form-data; boundary=b").unwrap();
        scan.feed(body.as_bytes());
        assert_eq!(scan.fields().model, None);
        assert!(FormScan::new("application/json").is_none());
        assert!(FormScan::new("multipart/form-data").is_none());
        assert!(FormScan::new("multipart/form-data; boundary=").is_none());
    }
}
