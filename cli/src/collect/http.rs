//! Just enough HTTP/1.1 for a collector: request heads, `content-length` and `chunked` bodies
//! with a size limit, `Expect: 100-continue`, keep-alive, and plain responses.

use std::io::{self, BufRead, Read, Write};

/// Longest request line or header line.
const MAX_LINE: u64 = 8 * 1024;
/// Largest request head (request line and headers).
const MAX_HEAD: usize = 64 * 1024;
/// Most header fields.
const MAX_HEADERS: usize = 100;

/// A request head.
#[derive(Debug)]
pub struct Head {
    pub method: String,
    /// The request target as sent (path and query).
    pub target: String,
    /// `HTTP/1.1` (else 1.0).
    pub http11: bool,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
}

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
}

/// Why a request cannot be served; the status to answer with.
#[derive(Debug)]
pub enum Error {
    /// The connection closed, failed or timed out: nothing to answer.
    Closed,
    /// Answer with this status and close.
    Status(u16, &'static str),
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::InvalidData => Error::Status(400, "malformed request"),
            _ => Error::Closed,
        }
    }
}

impl Head {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// Whether the connection may serve another request.
    pub fn keep_alive(&self) -> bool {
        let connection = self.header("connection").unwrap_or("").to_ascii_lowercase();
        let tokens = || connection.split(',').map(str::trim);
        if self.http11 {
            !tokens().any(|t| t == "close")
        } else {
            tokens().any(|t| t == "keep-alive")
        }
    }

    pub fn expects_continue(&self) -> bool {
        self.header("expect")
            .is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
    }

    /// The body framing (`None`: no body). Refuses the ambiguous cases request smuggling uses.
    pub fn framing(&self) -> Result<Option<Framing>, Error> {
        let lengths: Vec<&str> = self
            .headers
            .iter()
            .filter(|(n, _)| n == "content-length")
            .map(|(_, v)| v.as_str())
            .collect();
        let chunked = match self.header("transfer-encoding") {
            None => false,
            Some(te) if te.trim().eq_ignore_ascii_case("chunked") => true,
            Some(_) => return Err(Error::Status(501, "unsupported transfer-encoding")),
        };
        match (chunked, lengths.as_slice()) {
            (true, []) => Ok(Some(Framing::Chunked)),
            (true, _) => Err(Error::Status(400, "both content-length and chunked")),
            (false, []) => Ok(None),
            (false, [first, rest @ ..]) => {
                if rest.iter().any(|v| v != first) {
                    return Err(Error::Status(400, "conflicting content-length"));
                }
                if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Error::Status(400, "bad content-length"));
                }
                let n = first
                    .parse::<u64>()
                    .map_err(|_| Error::Status(400, "bad content-length"))?;
                Ok(Some(Framing::Length(n)))
            }
        }
    }
}

/// Reads one line (without `\r\n`), at most `MAX_LINE` bytes.
fn line(r: &mut impl BufRead) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    let n = r.by_ref().take(MAX_LINE + 1).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Err(Error::Closed);
    }
    if buf.last() != Some(&b'\n') {
        return Err(if n as u64 > MAX_LINE {
            Error::Status(431, "line too long")
        } else {
            Error::Closed
        });
    }
    buf.pop();
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    Ok(buf)
}

/// Reads a request head.
pub fn read_head(r: &mut impl BufRead) -> Result<Head, Error> {
    let request_line = line(r)?;
    let text =
        std::str::from_utf8(&request_line).map_err(|_| Error::Status(400, "bad request line"))?;
    let mut parts = text.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Error::Status(400, "bad request line"));
    };
    let http11 = match version {
        "HTTP/1.1" => true,
        "HTTP/1.0" => false,
        _ => return Err(Error::Status(505, "HTTP/1.x only")),
    };
    if method.is_empty() || !target.starts_with('/') {
        return Err(Error::Status(400, "bad request line"));
    }
    let mut headers = Vec::new();
    let mut size = request_line.len();
    loop {
        let field = line(r)?;
        if field.is_empty() {
            break;
        }
        size += field.len();
        if size > MAX_HEAD || headers.len() >= MAX_HEADERS {
            return Err(Error::Status(431, "request head too large"));
        }
        let field = String::from_utf8_lossy(&field);
        let Some((name, value)) = field.split_once(':') else {
            return Err(Error::Status(400, "bad header field"));
        };
        if name.is_empty() || name.ends_with([' ', '\t']) {
            return Err(Error::Status(400, "bad header field"));
        }
        headers.push((name.to_ascii_lowercase(), value.trim().to_owned()));
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        http11,
        headers,
    })
}

/// Reads a body of at most `limit` bytes (413 past it).
pub fn read_body(r: &mut impl BufRead, framing: Framing, limit: u64) -> Result<Vec<u8>, Error> {
    const TOO_LARGE: Error = Error::Status(413, "body too large");
    match framing {
        Framing::Length(n) if n > limit => Err(TOO_LARGE),
        Framing::Length(n) => {
            let mut body = Vec::with_capacity(n.min(1 << 20) as usize);
            r.by_ref().take(n).read_to_end(&mut body)?;
            if (body.len() as u64) < n {
                return Err(Error::Closed);
            }
            Ok(body)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                let size_line = line(r)?;
                let hex = size_line
                    .split(|&b| b == b';')
                    .next()
                    .unwrap_or(&[])
                    .trim_ascii();
                let size = std::str::from_utf8(hex)
                    .ok()
                    .filter(|h| !h.is_empty() && h.len() <= 16)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
                    .ok_or(Error::Status(400, "bad chunk size"))?;
                if size == 0 {
                    // Trailers, ignored, up to the empty line.
                    let mut trailer_bytes = 0;
                    loop {
                        let t = line(r)?;
                        if t.is_empty() {
                            return Ok(body);
                        }
                        trailer_bytes += t.len();
                        if trailer_bytes > MAX_HEAD {
                            return Err(Error::Status(431, "trailers too large"));
                        }
                    }
                }
                if body.len() as u64 + size > limit {
                    return Err(TOO_LARGE);
                }
                let before = body.len();
                r.by_ref().take(size).read_to_end(&mut body)?;
                if ((body.len() - before) as u64) < size {
                    return Err(Error::Closed);
                }
                if !line(r)?.is_empty() {
                    return Err(Error::Status(400, "bad chunk"));
                }
            }
        }
    }
}

/// The reason phrase of the statuses this server sends.
fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// Writes `HTTP/1.1 100 Continue`.
pub fn write_continue(w: &mut impl Write) -> io::Result<()> {
    w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    w.flush()
}

/// Writes a complete response with a JSON body.
pub fn write_response(
    w: &mut impl Write,
    status: u16,
    extra: &[(&str, &str)],
    json_body: &str,
    close: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n",
        reason(status),
        json_body.len() + 1
    );
    for (name, value) in extra {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        out.push_str("connection: close\r\n");
    }
    out.push_str("\r\n");
    out.push_str(json_body);
    out.push('\n');
    w.write_all(out.as_bytes())?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Result<Head, Error> {
        read_head(&mut text.as_bytes())
    }

    #[test]
    fn parses_a_head() {
        let h =
            head("POST /ingest?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc").unwrap();
        assert_eq!((h.method.as_str(), h.path()), ("POST", "/ingest"));
        assert_eq!(h.framing().unwrap(), Some(Framing::Length(3)));
        assert!(h.keep_alive());
        let h = head("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!h.keep_alive());
        assert_eq!(h.framing().unwrap(), None);
    }

    #[test]
    fn refuses_ambiguous_framing() {
        for text in [
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            "POST / HTTP/1.1\r\ncontent-length: -3\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: gzip\r\n\r\n",
        ] {
            assert!(head(text).unwrap().framing().is_err(), "{text}");
        }
        assert!(head("POST /x HTTP/2\r\n\r\n").is_err());
        assert!(head("POST x HTTP/1.1\r\n\r\n").is_err());
    }

    #[test]
    fn reads_chunked_bodies_within_the_limit() {
        let mut r = &b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\ntrailer: x\r\n\r\nNEXT"[..];
        assert_eq!(read_body(&mut r, Framing::Chunked, 5).unwrap(), b"abcde");
        assert_eq!(r, b"NEXT");
        let mut r = &b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n"[..];
        assert!(matches!(
            read_body(&mut r, Framing::Chunked, 5),
            Err(Error::Status(413, _))
        ));
        assert!(matches!(
            read_body(&mut &b""[..], Framing::Length(6), 5),
            Err(Error::Status(413, _))
        ));
        assert!(matches!(
            read_body(&mut &b"ab"[..], Framing::Length(3), 5),
            Err(Error::Closed)
        ));
    }
}
