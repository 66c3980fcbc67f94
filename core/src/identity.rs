//! Who called, without keeping secrets: `key_id` is a short hash of the API key, and
//! [`credential`] is the one place that decides which request header or query parameter carries
//! that key, for every provider and every host.

use alloc::string::String;
use core::fmt::Write as _;

use sha2::{Digest, Sha256};

/// First 12 hex digits of SHA-256 of the key in an `Authorization` (`Bearer …`) or API-key
/// header value. `None` for an empty value. The key itself is never returned or stored.
pub fn key_id(credential: &str) -> Option<String> {
    let credential = credential.trim();
    let is_bearer = credential.len() >= 6 && credential[..6].eq_ignore_ascii_case("bearer");
    let key = match credential.get(6..) {
        Some(rest) if is_bearer && (rest.is_empty() || rest.starts_with(' ')) => rest.trim(),
        _ => credential,
    };
    if key.is_empty() {
        return None;
    }
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(12);
    for b in digest.iter().take(6) {
        let _ = write!(out, "{b:02x}");
    }
    Some(out)
}

/// Request headers that carry a provider credential, in the order [`credential`] tries them:
/// `Authorization: Bearer …` (OpenAI, OpenRouter, Gemini's OpenAI endpoint), `x-api-key`
/// (Anthropic), `x-goog-api-key` (Gemini).
pub const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "x-api-key", "x-goog-api-key"];

/// The credential a request carries, for [`key_id`]: the first non-empty of
/// [`CREDENTIAL_HEADERS`] (`header` looks one up by its lower-case name), else Gemini's `key`
/// query parameter of `path` (percent-decoded). Hosts pass it as `RequestHead::authorization`.
pub fn credential(mut header: impl FnMut(&str) -> Option<String>, path: &str) -> Option<String> {
    for name in CREDENTIAL_HEADERS {
        if let Some(value) = header(name).filter(|v| key_id(v).is_some()) {
            return Some(value);
        }
    }
    let (_, query) = path.split_once('?')?;
    let query = query.split('#').next().unwrap_or("");
    query.split('&').find_map(|pair| {
        let value = pair.strip_prefix("key=")?;
        let value = percent_decode(value)?;
        (!value.trim().is_empty()).then_some(value)
    })
}

/// `%XX` escapes (and `+` as space) decoded; `None` for a broken escape or non-UTF-8 result.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = alloc::vec::Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::{credential, key_id};
    use alloc::string::String;

    fn headers<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl FnMut(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| String::from(*v))
        }
    }

    #[test]
    fn every_provider_credential_carrier_gives_the_same_key_id() {
        let want = key_id("AIza-secret");
        for (pairs, path) in [
            (
                &[("authorization", "Bearer AIza-secret")][..],
                "/v1/chat/completions",
            ),
            (&[("x-api-key", "AIza-secret")][..], "/v1/messages"),
            (
                &[("x-goog-api-key", "AIza-secret")][..],
                "/v1beta/models/g:generateContent",
            ),
            (
                &[][..],
                "/v1beta/models/g:generateContent?alt=sse&key=AIza-secret",
            ),
            (
                &[][..],
                "/v1beta/models/g:generateContent?key=AIza%2Dsecret",
            ),
            // an empty carrier falls through to the next one
            (
                &[
                    ("authorization", "Bearer "),
                    ("x-goog-api-key", "AIza-secret"),
                ][..],
                "/",
            ),
        ] {
            let got = credential(headers(pairs), path);
            assert_eq!(got.as_deref().and_then(key_id), want, "{pairs:?} {path}");
        }
        assert_eq!(credential(headers(&[]), "/v1/chat/completions"), None);
        assert_eq!(credential(headers(&[]), "/m?key=&alt=sse"), None);
        assert_eq!(credential(headers(&[]), "/m?monkey=x"), None);
        assert_eq!(credential(headers(&[]), "/m?key=%zz"), None);
        // Authorization wins over the query parameter.
        let got = credential(headers(&[("authorization", "Bearer a")]), "/m?key=b");
        assert_eq!(got.as_deref(), Some("Bearer a"));
    }

    #[test]
    fn bearer_and_bare_keys_hash_alike_and_never_leak() {
        let id = key_id("Bearer sk-or-v1-secret").unwrap();
        assert_eq!(id.len(), 12);
        assert_eq!(Some(id.clone()), key_id("sk-or-v1-secret"));
        assert_eq!(Some(id.clone()), key_id("bearer   sk-or-v1-secret "));
        assert!(!id.contains("secret"));
        assert_eq!(key_id("Bearer "), None);
        assert_ne!(key_id("a"), key_id("b"));
    }
}
