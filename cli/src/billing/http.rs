//! GETs against a provider's admin API for `llm-cost billing fetch`: the admin key in a header,
//! bounded retries on `429` / `5xx` honouring `retry-after`, a timeout per request, a size limit
//! per page, and error messages that say what to do (a missing scope, a wrong kind of key).
//!
//! Owns the transport (ureq with rustls, as `fetch` does) and the retry policy; what is asked
//! and how pages chain is the provider modules' business. The key is never printed: any text a
//! provider echoes back has it replaced before it reaches a message.

use std::time::Duration;

/// A page larger than this is refused (a month of daily buckets is a few hundred KB).
pub const MAX_PAGE_BYTES: u64 = 32 << 20;
/// One request, connect to last byte, unless `--timeout` says otherwise.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Tries per request (the first and the retries) on `429` and `5xx`.
pub const MAX_ATTEMPTS: u32 = 5;
/// The longest single wait between tries, whatever `retry-after` asks for.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(60);
/// Pages followed per endpoint before giving up (a loop in `next_page` must end).
pub const MAX_PAGES: usize = 1000;

/// Why a fetch failed; `Display` says what to do.
#[derive(Debug)]
pub enum FetchError {
    /// No admin key in the environment.
    MissingKey {
        variable: &'static str,
        hint: &'static str,
    },
    /// Connection, TLS or timeout.
    Transport { endpoint: String, detail: String },
    /// `401` / `403`: the key is wrong or lacks a permission.
    Denied {
        endpoint: String,
        status: u16,
        message: String,
        hint: &'static str,
    },
    /// Another non-2xx answer (after retries, for `429` / `5xx`).
    Status {
        endpoint: String,
        status: u16,
        message: String,
        attempts: u32,
    },
    /// `--until` before `--since`, or another impossible request.
    Usage(String),
    /// The answer is not the documented shape.
    Malformed { endpoint: String, detail: String },
    /// `next_page` kept coming.
    TooManyPages { endpoint: String },
}

impl std::fmt::Display for FetchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FetchError::MissingKey { variable, hint } => {
                write!(f, "${variable} is not set: {hint}")
            }
            FetchError::Transport { endpoint, detail } => write!(f, "{endpoint}: {detail}"),
            FetchError::Usage(message) => f.write_str(message),
            FetchError::Denied {
                endpoint,
                status,
                message,
                hint,
            } => {
                write!(f, "{endpoint}: {status} {message}\n  {hint}")
            }
            FetchError::Status {
                endpoint,
                status,
                message,
                attempts,
            } => write!(
                f,
                "{endpoint}: {status} {message} (after {attempts} attempt(s))"
            ),
            FetchError::Malformed { endpoint, detail } => {
                write!(f, "{endpoint}: unexpected answer: {detail}")
            }
            FetchError::TooManyPages { endpoint } => {
                write!(
                    f,
                    "{endpoint}: more than {MAX_PAGES} pages; narrow --since/--until"
                )
            }
        }
    }
}

/// A provider's admin API at `base` (e.g. `https://api.openai.com`), authenticated by headers
/// that carry the key.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    headers: Vec<(&'static str, String)>,
    /// The key itself, only to scrub it from echoed error text.
    secret: String,
    /// What a `401`/`403` means for this provider's key.
    denied_hint: &'static str,
    /// Retries made so far (each also said on stderr).
    pub retries: u32,
}

impl Client {
    /// A client for `base`; `headers` carry `secret` (the admin key) and any version header;
    /// each request may take `timeout`.
    pub fn new(
        base: &str,
        headers: Vec<(&'static str, String)>,
        secret: String,
        denied_hint: &'static str,
        timeout: Duration,
    ) -> Client {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .build()
            .into();
        Client {
            agent,
            base: base.trim_end_matches('/').to_owned(),
            headers,
            secret,
            denied_hint,
            retries: 0,
        }
    }

    /// GETs `path` with `query` (pairs, repeated names allowed: `group_by[]=a&group_by[]=b`);
    /// returns the body of the 2xx answer.
    pub fn get(&mut self, path: &str, query: &[(String, String)]) -> Result<Vec<u8>, FetchError> {
        let endpoint = format!("GET {path}");
        let mut url = format!("{}{path}", self.base);
        for (i, (name, value)) in query.iter().enumerate() {
            url.push(if i == 0 { '?' } else { '&' });
            url.push_str(&encode(name));
            url.push('=');
            url.push_str(&encode(value));
        }
        // Bounded: at most MAX_ATTEMPTS tries, each within the timeout, with waits of at most
        // MAX_RETRY_WAIT between them.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self.agent.get(&url).header("accept", "application/json");
            for (name, value) in &self.headers {
                request = request.header(*name, value);
            }
            let mut response = request.call().map_err(|e| FetchError::Transport {
                endpoint: endpoint.clone(),
                detail: self.scrub(&e.to_string()),
            })?;
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            let body = response
                .body_mut()
                .with_config()
                .limit(MAX_PAGE_BYTES)
                .read_to_vec()
                .map_err(|e| FetchError::Transport {
                    endpoint: endpoint.clone(),
                    detail: self.scrub(&e.to_string()),
                })?;
            if (200..300).contains(&status) {
                return Ok(body);
            }
            let message = self.scrub(&error_message(&body));
            if status == 401 || status == 403 {
                return Err(FetchError::Denied {
                    endpoint,
                    status,
                    message,
                    hint: self.denied_hint,
                });
            }
            let retryable = status == 429 || status >= 500;
            if !retryable || attempt >= MAX_ATTEMPTS {
                return Err(FetchError::Status {
                    endpoint,
                    status,
                    message,
                    attempts: attempt,
                });
            }
            let wait = retry_wait(retry_after, attempt);
            eprintln!(
                "llm-cost: {endpoint}: {status}, retrying in {}s ({attempt}/{MAX_ATTEMPTS})",
                wait.as_secs()
            );
            self.retries += 1;
            std::thread::sleep(wait);
        }
    }

    /// `text` with the key replaced by `[key]`.
    fn scrub(&self, text: &str) -> String {
        if self.secret.is_empty() {
            text.to_owned()
        } else {
            text.replace(&self.secret, "[key]")
        }
    }
}

/// How long to wait before try `attempt + 1`: `retry-after` seconds when given, else 1, 2, 4, ...
/// seconds; never more than [`MAX_RETRY_WAIT`].
pub fn retry_wait(retry_after: Option<u64>, attempt: u32) -> Duration {
    let secs = retry_after.unwrap_or(1u64 << attempt.saturating_sub(1).min(6));
    Duration::from_secs(secs).min(MAX_RETRY_WAIT)
}

/// The provider's error text: `error.message` (OpenAI, Anthropic, OpenRouter all nest it there),
/// else the body's first 300 characters.
pub fn error_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if let Some(message) = parsed
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.get("message").or(Some(e)))
        .and_then(|m| m.as_str())
    {
        return message.to_owned();
    }
    let text = String::from_utf8_lossy(body);
    text.chars().take(300).collect()
}

/// Percent-encodes a query component (RFC 3986 unreserved characters pass).
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_waits_follow_retry_after_and_are_capped() {
        assert_eq!(retry_wait(Some(3), 1), Duration::from_secs(3));
        assert_eq!(retry_wait(Some(3600), 1), MAX_RETRY_WAIT);
        assert_eq!(retry_wait(None, 1), Duration::from_secs(1));
        assert_eq!(retry_wait(None, 3), Duration::from_secs(4));
        assert_eq!(retry_wait(None, 60), MAX_RETRY_WAIT);
    }

    #[test]
    fn error_messages_from_each_provider_shape() {
        let openai = br#"{"error":{"message":"Missing scopes: api.usage.read.","type":"invalid_request_error","param":null,"code":null}}"#;
        assert_eq!(error_message(openai), "Missing scopes: api.usage.read.");
        let anthropic =
            br#"{"type":"error","error":{"type":"permission_error","message":"not an admin key"}}"#;
        assert_eq!(error_message(anthropic), "not an admin key");
        let openrouter = br#"{"error":{"code":403,"message":"Only management keys can perform this operation"}}"#;
        assert_eq!(
            error_message(openrouter),
            "Only management keys can perform this operation"
        );
        assert_eq!(
            error_message(b"<html>bad gateway</html>"),
            "<html>bad gateway</html>"
        );
    }

    #[test]
    fn query_components_are_encoded() {
        assert_eq!(encode("group_by[]"), "group_by%5B%5D");
        assert_eq!(encode("2025-08-01T00:00:00Z"), "2025-08-01T00%3A00%3A00Z");
        assert_eq!(encode("page_AAAA="), "page_AAAA%3D");
    }
}
